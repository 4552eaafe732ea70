"""On a real local Ray: scan, verify and dedup write the same bytes as on the local pool (a chunk of
4 rows, so every stage crosses a dozen chunk boundaries), and Ray Data's ``read_webdataset`` reads
the shards ``imgnet shard`` wrote with every sample, label and byte intact. One Ray for the module."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.readers_pool import CHUNK_ROWS, STAGE_FILES, Sample, make_pool, run_stages, shard_samples, write_shards

TESTS = REPO / "tests"
pytestmark = pytest.mark.slow

# dedup.json is a record of the run: how it ran and how long it took; everything else in it must match.
RUN_RECORD = {"params": ("executor", "address", "workers"), "result": ("hash_seconds", "search_seconds")}


@pytest.fixture(scope="module")
def runs(ray_session, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same pool through the stages twice, in the same folder (so every absolute path written is
    the same): first on the local pool (then moved aside), then on Ray."""
    root = tmp_path_factory.mktemp("ray-stages")
    pool = make_pool(root / "pool")
    run = root / "run"
    local = run_stages(pool, run, "local")
    shutil.move(run, root / "local")
    on_ray = run_stages(pool, run, "ray")
    return {"local": local, "ray": on_ray, "run": run, "root": root}


def _without_run_record(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for section, names in RUN_RECORD.items():
        for name in names:
            doc[section].pop(name)
    return doc


def test_scan_verify_and_dedup_on_ray_write_the_bytes_the_local_pool_writes(runs: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    local, on_ray = runs["local"], runs["ray"]
    for stage, names in STAGE_FILES.items():
        for name in names:
            if name != "dedup.json":
                assert local[stage][name] == on_ray[stage][name], f"{stage}: {name} differs between local and Ray"
    assert local["fixed"] == on_ray["fixed"] and len(local["fixed"]) >= 5  # verify --fix's copies
    summary = {k: json.loads(v["dedup"]["dedup.json"]) for k, v in (("local", local), ("ray", on_ray))}
    assert (summary["local"]["params"]["executor"], summary["ray"]["params"]["executor"]) == ("local", "ray")
    assert _without_run_record(summary["local"]) == _without_run_record(summary["ray"])
    # what was compared is a real run: many chunks, every kind of row, both reports non-empty
    final = pq.read_table(pa.BufferReader(local["dedup"]["manifest.parquet"]))
    assert final.num_rows > 10 * CHUNK_ROWS
    assert set(final.column("status").to_pylist()) == {"ok", "fixed", "rejected", "duplicate"}
    for report in ("dedup_label_conflicts.parquet", "dedup_split_leakage.parquet"):
        assert pq.read_table(pa.BufferReader(local["dedup"][report])).num_rows >= 2, report
    scanned = pq.read_table(pa.BufferReader(local["scan"]["manifest.parquet"]))
    assert set(scanned.column("status").to_pylist()) == {"pending", "rejected"}


@pytest.fixture(scope="module")
def shards(runs: dict[str, Any]) -> tuple[Path, dict[str, Sample]]:
    out = write_shards(runs["run"] / "manifest.parquet", runs["root"] / "shards")
    return out, shard_samples(out)


def _read(ray_session, tars: list[str], **kwargs: Any) -> dict[str, dict[str, Any]]:
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    rows = ray.data.read_webdataset(tars, **kwargs).take_all()
    by_key = {row["__key__"]: row for row in rows}
    assert len(by_key) == len(rows)  # no sample twice
    return by_key


def test_ray_data_reads_every_sample_of_the_shards_intact(ray_session, shards: tuple[Path, dict[str, Sample]]) -> None:
    out, samples = shards
    tars = sorted(str(p) for p in out.glob("*.tar"))
    assert len(tars) >= 5
    raw = _read(ray_session, tars, decoder=None, include_paths=True)  # the members' bytes as stored
    assert set(raw) == set(samples)
    for key, sample in samples.items():
        row = raw[key]
        assert hashlib.sha256(row["jpg"]).hexdigest() == sample.row["sha256"], key
        assert (row["jpg"], row["cls"], row["json"]) == (sample.jpg, sample.cls, sample.json), key
        assert Path(row["path"]).name == sample.shard
    decoded = _read(ray_session, tars)  # Ray Data's default decoders: an int label, a dict, a picture
    for key, sample in samples.items():
        row = decoded[key]
        assert row["cls"] == sample.row["label"], key
        assert row["json"] == json.loads(sample.json) and row["json"]["key"] == sample.row["source_key"], key
        assert row["jpg"].shape == (sample.row["height"], sample.row["width"], 3), key
