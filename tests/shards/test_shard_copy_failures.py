"""Copy mode (no resize: the in-place fast path) when sources go bad after verify, or the disk fills.

A bad source is one ``failed`` entry with the reasons resize mode gives, the other samples are
written byte for byte, and the run does not raise. A full disk (a file-size limit: ``EFBIG``, the
same ``OSError`` path as ``ENOSPC``) stops the run with an :class:`ImgnetError` and leaves no
shard marked done that is incomplete.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from tests.shard_data import jpeg_bytes, make_dataset, row_for, write_manifest

from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.shards import state
from imgnet_tools.shards.sink import DIRECT_ALIGN
from imgnet_tools.shards.write import ShardParams, shard
from tests.conftest import REPO



def _break_sources(rows: list[dict]) -> dict[str, str]:
    """Spoil some sources after 'verify' (the rows); return the expected reason prefix by key."""
    Path(rows[0]["path"]).unlink()  # deleted
    Path(rows[1]["path"]).write_bytes(jpeg_bytes(20, 20, 99))  # rewritten: size and mtime change
    os.utime(rows[2]["path"], ns=(rows[2]["mtime_ns"] + 10**9, rows[2]["mtime_ns"] + 10**9))  # touched only
    rows[3]["mtime_ns"] = None  # no scan record: sha256 is recomputed, and differs
    Path(rows[3]["path"]).write_bytes(jpeg_bytes(21, 20, 98))
    Path(rows[4]["path"]).unlink()  # replaced by a directory: open() fails even for root
    Path(rows[4]["path"]).mkdir()
    Path(rows[5]["path"]).write_bytes(b"GIF89a not a jpeg at all")  # no JPEG magic: decoded, and fails
    rows[5].update(sha256=hashlib.sha256(b"GIF89a not a jpeg at all").hexdigest(), mtime_ns=None)
    return {rows[0]["key"]: "unreadable: No such file or directory", rows[1]["key"]: "changed since scan",
            rows[2]["key"]: "changed since scan", rows[3]["key"]: "changed since verify",
            rows[4]["key"]: "unreadable: Is a directory", rows[5]["key"]: "undecodable"}


def test_copy_mode_bad_sources_are_failures_with_resize_modes_reasons(tmp_path: Path) -> None:
    rows = make_dataset(tmp_path / "img", {"n01440764": 7, "n01443537": 6})
    expected = _break_sources(rows)
    manifest = write_manifest(rows, tmp_path / "manifest.parquet")
    copy = shard(ShardParams(manifest=str(manifest), out=str(tmp_path / "copy"), size=4, workers=1))
    resized = shard(ShardParams(manifest=str(manifest), out=str(tmp_path / "resized"), size=4, workers=1,
                                resize_short=16))
    reasons = {f["key"]: f["reason"] for f in copy.failed}
    assert reasons.keys() == expected.keys()
    for key, prefix in expected.items():
        assert reasons[key].startswith(prefix), (key, reasons[key])
    assert reasons == {f["key"]: f["reason"] for f in resized.failed}  # the same vocabulary, word for word
    assert not [r for r in reasons.values() if " at 0x" in r]  # no object addresses: the same text in every run

    out = tmp_path / "copy"
    doc = json.loads((out / "dataset.json").read_text())
    assert {f["key"]: f["reason"] for f in doc["failed"]} == reasons
    kept = [r for r in rows if r["key"] not in expected]
    assert doc["samples"] == copy.samples == len(kept) == 7
    assert doc["splits"]["train"]["class_counts"] == {"0": 1, "1": 6}
    source = {r["key"]: r for r in rows}
    stored = read_table(out / "manifest.parquet", "shard_manifest").to_pylist()
    assert sorted(r["source_key"] for r in stored) == sorted(r["key"] for r in kept)
    names = []
    for entry in doc["shards"]:
        data = (out / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        with tarfile.open(out / entry["file"]) as archive:
            names += archive.getnames()
    assert sorted(names) == sorted(f"{r['key']}.{ext}" for r in stored for ext in ("jpg", "cls", "json"))
    for row in stored:  # nothing of a failed sample in between: offsets point at the right bytes
        data = (out / row["shard"]).read_bytes()
        src = source[row["source_key"]]
        assert data[row["jpg_offset"]:row["jpg_offset"] + row["jpg_size"]] == Path(src["path"]).read_bytes()
        assert row["reencoded"] is False and row["sha256"] == row["source_sha256"] == src["sha256"]
        assert data[row["cls_offset"]:row["cls_offset"] + row["cls_size"]] == str(src["label"]).encode()
        assert json.loads(data[row["json_offset"]:row["json_offset"] + row["json_size"]])["key"] == src["key"]


_FULL_DISK = textwrap.dedent("""
    import functools, resource, signal, sys, traceback
    from imgnet_tools.errors import ImgnetError
    from imgnet_tools.shards import worker
    from imgnet_tools.shards.sink import ShardSink
    from imgnet_tools.shards.write import ShardParams, shard

    manifest, out, limit, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if chunk:  # small buffers: the error surfaces mid-shard, from a reservation in copy mode
        worker.ShardSink = functools.partial(ShardSink, chunk=chunk)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG (Python's default too)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        shard(ShardParams(manifest=manifest, out=out, size=30, shuffle=False, executor="inline"))
    except ImgnetError as exc:
        print("IMGNET_ERROR", type(exc).__name__, exc)
        traceback.print_exception(exc.__cause__, file=sys.stdout)  # where the OSError came from
        sys.exit(3)
    print("NO_ERROR")
""")


@pytest.mark.parametrize("chunk", [0, 4 * DIRECT_ALIGN], ids=["default_buffer", "16k_buffer"])
def test_full_disk_stops_the_run_and_marks_no_incomplete_shard_done(tmp_path: Path, chunk: int) -> None:
    limit = 256 << 10  # the largest file the subprocess may write
    folder = tmp_path / "img"
    folder.mkdir()
    rows = []
    for i in range(60):  # shard 0: 30 x ~1 KB (about 90 KB of tar), fits; shard 1: 30 x ~11 KB, does not
        path = folder / f"s{i}.jpg"
        path.write_bytes(b"\xff\xd8\xff" + random.Random(i).randbytes((1000 if i < 30 else 11_000) + i))
        rows.append(row_for(path, f"s{i:02d}", "train", i % 2, "n01443537", 64, 64))
    manifest = write_manifest(rows, tmp_path / "manifest.parquet")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, str(manifest), str(out), str(limit), str(chunk)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "IMGNET_ERROR ImgnetError writing shards to" in proc.stdout and "File too large" in proc.stdout
    assert "1 finished shards are kept" in proc.stdout
    if chunk:  # the write error came up through copy mode's in-place read (a reservation) and still stopped the run
        assert "in _copy_jpeg" in proc.stdout and "in reserve" in proc.stdout, proc.stdout
    assert not (out / state.DATASET_NAME).exists() and not (out / state.MANIFEST_NAME).exists()
    records = sorted(p.name for p in (out / state.STATE_DIR).iterdir() if p.name not in (state.RUN_NAME, "selection.arrow"))
    assert records == ["train-000000.json"]  # the shard being written when the disk filled is not done
    record = json.loads((out / state.STATE_DIR / "train-000000.json").read_text())
    assert state.done_record(out, "train-000000", record["fingerprint"]) is not None
    assert record["samples"] == 30 and record["failed"] == []  # a full disk never became a per-sample failure
    assert not (out / "train-000001.tar").exists() and not list(out.rglob(".tmp-*"))

    again = shard(ShardParams(manifest=str(manifest), out=str(out), size=30, shuffle=False, workers=1))
    assert (again.written, again.resumed, again.samples, again.failed) == (1, 1, 60, [])
    source = {r["key"]: Path(r["path"]).read_bytes() for r in rows}
    for row in read_table(out / "manifest.parquet", "shard_manifest").to_pylist():
        data = (out / row["shard"]).read_bytes()
        assert data[row["jpg_offset"]:row["jpg_offset"] + row["jpg_size"]] == source[row["source_key"]]
