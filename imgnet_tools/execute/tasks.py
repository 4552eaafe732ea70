"""Run independent tasks on a chosen executor, with retries when a worker dies.

``run_tasks`` is what stages call: the local process pool (default) or Ray, picked by
:class:`ExecutorParams`. Results come back in task order whichever executor ran them. A task
whose worker process dies (killed, out of memory) is retried up to ``retries`` times; an exception
raised by the task itself is a run-level error and is raised as is (tasks turn per-item problems
into data, so an exception means something the whole run should stop for, like a full disk).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import threading
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence, TypeVar

from imgnet_tools.errors import ImgnetError, InputError
from imgnet_tools.execute.local import resolve_workers

T = TypeVar("T")
R = TypeVar("R")
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class ExecutorParams:
    """``executor``: local or ray; ``address``: Ray cluster address (``auto``: a running local
    cluster, or a new one); ``workers``: processes (local) or CPUs of a new Ray (None: all cores)."""

    executor: str = "local"
    address: str | None = None
    workers: int | None = None
    retries: int = 2


class WorkerLostError(ImgnetError):
    """A task's worker died more times than the retries allow."""


def run_tasks(
    fn: Callable[[T], R],
    items: Sequence[T],
    params: ExecutorParams = ExecutorParams(),
    on_done: Callable[[int, R], None] | None = None,
    warm: "Warm | None" = None,
) -> list[R]:
    """``[fn(item) for item in items]`` on the chosen executor; ``on_done(i, result)`` as each
    finishes; ``warm``: worker processes started earlier with :func:`warm_pool`."""
    if params.executor not in EXECUTORS:
        raise InputError(f"unknown executor {params.executor!r}; use one of {', '.join(EXECUTORS)}.")
    if params.executor == "ray":
        from imgnet_tools.execute.ray_executor import run_on_ray

        return run_on_ray(fn, items, params, on_done)
    if params.address is not None:
        raise InputError("--address is only for --executor ray.")
    return run_local(fn, items, resolve_workers(params.workers), params.retries, on_done, warm)


def _context(fn: Callable[..., object]) -> "multiprocessing.context.BaseContext":
    """The local pool's start method: forkserver where there is one, else spawn."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if fn.__module__.startswith("imgnet_tools.") and "forkserver" in methods:
        # Workers forked from a server that has the task's module imported start at once (only
        # takes effect when this process starts its fork server, i.e. on its first pool).
        ctx.set_forkserver_preload([fn.__module__])
    return ctx


@contextlib.contextmanager
def warm_pool(fn: Callable[..., object], params: ExecutorParams = ExecutorParams()) -> Iterator["Warm"]:
    """Start the local pool's worker processes now, for a later ``run_tasks(fn, ..., params, warm=...)``.

    Starting workers (a fork server that imports ``fn``'s module, then one process per worker)
    takes tens of milliseconds, a hundred or more when the fork server is new. A thread does it,
    so the caller's own set-up (reading a manifest, planning) goes on meanwhile instead of waiting;
    :meth:`Warm.take` waits for the thread. A pool that ``run_tasks`` did not take is shut down on
    leaving the block. Nothing is started for Ray, one worker, or an inline run.
    """
    warm = Warm()
    workers = resolve_workers(params.workers)
    if params.executor == "local" and workers > 1:
        warm.workers = workers

        def start() -> None:
            pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=_context(fn))
            try:
                for _ in range(workers):  # a pool spawns a worker per submitted task while none is idle
                    pool.submit(os.getpid)
            except BaseException:  # noqa: BLE001 - the run then starts its own pool, and sees the error itself
                pool.shutdown(wait=False, cancel_futures=True)
                return
            warm.pool = pool

        warm.starting = threading.Thread(target=start, name="imgnet-warm-pool", daemon=True)
        warm.starting.start()
    try:
        yield warm
    finally:
        warm.wait()
        if warm.pool is not None:
            warm.pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Warm:
    """A pool being started, or started, that :func:`run_local` may take (see :func:`warm_pool`)."""

    pool: cf.ProcessPoolExecutor | None = None
    workers: int = 0
    starting: threading.Thread | None = None

    def wait(self) -> None:
        """Wait until the pool has been started (or failed to start: then ``pool`` stays None)."""
        if self.starting is not None:
            self.starting.join()
            self.starting = None

    def take(self, workers: int) -> cf.ProcessPoolExecutor | None:
        """The pool when it has ``workers`` workers (then it is no longer ours to shut down)."""
        self.wait()
        pool, self.pool = (self.pool, None) if self.workers == workers else (None, self.pool)
        return pool


def run_local(
    fn: Callable[[T], R],
    items: Sequence[T],
    workers: int,
    retries: int = 2,
    on_done: Callable[[int, R], None] | None = None,
    warm: Warm | None = None,
) -> list[R]:
    """Run on a local process pool; a pool broken by a dead worker is rebuilt and its unfinished
    tasks resubmitted (each task at most ``retries`` extra times). One worker: inline. ``warm``:
    a pool started earlier by :func:`warm_pool`, used for the first attempt."""
    results: dict[int, R] = {}
    if workers <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            results[i] = fn(item)
            if on_done is not None:
                on_done(i, results[i])
        return [results[i] for i in range(len(items))]
    attempts = [0] * len(items)
    ctx = _context(fn)
    started = warm.take(workers) if warm is not None else None
    while len(results) < len(items):
        pending = [i for i in range(len(items)) if i not in results]
        pool = started or cf.ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=ctx)
        started = None
        try:
            futures = {pool.submit(fn, items[i]): i for i in pending}
            _collect(futures, results, attempts, retries, on_done)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        # Every task has returned (or the pool broke): the workers exit on their own, and the
        # caller need not wait for them (a few milliseconds at the end of every run).
        pool.shutdown(wait=False)
    return [results[i] for i in range(len(items))]


def _collect(
    futures: dict["cf.Future[R]", int],
    results: dict[int, R],
    attempts: list[int],
    retries: int,
    on_done: Callable[[int, R], None] | None,
) -> None:
    """Gather finished futures into ``results``; count a broken pool against every unfinished task
    (we cannot tell which task killed the worker)."""
    for future in cf.as_completed(futures):
        i = futures[future]
        try:
            results[i] = future.result()
        except cf.process.BrokenProcessPool:
            attempts[i] += 1
            if attempts[i] > retries:
                raise WorkerLostError(
                    f"a worker died {attempts[i]} times while task {i} was pending; check memory and "
                    "system logs (dmesg), then run again: finished work is kept."
                ) from None
            continue
        if on_done is not None:
            on_done(i, results[i])
