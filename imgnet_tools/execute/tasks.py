"""Run independent tasks on the chosen executor: one front for the local pool and Ray.

:func:`stream_tasks` is what stages call. It takes tasks lazily from an iterable (never more than
the workers can take at once, so a stream of millions of chunks costs no memory), runs them on
the local :class:`~imgnet_tools.execute.pool.Pool` or on Ray, and yields each outcome as it
finishes: :class:`Done`, or, when a task's worker died (or the task ran past
``ExecutorParams.task_timeout``) more often than ``retries`` allows, :class:`Lost`. A task that
raises is a run-level error (tasks turn per-item problems into data, so an exception means
something the whole run should stop for, like a full disk) and is raised as is.

:func:`run_tasks` is the plain form: a list of results in task order.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from imgnet_tools.errors import ImgnetError
from imgnet_tools.execute.params import ExecutorParams
from imgnet_tools.execute.pool import Died, Finished, Pool, TaskError

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["Done", "ExecutorParams", "Lost", "TaskRun", "WorkerLostError", "run_tasks", "stream_tasks", "warm_pool"]


@dataclass(frozen=True)
class Done(Generic[R]):
    """Task ``index`` (its position in the input) returned ``value``."""

    index: int
    value: R


@dataclass(frozen=True)
class Lost:
    """Task ``index`` never finished: its worker died or it ran out of time (``why``), ``attempts`` times."""

    index: int
    why: str
    detail: str
    attempts: int


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (shown as the exception's cause)."""

    def __init__(self, trace: str) -> None:
        super().__init__(f"\n\"\"\"\n{trace.rstrip()}\n\"\"\"")

    def __str__(self) -> str:
        return str(self.args[0])


class WorkerLostError(ImgnetError):
    """A task's worker died more times than the retries allow."""


@dataclass
class Warm:
    """A local pool being started in a thread by :func:`warm_pool`, for a later :func:`stream_tasks`."""

    pool: Pool | None = None
    starting: threading.Thread | None = None
    taken: bool = False
    ray: Any = None  # a RayRunner whose workers are importing the tasks' module (Ray's tasks run asynchronously)

    def take_ray(self) -> Any:
        """The Ray runner warm_pool started (then it is no longer ours to close), or None."""
        runner, self.ray = self.ray, None
        return runner

    def take(self, workers: int) -> Pool | None:
        """The pool when it has ``workers`` workers (then it is no longer ours to close)."""
        if self.starting is not None:
            self.starting.join()
            self.starting = None
        if self.pool is None or self.pool.size != workers or self.taken:
            return None
        self.taken = True
        return self.pool


@contextlib.contextmanager
def warm_pool(fn: Callable[..., object] | str, params: ExecutorParams = ExecutorParams()) -> Iterator[Warm]:
    """Start the local pool's worker processes now, in a thread, for a later
    ``stream_tasks(fn, ..., params, warm=...)``: the caller's own set-up (reading a manifest,
    planning) goes on meanwhile. A pool no run took is closed on leaving the block. On Ray it
    connects now and has every worker import ``fn``'s module (tasks that run while the caller
    goes on). Nothing is started for an inline run. ``fn`` may be given as its module's name,
    so that the caller need not import that module (and what it imports) first."""
    module = fn if isinstance(fn, str) else fn.__module__
    warm = Warm()
    if params.executor == "local" and not params.inline:
        warm.pool = Pool(params.n_workers(), preload=module)
        warm.starting = threading.Thread(target=warm.pool.start, name="imgnet-warm-pool", daemon=True)
        warm.starting.start()
    elif params.executor == "ray":
        from imgnet_tools.execute.ray_executor import RayRunner

        warm.ray = RayRunner(params)
        warm.ray.prewarm(module)
    try:
        yield warm
    finally:
        if warm.starting is not None:
            warm.starting.join()
        if warm.pool is not None and not warm.taken:
            warm.pool.close()
        if warm.ray is not None:
            warm.take_ray().close()


def stream_tasks(fn: Callable[[T], R], items: Iterable[T], params: ExecutorParams = ExecutorParams(),
                 warm: Warm | None = None) -> Iterator[Done[R] | Lost]:
    """``fn(item)`` for every item, outcomes as they finish (see the module docstring)."""
    return iter(TaskRun(fn, items, params, warm))


class TaskRun(Generic[T, R]):
    """One run of ``fn`` over ``items`` (taken lazily), to which more tasks can be added while it
    goes (:meth:`add`, e.g. the pieces of a lost chunk). Iterate it for the outcomes; an input
    item's outcome has its position as ``index``, an added task's the negative index
    :meth:`add` returned."""

    def __init__(self, fn: Callable[[T], R], items: Iterable[T], params: ExecutorParams = ExecutorParams(),
                 warm: Warm | None = None, timeout: Callable[[T], float | None] | None = None,
                 preload: str | None = None) -> None:
        self._fn, self._params, self._warm = fn, params, warm
        self._preload = preload or getattr(getattr(fn, "func", fn), "__module__", None)
        self._timeout = timeout or params.task_timeout
        self._it = enumerate(items)
        self._exhausted = False
        self._args: dict[int, T] = {}
        self._again: collections.deque[int] = collections.deque()
        self._tries: collections.Counter[int] = collections.Counter()
        self._added = 0

    def add(self, item: T) -> int:
        """Queue one more task (it runs before the input's next items); its (negative) index."""
        self._added += 1
        index = -self._added
        self._args[index] = item
        self._again.append(index)
        return index

    def _next(self) -> tuple[int, T] | None:
        if self._again:
            index = self._again.popleft()
            return index, self._args[index]
        if self._exhausted:
            return None
        try:
            index, item = next(self._it)
        except StopIteration:
            self._exhausted = True
            return None
        self._args[index] = item
        return index, item

    def __iter__(self) -> Iterator[Done[R] | Lost]:
        if self._params.inline:
            yield from self._inline()
            return
        primed: collections.deque[tuple[int, T]] = collections.deque()
        if self._warm is not None and self._warm.starting is not None:
            # The local pool is still starting (its fork server importing the tasks' module):
            # make the first tasks meanwhile (a stage's first chunks: reading, planning).
            while len(primed) < self._params.n_workers() and (task := self._next()) is not None:
                primed.append(task)

        def next_task() -> tuple[int, T] | None:
            return primed.popleft() if primed else self._next()

        runner, close = _runner(self._preload, self._params, self._warm)
        try:
            for outcome in runner.run(self._fn, next_task, self._timeout):
                if isinstance(outcome, Finished):
                    self._forget(outcome.task)
                    yield Done(outcome.task, outcome.value)
                    continue
                self._tries[outcome.task] += 1
                if self._tries[outcome.task] <= self._params.retries:
                    self._again.append(outcome.task)
                else:
                    tries = self._tries[outcome.task]
                    self._forget(outcome.task)
                    yield Lost(outcome.task, outcome.why, outcome.detail, tries)
        except TaskError as exc:
            raise exc.error from RemoteTraceback(exc.trace)
        finally:
            close()

    def _inline(self) -> Iterator[Done[R] | Lost]:
        while (task := self._next()) is not None:
            self._forget(task[0])
            yield Done(task[0], self._fn(task[1]))

    def _forget(self, index: int) -> None:
        self._args.pop(index, None)
        self._tries.pop(index, None)


def _runner(preload: str | None, params: ExecutorParams, warm: Warm | None) -> tuple[Any, Callable[[], None]]:
    """The pool or Ray runner, and how to close it (``preload``: the module the tasks' function is in)."""
    if params.executor == "ray":
        from imgnet_tools.execute.ray_executor import RayRunner

        ray_runner = (warm.take_ray() if warm is not None else None) or RayRunner(params)
        return ray_runner, ray_runner.close
    pool = warm.take(params.n_workers()) if warm is not None else None
    pool = pool or Pool(params.n_workers(), preload=preload)
    return pool, pool.close


def run_tasks(fn: Callable[[T], R], items: Iterable[T], params: ExecutorParams = ExecutorParams(),
              on_done: Callable[[int, R], None] | None = None, warm: Warm | None = None) -> list[R]:
    """``[fn(item) for item in items]`` on the chosen executor, in task order; ``on_done(i, result)``
    as each finishes. A task lost after its retries raises :class:`WorkerLostError`."""
    results: dict[int, R] = {}
    for outcome in stream_tasks(fn, items, params, warm):
        if isinstance(outcome, Lost):
            raise WorkerLostError(
                f"a worker {outcome.detail} {outcome.attempts} times while running task {outcome.index}"
                f" ({outcome.why}); check memory and system logs (dmesg), then run again: finished work is kept."
            )
        results[outcome.index] = outcome.value
        if on_done is not None:
            on_done(outcome.index, outcome.value)
    return [results[i] for i in range(len(results))]
