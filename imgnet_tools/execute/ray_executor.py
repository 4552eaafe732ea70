"""Run tasks on a Ray cluster (the only module that imports ray).

The same contract as the local :class:`~imgnet_tools.execute.pool.Pool`: tasks are taken from a
callable as slots free up, outcomes come back as they finish, a task whose worker died (or that
ran past its time limit and was cancelled) comes back as :class:`~imgnet_tools.execute.pool.Died`
for :mod:`.tasks` to retry, and an exception raised by a task is raised here. Ray's own task
retries are off, so retries count the same on either executor.

With ``address`` None we start a local Ray of our own (``workers`` CPUs), even when another one
is reachable (a ``ray start`` cluster, ``RAY_ADDRESS``, a stale address file); ``auto`` joins a Ray
already running on this machine, else starts one; any other address is a cluster to connect to,
whose workers must have imgnet-tools installed. We shut Ray down afterwards only if we started it.

Where Ray's time goes on one machine (measured, BENCHMARKS.md "Ray"): starting a local Ray is a
fixed cost of seconds (seven processes that each import Ray); each new connection (a Ray job) gets
new worker processes, which import Ray and then the stage's modules. So a stage connects once
(the shared-folder probe's connection is kept for the run, :func:`check_shared_folders`), Ray
starts lean (no dashboard, no usage-stats report, worker logs not forwarded, Ray's INFO lines
not printed), and a run can warm its workers' imports while the driver plans
(:meth:`RayRunner.prewarm`).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from imgnet_tools.errors import DependencyError, ImgnetError, InputError
from imgnet_tools.execute.params import ExecutorParams
from imgnet_tools.execute.pool import Died, Finished, TaskError


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DependencyError(
            "--executor ray needs Ray, which is not installed: pip install 'imgnet-tools[ray]'."
        ) from None
    return ray


class _Lent:
    """A connection :func:`check_shared_folders` made and left open for the stage's run (its
    address), so a stage connects to the cluster once, not twice: each connection is a Ray job
    with worker processes of its own to start."""

    address: "str | None | bool" = False  # False: none lent


def _init(ray: Any, **options: Any) -> None:
    """``ray.init``, lean: no usage-stats report (a user may still turn it on in the environment),
    worker output not forwarded, Ray's own INFO lines not printed (warnings still are)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(log_to_driver=False, logging_level=logging.WARNING, **options)


def connect(params: ExecutorParams) -> bool:
    """Initialise Ray unless it already is; return True when we initialised it here (or take over
    the connection the stage's shared-folder probe made). ``auto`` joins a cluster running on this
    node (``ray start``) when there is one, else starts one."""
    ray = _ray()
    lent, _Lent.address = _Lent.address, False
    if ray.is_initialized():
        if lent is False:
            return False
        if lent == params.address:
            return True
        ray.shutdown()  # lent for another address (a stage that failed before its run): not ours to keep
    if params.address == "auto":
        try:
            _init(ray, address="auto")
            return True
        except ConnectionError:
            pass  # none running: start one here
    address = None if params.address in (None, "auto", "local") else params.address
    try:
        if address is None:
            # "local": a new Ray, never one found through RAY_ADDRESS or an address file (Ray would
            # join that and refuse num_cpus)
            _init(ray, address="local", num_cpus=params.n_workers(), include_dashboard=False)
        else:
            _init(ray, address=address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ImgnetError(f"could not connect to Ray at {params.address!r}: {exc}; check --address.") from exc
    return True


class RayRunner:
    """Tasks as Ray tasks (one CPU each), at most two per cluster CPU in flight. A task's time limit
    counts from when it was submitted (Ray does not say when it started), so it includes at most
    one other task's time in the queue: limits are meant to be generous."""

    def __init__(self, params: ExecutorParams) -> None:
        self._started = connect(params)
        ray = _ray()
        self.cpus = int(ray.cluster_resources().get("CPU", 1) or 1)
        self.window = max(2, 2 * self.cpus)
        self._warming: list[Any] = []

    def prewarm(self, module: str | None) -> None:
        """Have the workers import ``module`` now (one task per cluster CPU), so a new Ray job's
        worker processes start and import while the driver reads and plans. Returns at once."""
        if module and module.startswith("imgnet_tools."):
            warm = _ray().remote(num_cpus=1, max_retries=0)(_import)
            self._warming = [warm.remote(module) for _ in range(self.cpus)]

    def run(self, fn: Callable[[Any], Any], next_task: Callable[[], tuple[int, Any] | None],
            timeout: "float | Callable[[Any], float | None] | None" = None) -> Iterator[Finished | Died]:
        """Like :meth:`imgnet_tools.execute.pool.Pool.run`, on the cluster."""
        ray = _ray()
        remote = ray.remote(num_cpus=1, max_retries=0, retry_exceptions=False)(fn)
        flying: dict[Any, tuple[int, float | None]] = {}
        while True:
            while len(flying) < self.window:
                task = next_task()
                if task is None:
                    break
                limit = timeout(task[1]) if callable(timeout) else timeout
                flying[remote.remote(task[1])] = (task[0], time.monotonic() + limit if limit else None)
            if not flying:
                return
            deadlines = [d for _, d in flying.values() if d is not None]
            wait_for = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready, _ = ray.wait(list(flying), num_returns=1, timeout=wait_for)
            for ref in ready:
                task_id, _ = flying.pop(ref)
                yield self._outcome(ray, ref, task_id)
            now = time.monotonic()
            for ref, (task_id, deadline) in list(flying.items()):
                if deadline is not None and now >= deadline:
                    ray.cancel(ref, force=True)
                    del flying[ref]
                    yield Died(task_id, "timeout", "ran past its time limit; its Ray task was cancelled")

    @staticmethod
    def _outcome(ray: Any, ref: Any, task_id: int) -> Finished | Died:
        try:
            return Finished(task_id, ray.get(ref))
        except ray.exceptions.RayTaskError as exc:  # the task itself raised
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            raise TaskError(cause, str(exc)) from None
        except ray.exceptions.RayError as exc:  # its worker (or node) died, or ran out of memory
            return Died(task_id, "crashed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    def close(self) -> None:
        self._warming = []
        if self._started:
            _ray().shutdown()
            self._started = False


def _import(module: str) -> None:
    """Run on a worker: import ``module`` (a warm-up task of :meth:`RayRunner.prewarm`)."""
    import importlib

    importlib.import_module(module)


def _write_probe(target: str) -> str:
    """Run on a cluster node: write a probe file, return the node's host name."""
    import socket

    Path(target).write_text(f"imgnet probe from {socket.gethostname()}\n", encoding="utf-8")
    return socket.gethostname()


def check_shared_folders(folders: "Iterable[str | os.PathLike[str] | None]", params: ExecutorParams) -> None:
    """Before a stage runs on a Ray cluster it joins (``--address``), check that each folder it
    writes is shared with the cluster's nodes (:func:`check_shared_folder`). A Ray this run starts
    on this machine (no ``--address``, or ``auto`` with none running) needs no check."""
    if params.executor != "ray" or params.address in (None, "local"):
        return
    ray = _ray()
    if ray.is_initialized():
        joined = False
    elif params.address == "auto":
        try:
            _init(ray, address="auto")
        except ConnectionError:
            return  # none running: the stage starts its own Ray, on this machine
        joined = True
    else:
        joined = connect(params)
    try:
        for folder in folders:
            if folder is not None:
                _probe(Path(folder))
    except BaseException:
        if joined:
            ray.shutdown()
        raise
    if joined:  # kept for the stage's run, which takes it over (connect) and shuts it down
        _Lent.address = params.address


def check_shared_folder(folder: str | os.PathLike[str], params: ExecutorParams) -> None:
    """Refuse an output folder that Ray's workers cannot share with this process.

    A task on the cluster writes a probe file into ``folder``; this process must then read it. On
    one machine that always holds; on a multi-node cluster it holds only for a shared file system.
    """
    ray = _ray()
    started = connect(params)
    try:
        _probe(Path(folder))
    finally:
        if started:
            ray.shutdown()


def _probe(folder: Path) -> None:
    """The probe of :func:`check_shared_folder`, on the Ray this process is connected to."""
    ray = _ray()
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".imgnet-probe-{uuid.uuid4().hex}"
    try:
        host = ray.get(ray.remote(num_cpus=1, max_retries=0)(_write_probe).remote(str(probe)), timeout=120)
    except ray.exceptions.RayTaskError as exc:
        raise InputError(f"a Ray worker cannot write to {folder}: {exc.cause}; put --out on a file system "
                         "every node mounts at the same path.") from None
    if not probe.is_file():
        raise InputError(f"{folder} is not shared with the Ray cluster: a worker on {host} wrote a probe file "
                         "there that this machine cannot see; put --out on a shared file system (NFS, Lustre, "
                         "a FUSE mount of object storage) mounted at the same path on every node.")
    probe.unlink(missing_ok=True)
