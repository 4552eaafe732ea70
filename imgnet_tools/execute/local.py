"""Local execution: a process pool over all cores, or inline for one worker."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """Every core this process may use (its CPU affinity, not the machine's core count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | None) -> int:
    """``workers`` when given (at least 1), else every core this process may use."""
    return max(1, workers) if workers is not None else available_cores()


def map_ordered(
    fn: Callable[[T], R],
    items: Sequence[T] | Iterable[T],
    workers: int = 1,
    chunksize: int = 1,
    progress: Callable[[int], None] | None = None,
) -> Iterator[R]:
    """Yield ``fn(item)`` for every item, in input order, using ``workers`` processes.

    ``workers == 1`` runs inline (no pickling, easy to debug). The pool uses the ``spawn``-safe
    ``forkserver`` start method where available so that threads in the parent (Arrow, torch) are
    never forked.
    """
    if workers <= 1:
        for item in items:
            result = fn(item)
            if progress is not None:
                progress(1)
            yield result
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for result in pool.map(fn, items, chunksize=chunksize):
            if progress is not None:
                progress(1)
            yield result
