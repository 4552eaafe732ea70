"""Timed regions: warm-up excluded, the device synchronised around every timed region."""

from __future__ import annotations

import time
from typing import Callable

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued device work so that wall time covers it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_repeats(step: Callable[[], object], steps: int, warmup: int, repeats: int, device: torch.device,
                  barrier: Callable[[], None] | None = None) -> list[float]:
    """Seconds for ``steps`` calls of ``step``, once per repeat, after ``warmup`` untimed calls.

    ``barrier`` (the process group's) runs before each timed region so that all ranks start it
    together; the per-repeat slowest rank then sets the pace, as it does in training.
    """
    for _ in range(warmup):
        step()
    synchronize(device)
    times = []
    for _ in range(repeats):
        if barrier is not None:
            barrier()
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return times
