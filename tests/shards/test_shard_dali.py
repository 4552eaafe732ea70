"""DALI's fn.readers.webdataset (CPU) reads our shards through our index files, byte for byte."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.shards.write import ShardParams, shard
from tests.shard_data import make_dataset, write_manifest
from tests.conftest import require

dali = require("nvidia.dali")


def _read_all(tars: list[str], indexes: list[str]) -> list[tuple[bytes, bytes, bytes]]:
    from nvidia.dali import fn, pipeline_def

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def pipe():  # type: ignore[no-untyped-def]
        jpg, cls, meta = fn.readers.webdataset(paths=tars, index_paths=indexes, ext=["jpg", "cls", "json"],
                                               random_shuffle=False, missing_component_behavior="error", name="reader")
        return jpg, cls, meta

    pipeline = pipe()
    pipeline.build()
    samples = []
    for _ in range(pipeline.epoch_size("reader")):
        jpg, cls, meta = pipeline.run()
        samples.append((bytes(jpg.at(0)), bytes(cls.at(0)), bytes(meta.at(0))))
    return samples


def test_dali_reads_every_sample_with_our_indexes(tmp_path: Path) -> None:
    rows = make_dataset(tmp_path / "img", {"n01440764": 7, "n01443537": 6, "n01484850": 1})
    manifest = write_manifest(rows, tmp_path / "manifest.parquet")
    out = tmp_path / "out"
    shard(ShardParams(manifest=str(manifest), out=str(out), size=5, workers=1, resize_short=20))
    doc = json.loads((out / "dataset.json").read_text())
    tars = [str(out / s["file"]) for s in doc["shards"]]
    indexes = [str(out / s["index_file"]) for s in doc["shards"]]
    expected = read_table(out / "manifest.parquet", "shard_manifest").to_pylist()
    got = _read_all(tars, indexes)
    assert len(got) == len(expected) == 14
    for (jpg, cls, meta), row in zip(got, expected):
        assert hashlib.sha256(jpg).hexdigest() == row["sha256"]
        assert int(cls) == row["label"] and json.loads(meta)["key"] == row["source_key"]
        with open(out / row["shard"], "rb") as fh:
            fh.seek(row["jpg_offset"])
            assert fh.read(row["jpg_size"]) == jpg
