"""Run tasks on a Ray cluster (the only module that imports ray).

Each item is one Ray task with ``max_retries`` set, so Ray re-runs a task whose worker died;
results come back in task order. With ``address`` None or ``auto`` we join a Ray already running
on this machine or start a local one (``workers`` CPUs); any other address is a cluster to
connect to, whose workers must have imgnet-tools installed. We shut Ray down afterwards only if we
started it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

from imgnet_tools.errors import DependencyError, ImgnetError

if TYPE_CHECKING:  # pragma: no cover
    from imgnet_tools.execute.tasks import ExecutorParams

T = TypeVar("T")
R = TypeVar("R")


def _connect(params: "ExecutorParams") -> bool:
    """Initialise Ray unless it already is; return True when we started it here."""
    try:
        import ray
    except ImportError:
        raise DependencyError(
            "--executor ray needs Ray, which is not installed: pip install 'imgnet-tools[ray]'."
        ) from None
    if ray.is_initialized():
        return False
    address = None if params.address in (None, "auto", "local") else params.address
    try:
        if address is None:
            ray.init(num_cpus=params.workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ImgnetError(f"could not connect to Ray at {params.address!r}: {exc}; check --address.") from exc
    return True


def run_on_ray(
    fn: Callable[[T], R],
    items: Sequence[T],
    params: "ExecutorParams",
    on_done: Callable[[int, R], None] | None = None,
) -> list[R]:
    """``[fn(item) for item in items]`` as Ray tasks, each retried up to ``params.retries`` times."""
    started = _connect(params)
    import ray

    try:
        remote = ray.remote(num_cpus=1, max_retries=params.retries)(fn)
        refs = [remote.remote(item) for item in items]
        where = {ref: i for i, ref in enumerate(refs)}
        results: dict[int, R] = {}
        waiting = list(refs)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            for ref in done:
                try:
                    results[where[ref]] = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    raise exc.cause if isinstance(exc.cause, BaseException) else exc
                except ray.exceptions.WorkerCrashedError as exc:
                    raise ImgnetError(f"a Ray worker died more than {params.retries} times: {exc}") from exc
                if on_done is not None:
                    on_done(where[ref], results[where[ref]])
        return [results[i] for i in range(len(items))]
    finally:
        if started:
            ray.shutdown()
