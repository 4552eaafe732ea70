"""imgnet shard: layout, round trips through reference readers, equal shards, corner cases."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.shard_data import jpeg_bytes, make_dataset, row_for, write_manifest

from imgnet_tools.errors import InputError
from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.manifest.schemas import validate_json, validate_text
from imgnet_tools.shards.plan import even_bounds
from imgnet_tools.shards.write import ShardParams, shard

CLASSES = {"n01440764": 9, "n01443537": 7, "n01484850": 1}  # the last class has one image


def _run(tmp_path: Path, rows: list[dict], out: str = "out", **kwargs) -> tuple[Path, dict]:
    manifest = write_manifest(rows, tmp_path / "manifest.parquet")
    params = ShardParams(manifest=str(manifest), out=str(tmp_path / out), **{"workers": 1, **kwargs})
    result = shard(params)
    return tmp_path / out, result.to_dict()


def _dataset(out: Path) -> dict:
    return json.loads((out / "dataset.json").read_text())


def test_layout_counts_and_schemas(tmp_path: Path) -> None:
    rows = make_dataset(tmp_path / "img", CLASSES)
    rows[0]["status"], rows[1]["status"], rows[2]["status"] = "rejected", "duplicate", "fixable"
    out, result = _run(tmp_path, rows, size=5)
    assert result["skipped"] == {"duplicate": 1, "fixable": 1, "rejected": 1}
    assert result["samples"] == 14 and result["shards"] == 3
    doc = _dataset(out)
    validate_json(doc, "dataset", "dataset.json")
    assert [s["samples"] for s in doc["shards"]] == [5, 5, 4]
    assert doc["splits"]["train"]["samples"] == 14 and doc["splits"]["train"]["shards"] == 3
    assert doc["splits"]["train"]["class_counts"] == {"0": 6, "1": 7, "2": 1}
    assert [c["wnid"] for c in doc["classes"]] == sorted(CLASSES)
    for entry in doc["shards"]:
        tar = out / entry["file"]
        assert entry["bytes"] == tar.stat().st_size and entry["sha256"] == hashlib.sha256(tar.read_bytes()).hexdigest()
        assert validate_text(out / entry["index_file"], "shard_index") == entry["samples"] + 1
        assert read_table(out / entry["manifest_file"], "shard_manifest").num_rows == entry["samples"]
        validate_json(json.loads((out / "_state" / f"{tar.stem}.json").read_text()), "shard_record")
    validate_json(json.loads((out / "_state" / "run.json").read_text()), "shard_run")
    assert read_table(out / "manifest.parquet", "shard_manifest").num_rows == 14
    assert not [p for p in out.rglob(".tmp-*")]


def test_words_name_the_classes_and_splits_count_their_own_classes(tmp_path: Path) -> None:
    rows = make_dataset(tmp_path / "img", CLASSES)
    for row in rows[:3]:
        row["split"] = "val"
    words = tmp_path / "words.txt"
    words.write_text("n01440764\ttench, Tinca tinca\nn01443537\tgoldfish, Carassius auratus\n")
    out, _ = _run(tmp_path, rows, size=5, prefix="{split}", words=str(words))
    doc = _dataset(out)
    assert doc["classes"] == [{"index": 0, "wnid": "n01440764", "name": "tench, Tinca tinca"},
                              {"index": 1, "wnid": "n01443537", "name": "goldfish, Carassius auratus"},
                              {"index": 2, "wnid": "n01484850", "name": None}]
    expected = {split: dict(sorted(Counter(str(r["label"]) for r in rows if r["split"] == split).items(),
                                   key=lambda kv: int(kv[0]))) for split in ("train", "val")}
    assert {split: entry["class_counts"] for split, entry in doc["splits"].items()} == expected


def test_python_tarfile_and_webdataset_read_back_every_sample(tmp_path: Path) -> None:
    import webdataset as wds

    rows = make_dataset(tmp_path / "img", CLASSES)
    out, _ = _run(tmp_path, rows, size=6)
    manifest = read_table(out / "manifest.parquet", "shard_manifest").to_pylist()
    source = {r["key"]: r for r in rows}
    # tarfile: exact names, order, offsets, bytes, fixed header fields.
    for row in manifest:
        with tarfile.open(out / row["shard"]) as archive:
            member = archive.getmember(f"{row['key']}.jpg")
            assert (member.offset, member.offset_data, member.size) == (row["jpg_header_offset"], row["jpg_offset"], row["jpg_size"])
            assert (member.mtime, member.uid, member.gid, member.uname, member.mode) == (946684800, 0, 0, "imgnet", 0o444)
            data = archive.extractfile(member).read()
        assert data == Path(source[row["source_key"]]["path"]).read_bytes()
        with open(out / row["shard"], "rb") as fh:
            fh.seek(row["cls_offset"])
            assert fh.read(row["cls_size"]) == str(row["label"]).encode()
    # webdataset: every sample, label and byte.
    urls = [str(out / s["file"]) for s in _dataset(out)["shards"]]
    seen = []
    for sample in wds.WebDataset(urls, shardshuffle=False):
        meta = json.loads(sample["json"])
        src = source[meta["key"]]
        assert sample["jpg"] == Path(src["path"]).read_bytes()
        assert int(sample["cls"]) == src["label"] and meta["wnid"] == src["wnid"] and meta["sha256"] == src["sha256"]
        # no absolute path of this machine in a published shard (these rows have no rel_path: the name)
        assert (meta["width"], meta["height"], meta["path"]) == (src["width"], src["height"], Path(src["source_path"]).name)
        seen.append(sample["__key__"])
    assert seen == [r["key"] for r in manifest] and len(seen) == len(rows)


def test_shuffle_is_seeded_and_mixes_classes_no_shuffle_keeps_order(tmp_path: Path) -> None:
    rows = make_dataset(tmp_path / "img", {"n01440764": 10, "n01443537": 10})
    out, _ = _run(tmp_path, rows, out="a", size=10, seed=1)
    again, _ = _run(tmp_path, rows, out="b", size=10, seed=1)
    other, _ = _run(tmp_path, rows, out="c", size=10, seed=2)
    plain, _ = _run(tmp_path, rows, out="d", size=10, shuffle=False)

    def keys(d: Path) -> list[str]:
        return read_table(d / "manifest.parquet", "shard_manifest").column("source_key").to_pylist()

    assert keys(out) == keys(again) != keys(other)
    assert keys(plain) == [r["key"] for r in rows]
    first = read_table(out / "train-000000.parquet", "shard_manifest").column("label").to_pylist()
    assert set(first) == {0, 1}


@pytest.mark.parametrize("count, size, expected", [(1, 4, [1]), (4, 4, [4]), (5, 4, [3, 2]), (9, 4, [3, 3, 3])])
def test_corner_counts(tmp_path: Path, count: int, size: int, expected: list[int]) -> None:
    rows = make_dataset(tmp_path / "img", {"n01440764": count})
    out, _ = _run(tmp_path, rows, size=size)
    assert [s["samples"] for s in _dataset(out)["shards"]] == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5000), st.integers(1, 300))
def test_even_bounds_differ_by_at_most_one(n: int, k: int) -> None:
    lengths = [b - a for a, b in even_bounds(n, k)]
    assert sum(lengths) == n and len(lengths) == k and max(lengths) - min(lengths) <= 1


def test_max_bytes_caps_every_shard(tmp_path: Path) -> None:
    rows = make_dataset(tmp_path / "img", {"n01440764": 12}, size=(160, 120))
    cap = 40_000
    out, _ = _run(tmp_path, rows, size=100, max_bytes=cap)
    shards = _dataset(out)["shards"]
    assert len(shards) > 1 and all(s["bytes"] <= cap for s in shards)
    counts = [s["samples"] for s in shards]
    assert max(counts) - min(counts) <= 1
    with pytest.raises(InputError, match="max-bytes"):
        _run(tmp_path, rows, out="tiny", max_bytes=2000)


def test_splits_get_their_own_shards_and_prefix(tmp_path: Path) -> None:
    rows = make_dataset(tmp_path / "img", {"n01440764": 3}) + make_dataset(tmp_path / "img", {"n01440764": 2}, split="val")
    out, _ = _run(tmp_path, rows, size=2, prefix="inet-{split}")
    assert sorted(p.name for p in out.glob("*.tar")) == ["inet-train-000000.tar", "inet-train-000001.tar", "inet-val-000000.tar"]
    assert _dataset(out)["splits"]["val"] == {"samples": 2, "shards": 1, "bytes": (out / "inet-val-000000.tar").stat().st_size,
                                              "class_counts": {"0": 2}}
    with pytest.raises(InputError, match="split"):
        _run(tmp_path, rows, out="clash", prefix="inet")


def test_empty_or_unusable_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no rows with status ok or fixed"):
        _run(tmp_path, [])
    rows = make_dataset(tmp_path / "img", {"n01440764": 2})
    for row in rows:
        row["status"] = "rejected"
    with pytest.raises(InputError, match="rejected"):
        _run(tmp_path, rows)


def test_huge_tiny_png_and_rotated_images(tmp_path: Path) -> None:
    folder = tmp_path / "img"
    folder.mkdir()
    files = {
        "huge__3000x2000.jpg": (jpeg_bytes(3000, 2000, 1), 3000, 2000),
        "tiny__1x1.jpg": (jpeg_bytes(1, 1, 2), 1, 1),
        "png__not_jpeg.png": (jpeg_bytes(30, 20, 3, fmt="PNG"), 30, 20),
        "rotated__exif6.jpg": (jpeg_bytes(40, 30, 4, exif_orientation=6), 30, 40),
    }
    rows = []
    for i, (name, (data, w, h)) in enumerate(files.items()):
        (folder / name).write_bytes(data)
        rows.append(row_for(folder / name, name.split("__")[0], "train", i, f"n0000000{i}", w, h))
    out, _ = _run(tmp_path, rows, out="copy", size=10)
    stored = {r["source_key"]: r for r in read_table(out / "manifest.parquet", "shard_manifest").to_pylist()}
    assert [stored[k]["reencoded"] for k in ("huge", "tiny", "png", "rotated")] == [False, False, True, False]
    assert (stored["png"]["width"], stored["png"]["height"]) == (30, 20)
    out, _ = _run(tmp_path, rows, out="resized", size=10, resize_short=32, max_side=20, quality=80)
    stored = {r["source_key"]: r for r in read_table(out / "manifest.parquet", "shard_manifest").to_pylist()}
    assert (stored["huge"]["width"], stored["huge"]["height"]) == (20, 13)
    assert (stored["png"]["width"], stored["png"]["height"]) == (20, 13)
    assert (stored["tiny"]["width"], stored["tiny"]["height"], stored["tiny"]["reencoded"]) == (1, 1, False)
    assert (stored["rotated"]["width"], stored["rotated"]["height"]) == (15, 20)  # upright: portrait
    from PIL import Image

    with tarfile.open(out / "train-000000.tar") as archive:
        for row in stored.values():
            data = archive.extractfile(f"{row['key']}.jpg").read()
            with Image.open(io.BytesIO(data)) as image:
                assert image.format == "JPEG" and image.size == (row["width"], row["height"])
            assert hashlib.sha256(data).hexdigest() == row["sha256"]


def test_unreadable_and_changed_files_are_rows_not_exceptions(tmp_path: Path) -> None:
    rows = make_dataset(tmp_path / "img", {"n01440764": 6})
    Path(rows[0]["path"]).unlink()
    Path(rows[1]["path"]).write_bytes(jpeg_bytes(20, 20, 99))  # size and mtime change
    Path(rows[2]["path"]).write_bytes(b"\xff\xd8\xff garbage")
    rows[2].update(sha256=hashlib.sha256(b"\xff\xd8\xff garbage").hexdigest(), mtime_ns=None)
    rows[3]["mtime_ns"] = None  # no scan record: the content hash decides
    Path(rows[3]["path"]).write_bytes(jpeg_bytes(21, 20, 98))
    out, result = _run(tmp_path, rows, size=3, resize_short=8)
    reasons = {f["key"]: f["reason"] for f in result["failed"]}
    assert reasons[rows[0]["key"]].startswith("unreadable")
    assert reasons[rows[1]["key"]].startswith("changed since scan")
    assert reasons[rows[2]["key"]].startswith("undecodable")
    assert reasons[rows[3]["key"]].startswith("changed since verify")
    doc = _dataset(out)
    assert doc["samples"] == 2 and len(doc["failed"]) == 4 and doc["splits"]["train"]["class_counts"] == {"0": 2}


def test_unsafe_keys_are_sanitized(tmp_path: Path) -> None:
    rows = make_dataset(tmp_path / "img", {"n01440764": 4})
    for row, key in zip(rows, ["../escape", ".hidden", "a/b.c", "ctl\x01char"]):
        row["key"] = key
    out, _ = _run(tmp_path, rows, size=10)
    with tarfile.open(out / "train-000000.tar") as archive:
        names = archive.getnames()
    assert len(names) == 12 and len({n.split(".")[0] for n in names}) == 4
    for name in names:
        assert "/" not in name and not name.startswith(".") and name.count(".") == 1 and name.isprintable()
    stored = read_table(out / "manifest.parquet", "shard_manifest").column("source_key").to_pylist()
    assert sorted(stored) == sorted(["../escape", ".hidden", "a/b.c", "ctl\x01char"])


def test_global_manifest_is_the_concatenated_slices(tmp_path: Path) -> None:
    rows = make_dataset(tmp_path / "img", CLASSES)
    out, _ = _run(tmp_path, rows, size=4)
    slices = [pq.read_table(out / s["manifest_file"]).to_pylist() for s in _dataset(out)["shards"]]
    whole = pq.read_table(out / "manifest.parquet").to_pylist()
    assert whole == [row for part in slices for row in part]
    assert Counter(r["shard"] for r in whole) == Counter({s["file"]: s["samples"] for s in _dataset(out)["shards"]})


def _selected(table: Any, keep_source_paths: bool = True) -> list[Any]:
    from imgnet_tools.shards.plan import SAMPLE_FIELDS, SampleIn, select_chunk

    picked, _ = select_chunk(table, keep_source_paths)
    return [SampleIn(*(r[f] for f in SAMPLE_FIELDS)) for r in picked.to_pylist()]


def test_selection_sanitizes_keys_counts_skips_and_reads_missing_columns_as_null() -> None:
    """select_chunk: unsafe keys sanitized (Arrow's RE2 check agrees with sanitize_key), fixed rows
    without mtime, skipped statuses counted, nulls kept, missing optional columns read as null."""
    import pyarrow as pa

    from imgnet_tools.shards.keys import sanitize_key
    from imgnet_tools.shards.plan import SampleIn, select_chunk

    rows = [
        {"key": "train-n1-a", "path": "/d/a.jpg", "source_path": "/s/a.jpg", "split": "train", "label": 3, "wnid": "n1",
         "width": 5, "height": 4, "sha256": "aa", "bytes": 10, "mtime_ns": 7, "status": "ok"},
        {"key": "x/../y z.é", "path": "/d/b.jpg", "source_path": None, "split": "val", "label": None, "wnid": None,
         "width": None, "height": None, "sha256": None, "bytes": None, "mtime_ns": 8, "status": "fixed"},
        {"key": "k" * 81, "path": "/d/c.jpg", "source_path": "/s/c.jpg", "split": "train", "label": 0, "wnid": "n0",
         "width": 1, "height": 1, "sha256": "cc", "bytes": 3, "mtime_ns": 9, "status": "ok"},
        {"key": "bad", "path": "/d/d.jpg", "source_path": "/s/d.jpg", "split": "train", "label": 1, "wnid": "n1",
         "width": 1, "height": 1, "sha256": "dd", "bytes": 3, "mtime_ns": 9, "status": "rejected"},
        {"key": "dup", "path": "/d/e.jpg", "source_path": "/s/e.jpg", "split": "train", "label": 1, "wnid": "n1",
         "width": 1, "height": 1, "sha256": "ee", "bytes": 3, "mtime_ns": 9, "status": "duplicate"},
    ]
    table = pa.table({c: [r[c] for r in rows] for c in rows[0]})
    _, skipped = select_chunk(table)
    assert skipped == {"rejected": 1, "duplicate": 1}
    samples = _selected(table)
    assert samples == [
        SampleIn("train-n1-a", "train-n1-a", "/d/a.jpg", "/s/a.jpg", "train", 3, "n1", 5, 4, "aa", 10, 7),
        SampleIn(sanitize_key("x/../y z.é"), "x/../y z.é", "/d/b.jpg", "/d/b.jpg", "val", None, None, None, None, None,
                 None, None),
        SampleIn(sanitize_key("k" * 81), "k" * 81, "/d/c.jpg", "/s/c.jpg", "train", 0, "n0", 1, 1, "cc", 3, 9),
    ]
    assert samples[1].key != rows[1]["key"] and len(samples[2].key) <= 80
    without = _selected(table.drop_columns(["mtime_ns", "source_path"]))  # optional columns a manifest may lack
    assert without == [s._replace(mtime_ns=None, source_path=s.path) for s in samples]
    published = _selected(table.append_column("rel_path", pa.array(["train/n1/a.jpg", None, None, None, None])), False)
    assert [s.source_path for s in published] == ["train/n1/a.jpg", "b.jpg", "c.jpg"]  # never the absolute path


def test_selection_refuses_repeated_keys_and_fingerprint_ignores_row_order(tmp_path: Path) -> None:
    """The fingerprint hashes Arrow buffers: the same rows in another order give the same value;
    any change to a selected value gives another, including null vs empty, bytes moved between
    neighbouring strings, and a different mtime; rows that are not selected do not count."""
    from imgnet_tools.shards.plan import select_manifest

    rows = [{"key": f"k{i}", "path": f"/d/{i}.jpg", "source_path": f"/s/{i}.jpg", "split": "train", "label": i % 3,
             "wnid": "n1", "width": 5, "height": 4, "sha256": f"{i:02x}", "bytes": 10 + i, "mtime_ns": 7,
             "status": "ok"} for i in range(6)]
    rows.append({**rows[0], "key": "gone", "status": "rejected"})
    written = iter(range(1000))

    def fingerprint(rows: list[dict[str, Any]]) -> str:
        n = next(written)
        manifest = write_manifest(rows, tmp_path / f"m{n}.parquet")
        return select_manifest(str(manifest), tmp_path / f"s{n}.arrow", seed=0, chunk_rows=2).fingerprint

    base = fingerprint(rows)
    assert fingerprint(rows[::-1]) == base and fingerprint(rows[:-1]) == base
    changed = [
        [{**rows[0], "wnid": None}, *rows[1:]],
        [{**rows[0], "wnid": ""}, *rows[1:]],
        [{**rows[0], "path": "/d/0.jp"}, {**rows[1], "path": "g/d/1.jpg"}, *rows[2:]],  # a byte moved between rows
        [{**rows[0], "mtime_ns": 8}, *rows[1:]],
        [{**rows[0], "label": None}, *rows[1:]],
        [{**rows[0], "status": "fixed"}, *rows[1:]],  # a fixed row's mtime does not describe its file
        rows[1:],
    ]
    fingerprints = [fingerprint(variant) for variant in changed]
    assert base not in fingerprints and len(set(fingerprints)) == len(changed)
    with pytest.raises(InputError, match="repeated keys"):
        fingerprint(rows + [rows[2]])


def test_plans_travel_as_row_numbers_and_workers_read_their_samples(tmp_path: Path) -> None:
    """A task pickles its samples as row numbers of the selection file (8 bytes a sample); without
    shuffling the file keeps the manifest's order."""
    import pickle

    import numpy as np

    from imgnet_tools.shards.plan import SampleIn, ShardPlan, read_samples, select_manifest
    from imgnet_tools.shards.transform import TransformParams
    from imgnet_tools.shards.worker import ShardTask

    for i in range(5):
        (tmp_path / f"{i}.jpg").write_bytes(jpeg_bytes(4, 4, i))
    rows = [row_for(tmp_path / f"{i}.jpg", f"k{i}", "train", i, "n1", 4, 4) for i in range(5)]
    selection = select_manifest(str(write_manifest(rows, tmp_path / "m.parquet")), tmp_path / "s.arrow", seed=0,
                                shuffle=False)
    task = ShardTask(str(tmp_path), ShardPlan("train", 0, "train-000000", np.array([3, 1])), TransformParams(),
                     selection.path)
    back = pickle.loads(pickle.dumps(task))
    assert len(pickle.dumps(task)) < 1000
    samples = back.samples()
    assert all(type(s) is SampleIn for s in samples) and [s.key for s in samples] == ["k3", "k1"]
    assert samples == read_samples(selection.path, [3, 1]) and back.fingerprint() == task.fingerprint()


def test_selection_file_is_in_plan_order_across_buckets_batches_and_chunks(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The selection file holds each split's rows contiguously (splits by name) in the order of the
    seeded key hash, or in manifest order without shuffling, whatever the bucket, batch and chunk
    sizes; the compact columns follow the same order, and any rows read back are those rows."""
    import numpy as np

    from imgnet_tools.manifest.hashset import hash64
    from imgnet_tools.shards import plan
    from imgnet_tools.shards.plan import order, read_samples, select_manifest

    rng = np.random.default_rng(3)
    splits = ["val", "train", "test"]
    rows = [{"key": f"k{i}", "path": f"/d/{i}.jpg", "source_path": f"/s/{i}.jpg",
             "split": splits[int(rng.integers(3))], "label": i % 7, "wnid": f"n{i % 7}", "width": 5, "height": 4,
             "sha256": f"{i:064x}", "bytes": 10 + i, "mtime_ns": 7, "status": "ok" if i % 11 else "rejected"}
            for i in range(300)]
    manifest = str(write_manifest(rows, tmp_path / "m.parquet"))
    taken = [r for r in rows if r["status"] == "ok"]
    fingerprints = set()
    for bucket_rows, batch_rows, chunk in ((1 << 18, 4096, 65536), (16, 7, 5), (40, 1, 64), (32, 4096, 3)):
        monkeypatch.setattr(plan, "BUCKET_ROWS", bucket_rows)
        monkeypatch.setattr(plan, "BATCH_ROWS", batch_rows)
        for shuffle in (True, False):
            target = tmp_path / f"s-{bucket_rows}-{shuffle}.arrow"
            selection = select_manifest(manifest, target, seed=5, chunk_rows=chunk, shuffle=shuffle)
            hashes = dict(zip((r["key"] for r in taken), hash64(f"imgnet-shard:5:{r['key']}" for r in taken).tolist()))
            want = sorted(taken, key=lambda r: (r["split"], hashes[r["key"]] if shuffle else 0))  # sorted() is stable
            got = read_samples(selection.path, np.arange(selection.rows))
            assert [s.key for s in got] == [r["key"] for r in want] and not (tmp_path / f"{target}.parts").exists()
            assert [selection.splits[c] for c in selection.split_code] == [r["split"] for r in want]
            assert selection.label.tolist() == [r["label"] for r in want]
            assert selection.cost.tolist() == [r["bytes"] + plan.SAMPLE_OVERHEAD for r in want]
            by_split = order(selection, shuffle)
            assert list(by_split) == sorted(splits) and np.concatenate(list(by_split.values())).tolist() == list(
                range(selection.rows))
            some = [selection.rows - 1, 0, 17, 3]
            assert [s.key for s in read_samples(selection.path, some)] == [want[i]["key"] for i in some]
            fingerprints.add((shuffle, batch_rows, selection.fingerprint))
    # the fingerprint does not depend on the bucket or chunk size (it hashes the file's batches)
    assert len(fingerprints) == 6 and len({(s, b) for s, b, _ in fingerprints}) == 6


def test_copy_mode_defaults_to_twice_the_cores_and_an_explicit_count_wins() -> None:
    from imgnet_tools.execute.params import available_cores
    from imgnet_tools.shards.write import shard_workers

    assert shard_workers(ShardParams(manifest="m", out="o")) == 2 * available_cores()
    assert shard_workers(ShardParams(manifest="m", out="o", workers=3)) == 3
    assert shard_workers(ShardParams(manifest="m", out="o", resize_short=256)) is None  # decoding is CPU-bound: every core
    assert shard_workers(ShardParams(manifest="m", out="o", executor="ray")) is None  # Ray decides


def test_the_global_manifest_is_the_same_bytes_whatever_order_the_shards_finish_in(tmp_path: Path) -> None:
    """ManifestStream writes each shard's slice as a row group once all shards before it are in."""
    import random

    import pyarrow as pa

    from imgnet_tools.shards.write import ManifestStream

    rows = make_dataset(tmp_path / "img", {"n01440764": 7, "n01443537": 6})
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    out = tmp_path / "out"
    shard(ShardParams(manifest=str(manifest), out=str(out), size=3, workers=2))
    stems = [p.stem for p in sorted(out.glob("train-*.tar"))]
    slices = {stem: read_table(out / f"{stem}.parquet", "shard_manifest") for stem in stems}
    slices[stems[2]] = slices[stems[2]].slice(0, 0)  # a shard whose every sample failed: no row group
    written = []
    for seed in range(3):
        folder = tmp_path / f"s{seed}"
        folder.mkdir()
        stream = ManifestStream(folder, stems)
        for stem in random.Random(seed).sample(stems, len(stems)):
            stream.add(stem, slices[stem])
        stream.close()
        written.append((folder / "manifest.parquet").read_bytes())
        assert not list(folder.glob(".tmp-*"))
    assert written[0] == written[1] == written[2]
    meta = pq.ParquetFile(tmp_path / "s0" / "manifest.parquet").metadata
    assert meta.num_row_groups == len(stems) - 1 and meta.num_rows == sum(t.num_rows for t in slices.values())
    table = read_table(tmp_path / "s0" / "manifest.parquet", "shard_manifest")
    assert table.equals(pa.concat_tables([slices[s] for s in stems]).cast(table.schema))
    stream = ManifestStream(tmp_path / "s0", stems)
    stream.add(stems[1], slices[stems[1]])
    with pytest.raises(RuntimeError, match="never came"):
        stream.close()
    stream.abort()
    assert not list((tmp_path / "s0").glob(".tmp-*"))
