"""Executors on real processes and a real local Ray: results, retries after a worker dies, a dead or
overdue worker charged to exactly its task, task errors raised, and the chunked-stage skeleton
(resume from a store, a chunk whose worker keeps dying split down to the one item that kills it)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from imgnet_tools.errors import DependencyError, InputError
from imgnet_tools.execute.chunked import Chunk, ChunkJob, Outcome, run_chunks
from imgnet_tools.execute.params import ExecutorParams
from imgnet_tools.execute.pool import Pool
from imgnet_tools.execute.tasks import Done, Lost, WorkerLostError, run_tasks, stream_tasks, warm_pool
from tests.conftest import REPO

TESTS = REPO / "tests"


def square_slowly(n: int) -> int:
    time.sleep(0.01 * (n % 3))
    return n * n


def die_once(marker: str) -> str:
    """Kill the worker process the first time (no exception: the process just ends), then succeed."""
    if not os.path.exists(marker):
        Path(marker).write_text("died")
        os._exit(1)
    return f"{os.getpid()}"


def segfault_on_seven(n: int) -> int:
    """A decoder bug, simulated as the real thing: the worker process gets SIGSEGV."""
    if n == 7:
        os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(0.02)
    return n


def hang_on_three(n: int) -> int:
    if n == 3:
        time.sleep(600)
    return n


def fail(n: int) -> int:
    raise OSError(28, "No space left on device")


def test_results_in_task_order_on_a_pool_and_inline() -> None:
    done: list[int] = []
    assert run_tasks(square_slowly, range(12), ExecutorParams(workers=2),
                     on_done=lambda i, _: done.append(i)) == [n * n for n in range(12)]
    assert sorted(done) == list(range(12))
    assert run_tasks(square_slowly, [3, 1], ExecutorParams(executor="inline")) == [9, 1]


def test_a_worker_that_died_is_replaced_and_its_task_retried(tmp_path: Path) -> None:
    markers = [str(tmp_path / f"marker-{i}") for i in range(3)]
    pids = run_tasks(die_once, markers, ExecutorParams(workers=2, retries=1))
    assert len(pids) == 3 and all(Path(m).read_text() == "died" for m in markers)
    assert os.getpid() not in map(int, pids)


def test_a_death_is_charged_to_exactly_the_task_that_was_running() -> None:
    outcomes = list(stream_tasks(segfault_on_seven, range(12), ExecutorParams(workers=2, retries=1)))
    lost = [o for o in outcomes if isinstance(o, Lost)]
    assert [(o.index, o.why, o.attempts) for o in lost] == [(7, "crashed", 2)]
    assert "SIGSEGV" in lost[0].detail
    assert sorted(o.value for o in outcomes if isinstance(o, Done)) == [n for n in range(12) if n != 7]


def test_a_task_past_its_time_limit_has_its_worker_killed() -> None:
    started = time.monotonic()
    outcomes = list(stream_tasks(hang_on_three, range(6), ExecutorParams(workers=2, retries=0, task_timeout=1.0)))
    assert time.monotonic() - started < 60
    assert [(o.index, o.why) for o in outcomes if isinstance(o, Lost)] == [(3, "timeout")]
    assert len([o for o in outcomes if isinstance(o, Done)]) == 5


def test_run_tasks_gives_up_after_the_retries() -> None:
    with pytest.raises(WorkerLostError, match="SIGSEGV 2 times"):
        run_tasks(segfault_on_seven, [7], ExecutorParams(workers=2, retries=1))


def test_task_errors_are_raised_not_retried() -> None:
    with pytest.raises(OSError, match="No space left"):
        run_tasks(fail, [1, 2, 3], ExecutorParams(workers=2))


def test_executor_rules_are_input_errors() -> None:
    with pytest.raises(InputError, match="unknown executor"):
        ExecutorParams(executor="dask")
    with pytest.raises(InputError, match="--address"):
        ExecutorParams(address="auto")
    with pytest.raises(InputError, match="--workers"):
        ExecutorParams(workers=0)


def test_ray_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when Ray is not installed
    with pytest.raises(DependencyError, match=r"pip install 'imgnet-tools\[ray\]'"):
        run_tasks(square_slowly, [1], ExecutorParams(executor="ray"))


def test_a_warm_pool_is_taken_by_the_run_and_an_untaken_one_is_closed() -> None:
    with warm_pool(square_slowly, ExecutorParams(workers=2)) as warm:
        pool = warm.take(2)
        assert pool is not None and len(pool.pids()) == 2  # started in a thread before any task
        warm.taken = False  # give it back for the run below
        assert run_tasks(square_slowly, range(6), ExecutorParams(workers=2), warm=warm) == [n * n for n in range(6)]
        assert warm.taken
    with warm_pool(square_slowly, ExecutorParams(workers=2)) as warm:
        assert warm.take(3) is None  # another size: the run makes its own pool
        left = warm.pool
    assert left is not None and left.pids() == []  # closed on leaving the block
    with warm_pool(square_slowly, ExecutorParams(executor="inline")) as warm:
        assert warm.pool is None


def test_pool_workers_are_separate_processes_and_close_cleanly() -> None:
    pool = Pool(2)
    pool.start()
    pids = pool.pids()
    assert len(set(pids)) == 2 and os.getpid() not in pids
    pool.close(wait=True)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --- the chunked skeleton --------------------------------------------------------------------------

def double_all(items: Sequence[int]) -> list[int]:
    return [2 * segfault_on_seven(n) for n in items]


def crashed_item(item: int, why: str, detail: str) -> list[int]:
    return [-item]


def join_lists(parts: list[list[int]]) -> list[int]:
    return [x for part in parts for x in part]


JOB = ChunkJob(double_all, crashed_item, join_lists)


class DictStore:
    def __init__(self) -> None:
        self.results: dict[int, tuple[str, list[int]]] = {}
        self.commits = 0

    def load(self, chunk: Chunk[int]) -> list[int] | None:
        found = self.results.get(chunk.index)
        return found[1] if found and found[0] == chunk.key else None

    def commit(self, chunk: Chunk[int], result: list[int]) -> None:
        self.results[chunk.index] = (chunk.key, result)
        self.commits += 1


def _chunks(n: int, size: int, salt: str = "") -> list[Chunk[int]]:
    return [Chunk(i, list(range(s, min(n, s + size))), f"k{i}{salt}") for i, s in enumerate(range(0, n, size))]


def test_one_item_that_kills_its_worker_costs_one_result_not_the_chunk() -> None:
    store = DictStore()
    outcomes = list(run_chunks(JOB, _chunks(12, 4), store, ExecutorParams(workers=2, retries=1)))
    by_index = {o.chunk.index: o for o in outcomes}
    assert by_index[1].split and not by_index[0].split and not by_index[2].split
    assert [x for i in range(3) for x in store.results[i][1]] == [2 * n if n != 7 else -7 for n in range(12)]


def test_chunks_in_the_store_are_not_run_again_and_changed_keys_are() -> None:
    store = DictStore()
    list(run_chunks(JOB, _chunks(8, 4), store, ExecutorParams(workers=2)))
    assert store.commits == 2
    again: list[Outcome[int, list[int]]] = list(run_chunks(JOB, _chunks(8, 4), store, ExecutorParams(workers=2)))
    assert store.commits == 2 and all(o.reused for o in again)
    changed = _chunks(8, 4)
    changed[1] = Chunk(1, changed[1].items, "new-key")
    outcomes = list(run_chunks(JOB, changed, store, ExecutorParams(workers=2)))
    assert store.commits == 3 and [o.reused for o in sorted(outcomes, key=lambda o: o.chunk.index)] == [True, False]


def test_the_skeleton_takes_its_input_lazily() -> None:
    """Chunks are drawn only as workers free up: a huge input is never held at once."""
    drawn: list[int] = []

    def lazy() -> object:
        for chunk in _chunks(400, 1):
            drawn.append(chunk.index)
            yield chunk

    run = run_chunks(ChunkJob(double_all, crashed_item, join_lists), lazy(), DictStore(), ExecutorParams(workers=2))
    next(run)
    assert len(drawn) <= 4
    assert len(list(run)) == 399


# --- Ray ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_ray_results_retries_deaths_and_errors(ray_session, tmp_path: Path) -> None:
    assert run_tasks(square_slowly, range(8), ExecutorParams(executor="ray")) == [n * n for n in range(8)]
    marker = str(tmp_path / "ray-marker")
    assert run_tasks(die_once, [marker], ExecutorParams(executor="ray", retries=1))[0].isdigit()
    assert Path(marker).read_text() == "died"
    with pytest.raises(OSError, match="No space left"):
        run_tasks(fail, [1], ExecutorParams(executor="ray"))
    store = DictStore()
    list(run_chunks(JOB, _chunks(12, 4), store, ExecutorParams(executor="ray", retries=1)))
    assert [x for i in range(3) for x in store.results[i][1]] == [2 * n if n != 7 else -7 for n in range(12)]
    lost = [o for o in stream_tasks(hang_on_three, range(5), ExecutorParams(executor="ray", retries=0, task_timeout=15.0))
            if isinstance(o, Lost)]
    assert [(o.index, o.why) for o in lost] == [(3, "timeout")]
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


@pytest.mark.slow
def test_a_folder_the_cluster_shares_passes_the_probe(ray_session, tmp_path: Path) -> None:
    from imgnet_tools.execute.ray_executor import check_shared_folder

    check_shared_folder(tmp_path / "out", ExecutorParams(executor="ray"))
    assert list((tmp_path / "out").iterdir()) == []  # the probe is removed


@pytest.mark.slow
def test_every_stage_on_a_joined_ray_probes_its_folders_and_leaves_no_probe(ray_session, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """scan, verify (with --fix), dedup and shard on a Ray they join (``--address auto``) each check
    that the folders their workers write are shared, and remove the probe files."""
    from imgnet_tools.dedup.run import DedupParams, dedup
    from imgnet_tools.execute import ray_executor
    from imgnet_tools.images.scan import ScanParams, scan
    from imgnet_tools.images.verify import VerifyParams, verify
    from imgnet_tools.shards.write import ShardParams, shard
    from tests import imagegen

    probed: list[Path] = []
    real_probe = ray_executor._probe
    monkeypatch.setattr(ray_executor, "_probe", lambda folder: (probed.append(folder.resolve()), real_probe(folder)))
    imagegen.make_imagefolder(tmp_path / "src" / "train", ["n01440764", "n01443537"], per_class=3)
    ray = dict(executor="ray", address="auto")
    work, manifest = tmp_path / "work", tmp_path / "work" / "manifest.parquet"
    scan(ScanParams(src=(str(tmp_path / "src"),), out=str(work), **ray))
    verify(VerifyParams(manifest=str(manifest), fix=str(tmp_path / "fixed"), **ray))
    dedup(DedupParams(manifest=str(manifest), **ray))
    shard(ShardParams(manifest=str(manifest), out=str(tmp_path / "shards"), size=4, **ray))
    assert set(probed) >= {work.resolve(), (tmp_path / "fixed").resolve(), (tmp_path / "shards").resolve()}
    assert not [p for p in tmp_path.rglob(".imgnet-probe-*")]


def start_time(n: int) -> float:
    """When the worker started task ``n`` (wall clock, comparable across processes)."""
    return time.time()


def test_an_idle_worker_gets_its_next_task_before_the_caller_handles_the_last_result() -> None:
    """What the caller does with a result (a stage commits it and plans the next chunk) does not
    keep the worker that made it idle: the pool hands that worker its next task first."""
    pool = Pool(1)
    tasks = iter([(0, 0), (1, 1)])
    try:
        outcomes = pool.run(start_time, lambda: next(tasks, None))
        first = next(outcomes)
        handled = time.time()
        time.sleep(0.5)  # the caller busy with the first result
        second = next(outcomes)
    finally:
        pool.close(wait=True)
    assert (first.task, second.task) == (0, 1)
    # task 1 was sent before the caller got task 0's result, so it started while the caller was
    # busy (it would start 0.5 s after `handled` if the pool waited for the caller to ask again)
    assert second.value < handled + 0.25


def test_a_warm_pool_may_be_named_by_the_module_of_its_tasks() -> None:
    with warm_pool(square_slowly.__module__, ExecutorParams(workers=2)) as warm:
        assert run_tasks(square_slowly, range(5), ExecutorParams(workers=2), warm=warm) == [n * n for n in range(5)]
        assert warm.taken
