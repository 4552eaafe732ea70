"""Executors: ordered results, retries after a worker dies, errors raised; real local pool and real Ray."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from imgnet_tools.errors import DependencyError, InputError
from imgnet_tools.execute.tasks import ExecutorParams, WorkerLostError, run_local, run_tasks

TESTS = Path(__file__).resolve().parent


def square_slowly(n: int) -> int:
    import time

    time.sleep(0.01 * (n % 3))
    return n * n


def die_once(marker: str) -> str:
    """Kill the worker process the first time (no exception: the process just ends), then succeed."""
    if not os.path.exists(marker):
        Path(marker).write_text("died")
        os._exit(1)
    return f"{os.getpid()}"


def always_die(_: int) -> int:
    os._exit(1)


def fail(n: int) -> int:
    raise OSError(28, "No space left on device")


def test_local_results_come_back_in_task_order() -> None:
    done: list[int] = []
    assert run_local(square_slowly, list(range(12)), workers=2, on_done=lambda i, _: done.append(i)) == [n * n for n in range(12)]
    assert sorted(done) == list(range(12))
    assert run_local(square_slowly, [3, 1], workers=1) == [9, 1]


def test_local_retries_a_task_whose_worker_died(tmp_path: Path) -> None:
    markers = [str(tmp_path / f"marker-{i}") for i in range(3)]
    results = run_local(die_once, markers, workers=2, retries=3)
    assert len(results) == 3 and all(Path(m).read_text() == "died" for m in markers)


def test_local_gives_up_after_the_retries() -> None:
    with pytest.raises(WorkerLostError, match="died 2 times"):
        run_local(always_die, [1, 2], workers=2, retries=1)


def test_task_errors_are_raised_not_retried() -> None:
    with pytest.raises(OSError, match="No space left"):
        run_local(fail, [1, 2, 3], workers=2)


def test_unknown_executor_and_stray_address_are_input_errors() -> None:
    with pytest.raises(InputError, match="unknown executor"):
        run_tasks(square_slowly, [1], ExecutorParams(executor="dask"))
    with pytest.raises(InputError, match="--address"):
        run_tasks(square_slowly, [1], ExecutorParams(address="auto"))


def test_ray_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when Ray is not installed
    with pytest.raises(DependencyError, match=r"pip install 'imgnet-tools\[ray\]'"):
        run_tasks(square_slowly, [1], ExecutorParams(executor="ray"))


@pytest.fixture(scope="module")
def ray_session():
    """One real local Ray for every Ray test in this module (starting one takes seconds)."""
    ray = pytest.importorskip("ray", reason="Ray is the optional [ray] extra; install imgnet-tools[ray]")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(TESTS.parent), *sys.path])}})
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_results_in_order_and_a_dead_worker_is_retried(ray_session, tmp_path: Path) -> None:
    assert run_tasks(square_slowly, list(range(8)), ExecutorParams(executor="ray")) == [n * n for n in range(8)]
    marker = str(tmp_path / "ray-marker")
    assert run_tasks(die_once, [marker], ExecutorParams(executor="ray", retries=2))[0].isdigit()
    assert Path(marker).read_text() == "died"
    with pytest.raises(OSError, match="No space left"):
        run_tasks(fail, [1], ExecutorParams(executor="ray"))
    assert ray_session.is_initialized()  # we did not start it, so we did not stop it


@pytest.mark.slow
def test_shard_on_ray_is_byte_identical_to_local(ray_session, tmp_path: Path) -> None:
    from imgnet_tools.shards.write import ShardParams, shard
    from tests.shard_data import make_dataset, write_manifest

    manifest = write_manifest(make_dataset(tmp_path / "img", {"n01440764": 6, "n01443537": 5}), tmp_path / "m.parquet")
    local = shard(ShardParams(manifest=str(manifest), out=str(tmp_path / "local"), size=3, workers=2))
    remote = shard(ShardParams(manifest=str(manifest), out=str(tmp_path / "ray"), size=3, executor="ray", address="auto"))
    assert local.shards == remote.shards == 4
    for name in ("train-000000.tar", "train-000003.idx", "dataset.json", "manifest.parquet"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()


def test_a_warm_pool_is_taken_by_the_run_and_an_untaken_one_is_shut_down() -> None:
    from imgnet_tools.execute.tasks import warm_pool

    with warm_pool(square_slowly, ExecutorParams(workers=2)) as warm:
        warm.wait()  # a thread starts the pool while the caller goes on
        pool = warm.pool
        assert pool is not None
        started = {p.pid for p in pool._processes.values()}  # spawned before any task was submitted
        assert len(started) == 2
        assert run_tasks(square_slowly, list(range(6)), ExecutorParams(workers=2), warm=warm) == [n * n for n in range(6)]
        assert warm.pool is None  # taken, and closed by the run
    with warm_pool(square_slowly, ExecutorParams(workers=2)) as warm:
        assert warm.take(3) is None  # another size: the run makes its own pool
        pool = warm.pool
        assert pool is not None
    assert pool is not None and pool._shutdown_thread  # left behind, so shut down on leaving the block
    with warm_pool(square_slowly, ExecutorParams(workers=1)) as warm:
        assert warm.pool is None  # one worker runs inline: nothing to start
