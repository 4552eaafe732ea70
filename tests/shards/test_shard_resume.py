"""imgnet shard: byte-identical re-runs, resume after SIGKILL, lock, refusal of different arguments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imgnet_tools.errors import LockedError, OutputExistsError
from imgnet_tools.shards import state
from imgnet_tools.shards.write import ShardParams, outputs_complete, shard
from tests.shard_data import make_dataset, write_manifest

CLASSES = {"n01440764": 12, "n01443537": 10, "n01484850": 8}


def _files(out: Path) -> dict[str, bytes]:
    """Every artifact by name (not the lock, not the temp files)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != state.LOCK_NAME}


def _shard_bytes(out: Path) -> dict[str, bytes]:
    return {k: v for k, v in _files(out).items() if k.endswith((".tar", ".idx"))}


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return write_manifest(make_dataset(tmp_path / "img", CLASSES), tmp_path / "manifest.parquet")


def test_two_runs_and_both_executors_paths_give_identical_bytes(tmp_path: Path, manifest: Path) -> None:
    shard(ShardParams(manifest=str(manifest), out=str(tmp_path / "a"), size=7, seed=3, workers=1))
    shard(ShardParams(manifest=str(manifest), out=str(tmp_path / "b"), size=7, seed=3, workers=2))
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and len([k for k in a if k.endswith(".tar")]) == 5
    assert a == b  # tars, indexes, slices, manifest.parquet, dataset.json, records


def test_rerun_skips_done_shards_and_redoes_partial_ones(tmp_path: Path, manifest: Path) -> None:
    params = ShardParams(manifest=str(manifest), out=str(tmp_path / "out"), size=7, workers=1)
    first = shard(params)
    reference = _files(tmp_path / "out")
    assert outputs_complete(params)
    again = shard(params)
    assert (again.written, again.resumed) == (0, first.shards)
    out = tmp_path / "out"
    (out / "_state" / "train-000002.json").unlink()  # killed before its record: not done
    (out / "train-000003.tar").write_bytes(b"truncated")  # record says another size: not done
    (out / ".tmp-train-000004.tar.abc").write_bytes(b"junk of a killed worker")
    (out / "_state" / ".tmp-train-000004.json.abc").write_bytes(b"")
    (out / "dataset.json").unlink()
    assert not outputs_complete(params)
    resumed = shard(params)
    assert resumed.written == 2 and _files(out) == reference


def test_different_arguments_need_overwrite(tmp_path: Path, manifest: Path) -> None:
    out = tmp_path / "out"
    shard(ShardParams(manifest=str(manifest), out=str(out), size=7, workers=1))
    with pytest.raises(OutputExistsError, match="--overwrite"):
        shard(ShardParams(manifest=str(manifest), out=str(out), size=8, workers=1))
    result = shard(ShardParams(manifest=str(manifest), out=str(out), size=15, workers=1, overwrite=True))
    assert result.shards == 2 and sorted(p.name for p in out.glob("*.tar")) == ["train-000000.tar", "train-000001.tar"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not written by imgnet shard"):
        shard(ShardParams(manifest=str(manifest), out=str(foreign), workers=1))


def test_an_output_of_the_earlier_fingerprint_asks_for_overwrite_by_name(tmp_path: Path, manifest: Path) -> None:
    """A run.json from before fingerprint version 2 (no ``fingerprint_version``, a key-hash-order
    fingerprint) cannot be compared: the run says so instead of calling the rows different, and
    --overwrite writes what a fresh run writes."""
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    params = ShardParams(manifest=str(manifest), out=str(out), size=7, workers=1)
    shard(params)
    shard(ShardParams(manifest=str(manifest), out=str(fresh), size=7, workers=1))
    run_path = out / state.STATE_DIR / state.RUN_NAME
    run = json.loads(run_path.read_text())
    assert run["fingerprint_version"] == state.FINGERPRINT_VERSION == 2
    del run["fingerprint_version"]
    run_path.write_text(state.dump_json({**run, "fingerprint": "0" * 64}))
    assert not outputs_complete(params)
    with pytest.raises(OutputExistsError, match="earlier imgnet.*fingerprint version 1.*--overwrite"):
        shard(params)
    shard(ShardParams(manifest=str(manifest), out=str(out), size=7, workers=1, overwrite=True))
    assert _files(out) == _files(fresh) and outputs_complete(params)


def test_a_lock_stops_a_second_run(tmp_path: Path, manifest: Path) -> None:
    out = tmp_path / "out"
    with state.locked(out):
        with pytest.raises(LockedError, match="another imgnet shard run"):
            shard(ShardParams(manifest=str(manifest), out=str(out), workers=1))
    shard(ShardParams(manifest=str(manifest), out=str(out), workers=1))  # released


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_run_then_resume_is_byte_identical(tmp_path: Path, manifest: Path, workers: int) -> None:
    ref = tmp_path / "reference"
    shard(ShardParams(manifest=str(manifest), out=str(ref), size=1, workers=1))
    out = tmp_path / "killed"
    exe = Path(sys.executable).with_name("imgnet")
    proc = subprocess.Popen([str(exe), "shard", str(manifest), "--out", str(out), "--size", "1", "--workers", str(workers)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while len(list((out / "_state").glob("train-*.json"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its pool workers, mid-way
    proc.wait()
    done = len(list((out / "_state").glob("train-*.json")))
    assert 3 <= done < 30 and not (out / "dataset.json").exists(), "the run was not killed mid-way"
    result = shard(ShardParams(manifest=str(manifest), out=str(out), size=1, workers=workers))
    assert result.resumed == done  # a record exists only once its shard is complete
    assert _files(out) == _files(ref)


def test_a_full_disk_stops_the_run_cleanly_and_a_rerun_finishes(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes writes past 24 KiB fail with EFBIG, as ENOSPC would on a full disk."""
    import random

    from PIL import Image

    from tests.shard_data import row_for

    rows = make_dataset(tmp_path / "img", {"n01440764": 5})
    big = tmp_path / "big__noise_200x200.jpg"
    Image.frombytes("RGB", (200, 200), random.Random(1).randbytes(200 * 200 * 3)).save(big, quality=95)
    rows.append(row_for(big, "big", "train", 1, "n01443537", 200, 200))
    manifest = write_manifest(rows, tmp_path / "manifest.parquet")
    ref = tmp_path / "reference"
    shard(ShardParams(manifest=str(manifest), out=str(ref), size=1, workers=1, shuffle=False))
    out = tmp_path / "full"
    limit = "import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); resource.setrlimit(resource.RLIMIT_FSIZE, (24576, 24576))"
    script = f"{limit}\nfrom imgnet_tools.cli.main import main\nmain()"
    proc = subprocess.run([sys.executable, "-c", script, "shard", str(manifest), "--out", str(out), "--size", "1",
                           "--workers", "1", "--no-shuffle"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith("Error: writing shards to") and "5 finished shards are kept" in proc.stderr
    assert sorted(p.stem for p in (out / "_state").glob("train-*.json")) == [f"train-00000{i}" for i in range(5)]
    assert not (out / "train-000005.tar").exists() and not list(out.glob(".tmp-*")) and not (out / "dataset.json").exists()
    result = shard(ShardParams(manifest=str(manifest), out=str(out), size=1, workers=1, shuffle=False))
    assert (result.resumed, result.written) == (5, 1) and _files(out) == _files(ref)


def test_the_committer_marks_shards_done_in_groups_and_hands_back_its_error(tmp_path: Path) -> None:
    """Records are written for every shard put before close(), after their tars are fsynced; a
    failing fsync (here: a tar that is not there) stops the committing, and put() or close()
    raise that error in the caller's thread."""
    from imgnet_tools.shards.write import _Committer

    (tmp_path / "_state").mkdir()
    records: dict = {}
    committer = _Committer(tmp_path, records, fsync=True)
    for i in range(5):
        (tmp_path / f"s-{i}.tar").write_bytes(b"x")
        committer.put({"file": f"s-{i}.tar", "n": i})
    committer.close()
    assert sorted(records) == [f"s-{i}" for i in range(5)]
    assert [json.loads((tmp_path / "_state" / f"s-{i}.json").read_text())["n"] for i in range(5)] == list(range(5))

    failing = _Committer(tmp_path, {}, fsync=True)
    failing.put({"file": "missing.tar"})
    with pytest.raises(FileNotFoundError):
        failing.close()
    later = _Committer(tmp_path, {}, fsync=True)
    later.put({"file": "missing.tar"})
    later._thread.join(timeout=10)  # the thread has stopped on the error
    with pytest.raises(FileNotFoundError):
        later.put({"file": "s-0.tar"})
    assert not (tmp_path / "_state" / "missing.json").exists()
