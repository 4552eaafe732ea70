"""Timing helpers shared by the benchmarks (setup untimed, warm-up, median of N runs)."""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable


@dataclass
class Result:
    """One comparison: ours vs theirs, as a ratio, against the goal the issue names.

    ``higher_is_better`` says how to read ``ratio`` (throughput ratios: higher; time ratios: lower).
    """

    name: str
    ours: float
    theirs: float
    unit: str
    goal: str
    higher_is_better: bool
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.ours / self.theirs if self.theirs else float("nan")

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ratio"] = round(self.ratio, 3)
        return doc


def median_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine() -> dict[str, Any]:
    """Where the figures were taken."""
    import os

    return {"machine": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}
