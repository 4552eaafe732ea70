"""Other tools read what imgnet writes, directly: duckdb, polars, pandas and pyarrow read a real
manifest (scan -> verify -> dedup on a generated pool) and see the same rows and values; Hugging
Face ``datasets`` reads the shards ``imgnet shard`` wrote with every sample, label and byte intact.
(Ray Data on the shards is in test_ray_stages.py, beside the other tests that need a Ray.)"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.readers_pool import Sample, make_pool, run_stages, shard_samples, write_shards

# Columns every reader must give back exactly (lists, 64-bit hashes and nulls included).
CHECKED = ("key", "path", "source_path", "rel_path", "split", "label", "wnid", "bytes", "mtime_ns", "status", "reason",
           "format", "mode", "width", "height", "sha256", "issues", "phash", "cluster_id", "dup_of", "dup_kind",
           "dup_distance", "pre_dedup_status")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(manifest after dedup, shard folder): the real stages, run once for the module."""
    root = tmp_path_factory.mktemp("readers")
    run = root / "run"
    run_stages(make_pool(root / "pool"), run, "local")
    manifest = run / "manifest.parquet"
    return manifest, write_shards(manifest, root / "shards")


@pytest.fixture(scope="module")
def reference(made: tuple[Path, Path]) -> dict[str, list[Any]]:
    """pyarrow's reading of the manifest, column by column (the others are held to it)."""
    import pyarrow.parquet as pq

    table = pq.read_table(made[0])
    return {name: table.column(name).to_pylist() for name in table.column_names}


def _plain(value: Any) -> Any:
    """A reader's value as a plain Python value (missing values as None, numpy values as Python ones)."""
    import numpy as np
    import pandas as pd

    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _columns(names: list[str], rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    return {name: [_plain(row[i]) for row in rows] for i, name in enumerate(names)}


def test_the_manifest_is_a_real_one(reference: dict[str, list[Any]]) -> None:
    """What the readers are held to has every kind of row and value (else the comparisons prove little)."""
    assert len(reference["key"]) == 51
    assert set(reference["status"]) == {"ok", "fixed", "rejected", "duplicate"}
    assert any(issues and len(issues) > 1 for issues in reference["issues"])  # a list column with lists
    assert any(p is not None and p < 0 for p in reference["phash"])  # 64-bit hashes, the sign bit set
    assert any(p is not None and abs(p) > 2**53 and p % 2 for p in reference["phash"])  # no float holds it exactly
    assert any("ünïcödé_фото" in p for p in reference["path"])
    assert {s for s in reference["split"]} == {"train", "val"}


def test_pyarrow_dataset_reads_the_manifest(made: tuple[Path, Path], reference: dict[str, list[Any]]) -> None:
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    dataset = ds.dataset(made[0], format="parquet")
    assert dataset.schema.field("issues").type.value_type == "string"
    table = dataset.to_table()
    assert {name: table.column(name).to_pylist() for name in CHECKED} == {name: reference[name] for name in CHECKED}
    ok = dataset.to_table(filter=pc.field("status") == "ok", columns=["key"])
    assert ok.column("key").to_pylist() == [k for k, s in zip(reference["key"], reference["status"]) if s == "ok"]


def test_duckdb_reads_the_manifest(made: tuple[Path, Path], reference: dict[str, list[Any]]) -> None:
    import duckdb

    con = duckdb.connect()
    cursor = con.execute(f"SELECT {', '.join(CHECKED)} FROM read_parquet(?)", [str(made[0])])
    names = [d[0] for d in cursor.description]
    assert _columns(names, cursor.fetchall()) == {name: reference[name] for name in CHECKED}
    counts = dict(con.execute("SELECT status, count(*) FROM read_parquet(?) GROUP BY status", [str(made[0])]).fetchall())
    assert counts == {s: reference["status"].count(s) for s in set(reference["status"])}
    fetched = con.execute("SELECT fetched_at FROM read_parquet(?)", [str(made[0])]).fetchall()
    assert [r[0] for r in fetched] == reference["fetched_at"]  # a timestamp column (all null: nothing was fetched)


def test_polars_reads_the_manifest(made: tuple[Path, Path], reference: dict[str, list[Any]]) -> None:
    import polars as pl

    frame = pl.read_parquet(made[0])
    assert frame.height == len(reference["key"])
    got = frame.select(list(CHECKED)).to_dict(as_series=False)
    assert {name: [_plain(v) for v in got[name]] for name in CHECKED} == {name: reference[name] for name in CHECKED}
    dups = pl.scan_parquet(made[0]).filter(pl.col("status") == "duplicate").select("key", "dup_of").collect()
    assert dups.rows() == [(k, d) for k, s, d in zip(reference["key"], reference["status"], reference["dup_of"])
                           if s == "duplicate"]


def test_pandas_reads_the_manifest(made: tuple[Path, Path], reference: dict[str, list[Any]]) -> None:
    """With nullable dtypes every value comes back exactly. (Pandas' default turns an integer column
    holding nulls into float64, which cannot hold every 64-bit ``phash``.)"""
    import pandas as pd

    frame = pd.read_parquet(made[0], dtype_backend="numpy_nullable")
    got = {name: [_plain(v) for v in frame[name].tolist()] for name in CHECKED}
    assert got == {name: reference[name] for name in CHECKED}
    assert frame.groupby("split")["key"].count().to_dict() == {s: reference["split"].count(s) for s in ("train", "val")}
    default = pd.read_parquet(made[0])
    assert [_plain(v) for v in default["width"]] == reference["width"]  # small integers survive even as floats
    assert default["key"].tolist() == reference["key"]


# --- Hugging Face datasets on the shards --------------------------------------------------------------

@pytest.fixture(scope="module")
def samples(made: tuple[Path, Path]) -> dict[str, Sample]:
    found = shard_samples(made[1])
    assert len({s.shard for s in found.values()}) >= 5 and {s.row["split"] for s in found.values()} == {"train", "val"}
    return found


def test_hugging_face_datasets_reads_every_sample_intact(made: tuple[Path, Path], samples: dict[str, Sample],
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    splits = {split: sorted(str(p) for p in made[1].glob(f"{split}-*.tar")) for split in ("train", "val")}
    loaded = datasets.load_dataset("webdataset", data_files=splits, cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", "val"}
    seen: dict[str, dict[str, Any]] = {}
    for split, part in loaded.items():
        raw = part.cast_column("jpg", datasets.Image(decode=False))  # the stored bytes, not a decoded picture
        for example in raw:
            key = example["__key__"]
            assert key not in seen
            seen[key] = {**example, "split": split}
    assert set(seen) == set(samples)
    for key, sample in samples.items():
        example = seen[key]
        assert hashlib.sha256(example["jpg"]["bytes"]).hexdigest() == sample.row["sha256"], key
        assert example["jpg"]["bytes"] == sample.jpg
        assert example["cls"] == sample.row["label"] == int(sample.cls)
        assert example["json"] == json.loads(sample.json)
        assert example["json"]["key"] == sample.row["source_key"]
        assert example["split"] == sample.row["split"]
        assert Path(example["__url__"]).name == sample.shard
    decoded = loaded["train"][0]["jpg"]  # and the default feature decodes to a picture of the right size
    first = samples[loaded["train"][0]["__key__"]]
    assert decoded.size == (first.row["width"], first.row["height"])
