"""Executor parameters and core counts: the leaf every stage and executor imports (no cycle).

``--executor local|ray``, ``--address``, ``--workers``, ``--retries`` and ``--task-timeout`` mean
the same on every stage that takes them; their rules live here, in :class:`ExecutorParams`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from imgnet_tools.errors import InputError

EXECUTORS = ("local", "ray", "inline")


def available_cores() -> int:
    """Every core this process may use (its CPU affinity, not the machine's core count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | None) -> int:
    """``workers`` when given (at least 1), else every core this process may use."""
    return max(1, workers) if workers is not None else available_cores()


@dataclass(frozen=True)
class ExecutorParams:
    """Where and how tasks run.

    ``executor``: ``local`` (a process pool on this machine), ``ray``, or ``inline`` (tasks run in this
    process one after the other: for debugging, with no crash isolation and no time limit); ``address``: the Ray
    cluster (``auto``: a running local cluster, or a new one; only with ``ray``); ``workers``:
    worker processes (local) or CPUs of a new local Ray (None: every core); ``retries``: how many
    more times a task runs after its worker died or ran out of time; ``task_timeout``: seconds a
    task may run before its worker is killed (None: no limit).
    """

    executor: str = "local"
    address: str | None = None
    workers: int | None = None
    retries: int = 1
    task_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise InputError(f"unknown executor {self.executor!r}; use one of {', '.join(EXECUTORS)}.")
        if self.address is not None and self.executor != "ray":
            raise InputError("--address is only for --executor ray.")
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers must be at least 1, got {self.workers}.")
        if self.retries < 0:
            raise InputError(f"retries must be at least 0, got {self.retries}.")
        if self.task_timeout is not None and not self.task_timeout > 0:
            raise InputError(f"a task time limit must be positive, got {self.task_timeout}.")

    @property
    def inline(self) -> bool:
        return self.executor == "inline"

    def n_workers(self) -> int:
        """Worker processes of a local pool (or CPUs of a new local Ray)."""
        return resolve_workers(self.workers)
