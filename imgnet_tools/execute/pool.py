"""A local pool of worker processes that knows which task each worker runs.

Why not ``concurrent.futures.ProcessPoolExecutor``: when one of its workers dies (a decoder
segfault, the OOM killer) the whole pool breaks and every pending task fails with it, so nobody
can tell which task killed the worker, and a task cannot be given a time limit. Here each worker
runs one task at a time, sent over its own pipe; the pool watches every pipe and every process
sentinel, so a death is charged to exactly the task that was running, and a task past its
deadline has its worker killed. A dead or killed worker is replaced at once.

Workers start from a fork server that has the task's module imported (``forkserver`` where
there is one, else ``spawn``), so threads of the parent (Arrow, torch) are never forked and a new
worker starts in milliseconds. :meth:`Pool.start` may run in a thread while the caller does
other set-up.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Optional, Union

_STOP = None
Timeout = Union[float, Callable[[Any], Optional[float]], None]  # seconds, or seconds for a task's argument


def context(preload: str | None = None) -> multiprocessing.context.BaseContext:
    """The start method: forkserver (preloading ``preload``, a module name) where available, else spawn."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if preload and preload.startswith("imgnet_tools.") and "forkserver" in methods:
        # only takes effect when this process starts its fork server, i.e. on its first pool
        ctx.set_forkserver_preload([preload])
    return ctx


class TaskError(Exception):
    """A task raised: the exception, re-raised in the parent, with the worker's traceback text."""

    def __init__(self, error: BaseException, trace: str) -> None:
        super().__init__(str(error))
        self.error, self.trace = error, trace


def _worker_main(conn: multiprocessing.connection.Connection) -> None:
    """Run tasks from ``conn`` until told to stop: ``(fn, arg)`` in, ``(ok, value)`` out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if "pyarrow" in sys.modules:  # the fork server's preload brought it: spare every worker a pandas import
        from imgnet_tools.manifest.parquet import arrow_without_pandas, own_process

        own_process()
        arrow_without_pandas()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is _STOP:
            return
        fn, arg = message
        try:
            reply: tuple[bool, Any] = (True, fn(arg))
        except BaseException as exc:  # noqa: BLE001 - handed to the parent, which decides
            reply = (False, (exc, traceback.format_exc()))
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - an unpicklable result or exception
            conn.send((False, (RuntimeError(f"task result could not be sent back: {exc!r}"), traceback.format_exc())))


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    task: int | None = None
    deadline: float | None = None


@dataclass(frozen=True)
class Finished:
    """Task ``task`` returned ``value``."""

    task: int
    value: Any


@dataclass(frozen=True)
class Died:
    """Task ``task``'s worker died (``why``: ``crashed``) or was killed at its deadline (``timeout``)."""

    task: int
    why: str
    detail: str


class Pool:
    """``workers`` processes that run ``fn(arg)`` tasks one at a time each (see the module docstring)."""

    def __init__(self, workers: int, preload: str | None = None) -> None:
        self._n = max(1, workers)
        self._ctx = context(preload)
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def size(self) -> int:
        return self._n

    def start(self) -> None:
        """Start every worker now (idempotent; safe to call from a thread)."""
        with self._lock:
            while len(self._workers) < self._n and not self._closed:
                self._workers.append(self._spawn())

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_worker_main, args=(child,), daemon=True, name="imgnet-worker")  # type: ignore[attr-defined]
        process.start()
        child.close()
        return _Worker(process, parent)

    def run(self, fn: Callable[[Any], Any], next_task: Callable[[], tuple[int, Any] | None],
            timeout: Timeout = None) -> Iterator[Finished | Died]:
        """Run ``fn(arg)`` for tasks ``(task id, arg)`` taken from ``next_task()`` whenever a worker is
        idle (it returns None when it has nothing now); yield each outcome as it comes, until no
        task is running and ``next_task()`` has nothing. ``timeout``: seconds a task may run before
        its worker is killed (or a function of the task's argument giving that). A task that raises ends the run: :class:`TaskError` is raised (the
        other workers' tasks are abandoned and those workers replaced)."""
        self.start()
        while True:
            self._dispatch(fn, next_task, timeout)  # first tasks, and those the caller queued (retries, pieces)
            busy = [w for w in self._workers if w.task is not None]
            if not busy:
                return
            outcomes: list[Finished | Died] = []
            try:
                outcomes.extend(self._wait(busy))
            except TaskError:
                yield from outcomes  # results that came in before the failing one are still the caller's
                raise
            # Idle workers get their next task before the caller sees these outcomes: what the
            # caller does with a result (commit it, plan the next chunk) no longer keeps a worker idle.
            self._dispatch(fn, next_task, timeout)
            yield from outcomes

    def _dispatch(self, fn: Callable[[Any], Any], next_task: Callable[[], tuple[int, Any] | None],
                  timeout: Timeout) -> None:
        for worker in [w for w in self._workers if w.task is None]:
            task = next_task()
            if task is None:
                break
            self._send(worker, task[0], (fn, task[1]), timeout)

    def _send(self, worker: _Worker, task: int, message: tuple[Any, Any], timeout: Timeout) -> None:
        """Give ``task`` to ``worker``; a worker found dead before it started is replaced, uncharged."""
        for _ in range(3):
            try:
                worker.conn.send(message)
                break
            except OSError:  # BrokenPipeError, ConnectionResetError: it died while idle
                index = self._workers.index(worker)
                self._replace(worker)
                worker = self._workers[index]
        else:
            raise RuntimeError("could not start a worker process; check memory and process limits")
        limit = timeout(message[1]) if callable(timeout) else timeout
        worker.task, worker.deadline = task, (time.monotonic() + limit) if limit else None

    def _wait(self, busy: list[_Worker]) -> Iterator[Finished | Died]:
        deadlines = [w.deadline for w in busy if w.deadline is not None]
        wait_for = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        ready = set(multiprocessing.connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                                                    timeout=wait_for))
        now = time.monotonic()
        for worker in busy:
            task = worker.task
            assert task is not None
            if worker.conn in ready:
                try:
                    ok, value = worker.conn.recv()
                except (EOFError, OSError):
                    ok, value = None, None
                if ok is not None:
                    worker.task = worker.deadline = None
                    if not ok:
                        error, trace = value
                        self._replace_all_busy()
                        raise TaskError(error, trace)
                    if worker.process.sentinel in ready:  # it returned, then died: replace it, charge nobody
                        self._replace(worker)
                    yield Finished(task, value)
                    continue
            if worker.process.sentinel in ready or worker.conn in ready:
                worker.process.join(1.0)
                code = worker.process.exitcode
                self._replace(worker)
                yield Died(task, "crashed", _describe_exit(code))
            elif worker.deadline is not None and now >= worker.deadline:
                self._kill(worker)
                self._replace(worker)
                yield Died(task, "timeout", "ran past its time limit; its worker was killed")

    def _kill(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5.0)

    def _replace(self, worker: _Worker) -> None:
        worker.conn.close()
        with self._lock:
            index = self._workers.index(worker)
            self._workers[index] = self._spawn() if not self._closed else worker
        worker.task = worker.deadline = None

    def _replace_all_busy(self) -> None:
        """After a task error: workers still running abandoned tasks are killed and replaced."""
        for worker in [w for w in self._workers if w.task is not None]:
            self._kill(worker)
            self._replace(worker)

    def close(self, wait: bool = False) -> None:
        """Stop every worker (``wait``: join them; else they exit on their own)."""
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
        for worker in workers:
            try:
                if worker.task is None:
                    worker.conn.send(_STOP)
                else:
                    worker.process.kill()
            except (BrokenPipeError, OSError):
                pass
            worker.conn.close()
        if wait:
            for worker in workers:
                worker.process.join(5.0)

    def pids(self) -> list[int]:
        """Process ids of the current workers (for tests and diagnostics)."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]


def _describe_exit(code: int | None) -> str:
    """A worker's exit status in words: ``killed by SIGSEGV``, ``exited with status 1``."""
    if code is None:
        return "died (exit status unknown)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exited with status {code}"


def current_pid() -> int:
    """This process's id (a task for checking that workers started)."""
    return os.getpid()
