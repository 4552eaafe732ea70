"""Fault injection through the real CLI: kill -9 the driver or a worker, fill the disk; then resume.

* ``kill -9`` the driver of ``imgnet verify`` and of ``imgnet scan`` at seeded random points (after
  a random number of committed chunks, or after a random delay), several times in a row, then run
  the same command to the end: the manifest equals an uninterrupted run's, the re-runs reused
  committed chunks, and the killed driver's workers do not live on.
* ``kill -9`` worker processes (the driver's grandchildren: driver -> fork server -> workers)
  during verify: the run finishes, exit 0, with the uninterrupted run's manifest and no
  ``crashed_decoder`` row (a worker that dies once has its chunk retried).
* A full disk (``RLIMIT_FSIZE``: writes past the limit fail with ``EFBIG``, the path ``ENOSPC``
  takes) while committing chunks and while writing the manifest, for verify and scan: exit 1, one
  line ``Error: ... File too large ...`` and no traceback, the input manifest still reads as it
  was, and a re-run with the limit lifted resumes and finishes with the uninterrupted result.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pyarrow.parquet as pq
import pytest

from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.manifest.parts import work_path
from imgnet_tools.manifest.stream import table_info
from tests import imagegen

IMGNET = str(Path(sys.executable).with_name("imgnet"))
CHUNK = "8"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes x 90 JPEGs (a few broken) and a grayscale PNG each: 364 files."""
    root = tmp_path_factory.mktemp("faults") / "src"
    for c in range(4):
        folder = root / f"n0144076{c}"
        folder.mkdir(parents=True)
        for i in range(90):
            data = imagegen.jpeg_bytes(c * 1000 + i, (192, 144))
            if i % 30 == 7:
                data = imagegen.truncated(data, 0.5)
            (folder / f"img_{i:03d}.jpg").write_bytes(data)
        (folder / "gray.png").write_bytes(imagegen.encode(imagegen.picture(c, (64, 48)).convert("L"), "PNG"))
    return root


def _env(base: Path) -> dict[str, str]:
    return {**os.environ, "IMGNET_LOG_DIR": str(base / "logs")}


def _run(args: list[str], cwd: Path, preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IMGNET, *args], capture_output=True, text=True, cwd=cwd, env=_env(cwd), timeout=300,
                          preexec_fn=preexec)


def _table(path: Path) -> Any:
    return pq.read_table(path)


@pytest.fixture(scope="module")
def reference(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Uninterrupted scan and verify: the manifests every faulted run must end with."""
    base = tmp_path_factory.mktemp("reference")
    assert _run(["scan", str(tree), "--out", "scan", "--chunk-rows", CHUNK, "--workers", "2", "-q"], base).returncode == 0
    shutil.copytree(base / "scan", base / "verify")
    proc = _run(["verify", "verify/manifest.parquet", "--chunk-rows", CHUNK, "--workers", "2", "-q", "--json"], base)
    assert proc.returncode == 0, proc.stderr
    return {"scan": base / "scan" / "manifest.parquet", "verify": base / "verify" / "manifest.parquet",
            "chunks": -(-table_info(base / "scan" / "manifest.parquet", "manifest").rows // int(CHUNK))}


def _stage_run(stage: str, tree: Path, reference: dict[str, Any], tmp_path: Path) -> tuple[list[str], Path]:
    """The command line of a faulted ``stage`` run in ``tmp_path`` and the manifest it writes (verify
    starts from a copy of the reference scan)."""
    if stage == "verify":
        shutil.copytree(reference["scan"].parent, tmp_path / "work")
        args = ["verify", "work/manifest.parquet", "--chunk-rows", CHUNK, "--workers", "2", "-q", "--json"]
    else:
        args = ["scan", str(tree), "--out", "work", "--chunk-rows", CHUNK, "--workers", "2", "-q", "--json"]
    return args, tmp_path / "work" / "manifest.parquet"


# --- processes --------------------------------------------------------------------------------------

def _children() -> dict[int, list[int]]:
    """ppid -> pids of every process (from /proc)."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(pid: int) -> dict[int, int]:
    """pid -> depth (1: child) of every living descendant of ``pid``."""
    kids, found, todo = _children(), {}, [(pid, 0)]
    while todo:
        parent, depth = todo.pop()
        for child in kids.get(parent, []):
            found[child] = depth + 1
            todo.append((child, depth + 1))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _parts(output: Path, stage: str) -> int:
    folder = work_path(output, stage)
    return len(list(folder.glob("part-*.arrow"))) if folder.is_dir() else 0


def _kill_driver(args: list[str], cwd: Path, output: Path, stage: str, parts: int | None, delay: float) -> None:
    """Start ``imgnet ARGS``; kill -9 it once ``parts`` chunks are committed (or after ``delay`` s)."""
    proc = subprocess.Popen([IMGNET, *args], cwd=cwd, env=_env(cwd), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    start = time.monotonic()
    family: dict[int, int] = {}
    while proc.poll() is None and time.monotonic() - start < 120:
        family.update(descendants(proc.pid))
        if (parts is not None and _parts(output, stage) >= parts) or (parts is None and time.monotonic() - start >= delay):
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the killed driver's fork server and workers notice their closed pipes and leave
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in family if _alive(p)], "workers outlived their killed driver"


def _same(got: Path, want: Path) -> None:
    assert table_info(got, "manifest").rows == table_info(want, "manifest").rows
    assert _table(got).equals(_table(want))
    assert got.read_bytes() == want.read_bytes()  # the same file, byte for byte


# --- kill -9 the driver -----------------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["verify", "scan"])
def test_kill_9_the_driver_at_random_points_then_resume(stage: str, tree: Path, reference: dict[str, Any],
                                                        tmp_path: Path) -> None:
    rng = random.Random(f"kill-driver-{stage}")
    args, output = _stage_run(stage, tree, reference, tmp_path)
    total = reference["chunks"]
    points = sorted(rng.sample(range(1, total - 1), 3))
    for parts in points:  # after a random number of committed chunks, each resumed run killed later on
        _kill_driver(args, tmp_path, output, stage, parts, 0.0)
        assert _parts(output, stage) >= parts  # what was committed is still there
        if stage == "verify":  # the input (verified in place) still reads, as scan wrote it
            _same(output, reference["scan"])
    _kill_driver(args, tmp_path, output, stage, None, rng.uniform(0.2, 2.0))  # and at a random moment
    proc = _run(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["resumed_chunks"] >= points[-1]  # committed chunks were not run again
    _same(output, reference[stage])
    assert not work_path(output, stage).exists()


# --- kill -9 a worker -------------------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["verify", "scan"])
def test_kill_9_workers_then_the_run_ends_as_an_uninterrupted_one(stage: str, tree: Path, reference: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    args, output = _stage_run(stage, tree, reference, tmp_path)
    proc = subprocess.Popen([IMGNET, *args], cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    rng = random.Random(f"kill-worker-{stage}")
    targets = sorted(rng.sample(range(2, reference["chunks"] - 4), 3))
    killed: list[int] = []
    start = time.monotonic()
    while proc.poll() is None and targets and time.monotonic() - start < 120:
        if _parts(output, stage) >= targets[0]:
            workers = [p for p, depth in descendants(proc.pid).items() if depth >= 2 and p not in killed]
            if workers:
                victim = rng.choice(sorted(workers))
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
                targets.pop(0)
        time.sleep(0.002)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert len(killed) >= 2, "the run ended before the workers could be killed"
    result = json.loads(out)
    assert "crashed_decoder" not in result["reasons"]  # a worker that dies once: its chunk is retried
    _same(output, reference[stage])


# --- a full disk ------------------------------------------------------------------------------------

def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec: writes past ``limit`` bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("where", ["parts", "manifest"])
@pytest.mark.parametrize("stage", ["verify", "scan"])
def test_full_disk_is_one_line_exit_1_and_resumes(stage: str, where: str, tree: Path, reference: dict[str, Any],
                                                  tmp_path: Path) -> None:
    want = reference[stage]
    # parts: the first chunk's commit fails; manifest: every chunk fits, the manifest does not
    limit = 600 if where == "parts" else want.stat().st_size // 2
    args, output = _stage_run(stage, tree, reference, tmp_path)
    proc = _run(args, tmp_path, preexec=_file_size_limit(limit))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and "File too large" in errors[0] and "run the same command again" in errors[0], lines
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    if stage == "verify":
        _same(output, reference["scan"])  # the input manifest is untouched and reads
    else:
        assert not output.exists()
    assert not list(output.parent.glob(".tmp-*"))  # no half-written manifest left beside it
    committed = _parts(output, stage)
    if where == "manifest":
        assert committed == reference["chunks"]  # every chunk got committed before the manifest failed
    proc = _run(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["resumed_chunks"] == committed
    _same(output, want)


def test_full_disk_while_a_worker_writes_a_fixed_copy(tmp_path: Path) -> None:
    folder = tmp_path / "src" / "n01440764"
    folder.mkdir(parents=True)
    (folder / "big.png").write_bytes(imagegen.encode(imagegen.picture(1, (900, 700)), "PNG"))  # ~1.2 MB source
    assert _run(["scan", "src", "--out", "work", "-q"], tmp_path).returncode == 0
    args = ["verify", "work/manifest.parquet", "--fix", "fixed", "-q", "--json"]
    proc = _run(args, tmp_path, preexec=_file_size_limit(60_000))  # the copy (~150 KB) does not fit
    assert proc.returncode == 1, proc.stderr
    line = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(line) == 1 and line[0].startswith("Error: writing the fixed copy ") and "File too large" in line[0], line
    assert not list((tmp_path / "fixed").iterdir())  # no half-written copy
    proc = _run(args, tmp_path)
    assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == {"fixed": 1}, proc.stderr


# --- a decoder that crashes, hangs or raises --------------------------------------------------------

PLANTED_DECODER = '''
"""Fault injection for one test: every Python process started with this folder on PYTHONPATH
(the CLI, the pool's fork server and its workers) gets a decoder that misbehaves on three files."""
import os, signal, time

import imgnet_tools.images.verify as verify

_real = verify._verify_file


def _planted(path, fix_to, settings):
    name = os.path.basename(path)
    if name.startswith("segfault__"):
        os.kill(os.getpid(), signal.SIGSEGV)  # the worker dies, as in a C decoder's crash
    if name.startswith("hang__"):
        time.sleep(60)  # past --decode-timeout
    if name.startswith("raise__"):
        raise ZeroDivisionError("planted in the decoder")
    return _real(path, fix_to, settings)


verify._verify_file = _planted

import imgnet_tools.images.phash as phash

_real_hash = phash.hash_one


def _planted_hash(task):
    name = os.path.basename(task.path)
    if name.startswith("dedup_segfault__"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if name.startswith("dedup_hang__"):
        time.sleep(60)
    if name.startswith("dedup_raise__"):
        raise ZeroDivisionError("planted in the hash")
    return _real_hash(task)


phash.hash_one = _planted_hash

import imgnet_tools.shards.transform as transform

_real_encode = transform.encode


def _planted_encode(data, params):
    marker = data[-40:]  # the test appends the marker after the JPEG's end
    if b"shard_segfault" in marker:
        os.kill(os.getpid(), signal.SIGSEGV)
    if b"shard_hang" in marker:
        time.sleep(60)
    if b"shard_raise" in marker:
        raise ZeroDivisionError("planted in the encoder")
    return _real_encode(data, params)


transform.encode = _planted_encode
'''


def test_a_decoder_that_crashes_hangs_or_raises_costs_one_row_each(tmp_path: Path) -> None:
    """Issue 13, in verify, dedup's hashing and shard's re-encoding: a worker killed by a file is replaced and the chunk retried; a file that kills it
    twice is ``crashed_decoder``; a decode past ``--decode-timeout`` is ``timeout``; an unexpected
    exception is ``internal_error`` with its type and message in ``detail``; every other file is
    checked as usual and the run ends with exit 0."""
    src = tmp_path / "src" / "n01440764"
    src.mkdir(parents=True)
    for i in range(24):
        (src / f"img_{i:02d}.jpg").write_bytes(imagegen.jpeg_bytes(i, (64, 48)))
    for seed, name in enumerate(("segfault__a.jpg", "hang__b.jpg", "raise__c.jpg", "dedup_segfault__d.jpg",
                                  "dedup_hang__e.jpg", "dedup_raise__f.jpg")):
        (src / name).write_bytes(imagegen.jpeg_bytes(100 + seed, (64, 48)))
    for seed, name in enumerate(("shard_segfault", "shard_hang", "shard_raise")):  # bytes after the JPEG's end
        (src / f"{name}__g{seed}.jpg").write_bytes(imagegen.jpeg_bytes(200 + seed, (64, 48)) + name.encode())
    before = imagegen.tree_hashes(tmp_path / "src")
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(PLANTED_DECODER)
    assert _run(["scan", str(tmp_path / "src"), "--out", "work", "-q"], tmp_path).returncode == 0
    env = {**_env(tmp_path), "PYTHONPATH": os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([IMGNET, "verify", "work/manifest.parquet", "--chunk-rows", "9", "--workers", "2",
                           "--decode-timeout", "2", "-q", "--json"], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = {Path(r["path"]).name: r for r in read_table(tmp_path / "work" / "manifest.parquet", "manifest").to_pylist()}
    assert (rows["segfault__a.jpg"]["status"], rows["segfault__a.jpg"]["reason"]) == ("rejected", "crashed_decoder")
    assert (rows["hang__b.jpg"]["status"], rows["hang__b.jpg"]["reason"]) == ("rejected", "timeout")
    assert (rows["raise__c.jpg"]["status"], rows["raise__c.jpg"]["reason"]) == ("rejected", "internal_error")
    assert rows["raise__c.jpg"]["detail"] == "ZeroDivisionError: planted in the decoder"
    assert all(rows[f"img_{i:02d}.jpg"]["status"] == "ok" for i in range(24))
    assert all(rows[f"dedup_{n}"]["status"] == "ok" for n in ("segfault__d.jpg", "hang__e.jpg", "raise__f.jpg"))
    result = json.loads(proc.stdout)
    assert all(result["reasons"].get(r) == 1 for r in ("crashed_decoder", "timeout", "internal_error")), result
    proc = subprocess.run([IMGNET, "dedup", "work/manifest.parquet", "--chunk-rows", "9", "--workers", "2",
                           "--decode-timeout", "2", "-q", "--json"], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {Path(r["path"]).name: r for r in read_table(tmp_path / "work" / "manifest.parquet", "manifest").to_pylist()}
    for name, reason in (("dedup_segfault__d.jpg", "crashed_decoder"), ("dedup_hang__e.jpg", "timeout"),
                         ("dedup_raise__f.jpg", "internal_error")):
        assert (rows[name]["status"], rows[name]["reason"]) == ("rejected", reason), rows[name]
    assert rows["dedup_raise__f.jpg"]["detail"] == "ZeroDivisionError: planted in the hash"
    assert all(rows[f"img_{i:02d}.jpg"]["status"] == "ok" for i in range(24))
    proc = subprocess.run([IMGNET, "shard", "work/manifest.parquet", "--out", "shards", "--size", "8",
                           "--resize-short", "32", "--workers", "2", "--decode-timeout", "2", "-q", "--json"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    failed = {f["key"].split("__")[0].rsplit("-", 1)[-1]: f["reason"] for f in json.loads(proc.stdout)["failed"]}
    assert failed.keys() == {"shard_segfault", "shard_hang", "shard_raise"}, failed
    assert failed["shard_segfault"].startswith("crashed_decoder") and failed["shard_hang"].startswith("timeout")
    assert failed["shard_raise"] == "undecodable: ZeroDivisionError: planted in the encoder"
    assert imagegen.tree_hashes(tmp_path / "src") == before
