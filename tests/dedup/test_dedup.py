"""The dedup stage end to end: clusters, keep policy, scopes, reports, resume, CLI, threshold figures."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from benchmarks.dedup_threshold_study import recall_by_variant, threshold_study
from imgnet_tools.dedup.run import (
    DEFAULT_THRESHOLD,
    DedupParams,
    dedup,
    outputs_complete,
)
from imgnet_tools.images.phash import phash_file
from imgnet_tools.manifest.parquet import read_table, write_table
from imgnet_tools.manifest.schemas import validate_json
from tests.imagegen import VARIANTS, make_base, photo_jpeg, write_study_set

VARIANT = {v.name: v for v in VARIANTS}
WNIDS = ("n00000001", "n00000002")


@dataclass
class Dataset:
    root: Path
    manifest: Path
    rows: list[dict[str, Any]]

    def key(self, stem: str) -> str:
        (match,) = [r["key"] for r in self.rows if r["key"].endswith(f"__{stem}")]
        return match

    def write(self, rows: list[dict[str, Any]] | None = None) -> None:
        write_table(pa.Table.from_pylist(rows if rows is not None else self.rows), self.manifest, "manifest")


def _image(root: Path, split: str, label: int, stem: str, data: bytes, status: str = "ok",
           reason: str | None = None) -> dict[str, Any]:
    """Write one image file and return its manifest row (as verify would leave it)."""
    from PIL import Image

    folder = root / split / WNIDS[label]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.jpg"
    path.write_bytes(data)
    try:
        with Image.open(path) as img:
            width, height = img.size
    except OSError:  # a deliberately broken file
        width = height = None
    st = path.stat()
    return {"key": f"{split}__{WNIDS[label]}__{stem}", "path": str(path), "source_path": str(path), "split": split,
            "label": label, "wnid": WNIDS[label], "bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
            "status": status, "reason": reason, "issues": [reason] if reason else [], "width": width, "height": height,
            "sha256": hashlib.sha256(data).hexdigest()}


def _variant(seed: int, name: str) -> bytes:
    v = VARIANT[name]
    return photo_jpeg(v.transform(make_base(seed)), v.quality)


def build_dataset(root: Path) -> Dataset:
    """A: orig + 5 copies (x1.5 is the largest), B: same bytes under two classes, C: train copy in
    val, E: two identical files (tie on size), D: an exact copy that verify called fixable,
    six distinct pictures, and rows dedup must leave alone (pending, rejected)."""
    a, b, c, d, e = (photo_jpeg(make_base(s)) for s in (101, 102, 103, 104, 105))
    rows = [
        _image(root, "train", 0, "a__orig", a),
        _image(root, "train", 0, "dup_of_a__exact_copy", a),
        _image(root, "train", 0, "dup_of_a__resize50", _variant(101, "resize50")),
        _image(root, "train", 0, "dup_of_a__recompress_q40", _variant(101, "recompress_q40")),
        _image(root, "train", 0, "dup_of_a__crop3pct", _variant(101, "crop3pct_center")),
        _image(root, "train", 0, "dup_of_a__resize150", _variant(101, "resize150")),
        _image(root, "train", 0, "b__orig", b),
        _image(root, "train", 1, "dup_of_b__other_class", b),
        _image(root, "train", 1, "c__orig", c),
        _image(root, "val", 1, "dup_of_c__in_val_resize50", _variant(103, "resize50")),
        _image(root, "train", 1, "d__orig", d),
        _image(root, "train", 1, "d_zz__fixable_copy", d, status="fixable", reason="cmyk"),
        _image(root, "train", 0, "e__orig", e),
        _image(root, "train", 0, "dup_of_e__exact_copy", e),
        *(_image(root, "train", i % 2, f"distinct__{i}", photo_jpeg(make_base(200 + i))) for i in range(6)),
        _image(root, "train", 0, "pending__not_verified", photo_jpeg(make_base(300)), status="pending"),
        _image(root, "train", 0, "rejected__too_small", photo_jpeg(make_base(301)), status="rejected",
               reason="too_small"),
    ]
    ds = Dataset(root, root / "work" / "manifest.parquet", rows)
    ds.write()
    return ds


@pytest.fixture
def ds(tmp_path: Path) -> Dataset:
    return build_dataset(tmp_path / "data")


def _by_key(manifest: Path) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in read_table(manifest, "manifest").to_pylist()}


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.jpg"))}


def test_clusters_keep_the_largest_then_first_key(ds: Dataset) -> None:
    result = dedup(DedupParams(str(ds.manifest), workers=1))
    rows = _by_key(ds.manifest)
    a_keys = [ds.key(s) for s in ("a__orig", "dup_of_a__exact_copy", "dup_of_a__resize50",
                                  "dup_of_a__recompress_q40", "dup_of_a__crop3pct", "dup_of_a__resize150")]
    keeper = ds.key("dup_of_a__resize150")  # 480x360 beats 320x240
    assert len({rows[k]["cluster_id"] for k in a_keys}) == 1 and rows[keeper]["cluster_id"] is not None
    assert rows[keeper]["status"] == "ok" and rows[keeper]["dup_of"] is None
    for k in a_keys:
        if k != keeper:
            assert (rows[k]["status"], rows[k]["dup_of"], rows[k]["dup_kind"]) == ("duplicate", keeper, "near"), k
            assert rows[k]["pre_dedup_status"] == "ok" and 0 <= rows[k]["dup_distance"] <= DEFAULT_THRESHOLD
    # Equal resolution: the smallest key is kept, and identical bytes are an exact duplicate.
    e_keep, e_dup = ds.key("dup_of_e__exact_copy"), ds.key("e__orig")
    assert e_keep < e_dup
    assert rows[e_keep]["status"] == "ok"
    assert (rows[e_dup]["status"], rows[e_dup]["dup_of"], rows[e_dup]["dup_kind"], rows[e_dup]["dup_distance"]) == (
        "duplicate", e_keep, "exact", 0)
    for i in range(6):
        distinct = rows[ds.key(f"distinct__{i}")]
        assert distinct["status"] == "ok" and distinct["cluster_id"] is None and distinct["dup_of"] is None
    # Cluster ids are numbered by the smallest key in each cluster.
    clustered = sorted((r["key"], r["cluster_id"]) for r in rows.values() if r["cluster_id"] is not None)
    first_seen: list[int] = []
    for _, cid in clustered:
        if cid not in first_seen:
            first_seen.append(cid)
    assert first_seen == list(range(len(first_seen))) == list(range(result.clusters))
    assert result.clusters == 5  # A, B, C, D, E
    assert result.duplicates == 5 + 1 + 1  # A's five copies, E's copy, D's fixable copy
    assert (result.exact_duplicates, result.near_duplicates) == (2, 5)


def test_a_fixable_duplicate_keeps_its_reason(ds: Dataset) -> None:
    dedup(DedupParams(str(ds.manifest), workers=1))
    rows = _by_key(ds.manifest)
    fixable = rows[ds.key("d_zz__fixable_copy")]
    assert (fixable["status"], fixable["pre_dedup_status"], fixable["reason"]) == ("duplicate", "fixable", "cmyk")
    assert fixable["dup_of"] == ds.key("d__orig")


def test_label_conflict_and_leakage_reports(ds: Dataset) -> None:
    result = dedup(DedupParams(str(ds.manifest), workers=1))
    conflicts = read_table(Path(result.reports["label_conflicts"]), "dedup_label_conflicts").to_pylist()
    leakage = read_table(Path(result.reports["split_leakage"]), "dedup_split_leakage").to_pylist()
    assert [(r["key"], r["label"], r["wnid"], r["status"]) for r in conflicts] == [
        (ds.key("b__orig"), 0, "n00000001", "ok"), (ds.key("dup_of_b__other_class"), 1, "n00000002", "ok")]
    assert len({r["cluster_id"] for r in conflicts}) == 1 and len({r["sha256"] for r in conflicts}) == 1
    assert [(r["key"], r["split"], r["status"]) for r in leakage] == [
        (ds.key("c__orig"), "train", "ok"), (ds.key("dup_of_c__in_val_resize50"), "val", "ok")]
    assert (result.label_conflict_clusters, result.leakage_clusters) == (1, 1)


@pytest.mark.parametrize("scope, b_marked, c_marked", [("class", False, False), ("split", True, False),
                                                        ("all", True, True)])
def test_scope_decides_where_one_copy_is_kept(ds: Dataset, scope: str, b_marked: bool, c_marked: bool) -> None:
    result = dedup(DedupParams(str(ds.manifest), scope=scope, workers=1))
    rows = _by_key(ds.manifest)
    b_copy, c_copy = rows[ds.key("dup_of_b__other_class")], rows[ds.key("dup_of_c__in_val_resize50")]
    assert (b_copy["status"] == "duplicate") is b_marked
    assert (c_copy["status"] == "duplicate") is c_marked  # the val copy is smaller: train's is kept
    if c_marked:
        assert c_copy["dup_of"] == ds.key("c__orig")
    # The reports list the same clusters whatever the scope, with the statuses it gave.
    leakage = read_table(Path(result.reports["split_leakage"]), "dedup_split_leakage").to_pylist()
    assert {r["key"]: r["status"] for r in leakage}[c_copy["key"]] == c_copy["status"]


def test_rows_dedup_does_not_own_are_left_alone_and_broken_files_become_rows(ds: Dataset) -> None:
    broken = _image(ds.root, "train", 0, "corrupt__truncated_after_verify", photo_jpeg(make_base(400)))
    Path(broken["path"]).write_bytes(Path(broken["path"]).read_bytes()[:200])
    fixable = next(r for r in ds.rows if r["key"] == ds.key("d_zz__fixable_copy"))
    Path(fixable["path"]).unlink()  # removed after verify
    ds.write(ds.rows + [broken])
    result = dedup(DedupParams(str(ds.manifest), workers=1))
    rows = _by_key(ds.manifest)
    for stem, status, reason in (("pending__not_verified", "pending", None), ("rejected__too_small", "rejected", "too_small")):
        row = rows[ds.key(stem)]
        assert (row["status"], row["reason"], row["phash"], row["cluster_id"]) == (status, reason, None, None)
    bad, gone = rows[broken["key"]], rows[fixable["key"]]
    assert (bad["status"], bad["reason"], bad["pre_dedup_status"], bad["phash"]) == ("rejected", "truncated", "ok", None)
    assert (gone["status"], gone["reason"], gone["pre_dedup_status"]) == ("rejected", "missing", "fixable")
    assert result.hash_failed == 2
    assert not outputs_complete(DedupParams(str(ds.manifest)))  # a re-run retries the broken files
    # The files come back: the re-run restores both rows (and their reasons) and hashes only them.
    Path(broken["path"]).write_bytes(photo_jpeg(make_base(400)))
    Path(fixable["path"]).write_bytes(photo_jpeg(make_base(104)))
    again = dedup(DedupParams(str(ds.manifest), workers=1))
    assert (again.hashed, again.hash_failed) == (2, 0)
    rows = _by_key(ds.manifest)
    assert (rows[broken["key"]]["status"], rows[broken["key"]]["reason"], rows[broken["key"]]["pre_dedup_status"]) == (
        "ok", None, None)
    assert (rows[fixable["key"]]["status"], rows[fixable["key"]]["reason"]) == ("duplicate", "cmyk")
    assert outputs_complete(DedupParams(str(ds.manifest)))


def test_resume_hashes_nothing_twice_and_reclusters_new_rows(ds: Dataset) -> None:
    usable = sum(r["status"] in ("ok", "fixable", "fixed") for r in ds.rows)
    calls: list[int] = []
    first = dedup(DedupParams(str(ds.manifest), workers=1), progress=calls.append)
    assert (first.hashed, first.reused, sum(calls)) == (usable, 0, usable)
    assert outputs_complete(DedupParams(str(ds.manifest)))
    assert not outputs_complete(DedupParams(str(ds.manifest), threshold=6))
    before = _by_key(ds.manifest)

    calls.clear()
    second = dedup(DedupParams(str(ds.manifest), workers=1), progress=calls.append)
    assert (second.hashed, second.reused, sum(calls)) == (0, usable, 0)
    assert _by_key(ds.manifest) == before

    # A bigger copy of A arrives (scan appends a row): only it is hashed, and it becomes the keeper.
    rows = list(before.values())
    big = _image(ds.root, "train", 0, "dup_of_a__resize200", photo_jpeg(make_base(101).resize((640, 480))))
    rows.append({**{k: None for k in rows[0]}, **big})
    ds.write(rows)
    assert not outputs_complete(DedupParams(str(ds.manifest)))
    third = dedup(DedupParams(str(ds.manifest), workers=1))
    assert (third.hashed, third.reused) == (1, usable)
    after = _by_key(ds.manifest)
    assert after[big["key"]]["status"] == "ok"
    old_keeper = ds.key("dup_of_a__resize150")
    assert (after[old_keeper]["status"], after[old_keeper]["dup_of"]) == ("duplicate", big["key"])
    assert after[ds.key("a__orig")]["dup_of"] == big["key"]
    assert third.duplicates == first.duplicates + 1


def test_source_images_are_never_modified(ds: Dataset) -> None:
    before = _tree(ds.root)
    dedup(DedupParams(str(ds.manifest), workers=1, scope="all"))
    assert _tree(ds.root) == before


def test_artifacts_match_their_schemas(ds: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    result = dedup(DedupParams(str(ds.manifest), workers=1, out=str(out)))
    manifest = read_table(ds.manifest, "manifest")
    assert {"phash", "cluster_id", "dup_of", "dup_kind", "dup_distance", "pre_dedup_status"} <= set(manifest.column_names)
    assert read_table(out / "dedup_label_conflicts.parquet", "dedup_label_conflicts").num_rows == 2
    assert read_table(out / "dedup_split_leakage.parquet", "dedup_split_leakage").num_rows == 2
    doc = json.loads((out / "dedup.json").read_text())
    validate_json(doc, "dedup", "dedup.json")
    assert doc["result"] == json.loads(json.dumps(result.to_dict())) and doc["complete"] is True
    # phash stored is the file's pHash (bits as signed int64).
    row = manifest.filter(pa.compute.equal(manifest["key"], ds.key("a__orig"))).to_pylist()[0]
    assert row["phash"] == phash_file(row["path"])


def test_bad_parameters_are_refused_before_work() -> None:
    from imgnet_tools.errors import InputError

    for bad in ({"threshold": 25}, {"threshold": -1}, {"scope": "world"}, {"workers": 0}):
        with pytest.raises(InputError):
            DedupParams("m.parquet", **bad)  # type: ignore[arg-type]


def test_precision_and_recall_at_the_default_threshold(tmp_path: Path) -> None:
    """The threshold study on a small seeded set: figures measured once and held here.

    (The full study behind the default, 1,000 bases, is benchmarks/dedup_threshold_study.py.)
    """
    rows = write_study_set(tmp_path / "study", 40, seed=7)
    hashes = np.array([phash_file(p) for p, _, _ in rows], dtype=np.int64)
    groups = np.array([b for _, b, _ in rows])
    at_default = threshold_study(hashes, groups, DEFAULT_THRESHOLD)[DEFAULT_THRESHOLD]
    assert (at_default.false_pairs_found, at_default.distinct_pairs) == (0, 38220)
    assert at_default.precision == 1.0
    assert (at_default.true_pairs_found, at_default.true_pairs) == (689, 840)
    per_variant = recall_by_variant(hashes, groups, [v for _, _, v in rows], DEFAULT_THRESHOLD)
    assert per_variant == {"crop3pct_center": 1.0, "crop5pct_corner": 0.275, "recompress_q40": 1.0,
                           "resize150": 1.0, "resize50": 1.0, "resize70_q60_crop2pct": 1.0}


# --- CLI ------------------------------------------------------------------------------------------

def test_cli_json_then_human_summary(invoke, ds: Dataset) -> None:
    result = invoke("dedup", ds.manifest, "--json", "--workers", "2", "-q")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["hashed"] == sum(r["status"] in ("ok", "fixable", "fixed") for r in ds.rows)
    assert (doc["threshold"], doc["scope"], doc["duplicates"]) == (DEFAULT_THRESHOLD, "class", 7)
    again = invoke("dedup", ds.manifest, "--scope", "all")
    assert again.exit_code == 0
    assert "marked duplicate: 9 (3 exact, 6 near; threshold 8, scope all)" in again.stdout
    assert "split leakage: 1 clusters" in again.stdout
    assert "hashed 0 now" in again.stderr  # people-facing text goes to stderr


def test_cli_usage_and_run_errors(invoke, ds: Dataset, tmp_path: Path) -> None:
    assert invoke("dedup", ds.manifest, "--threshold", "40").exit_code == 2
    assert invoke("dedup", ds.manifest, "--scope", "world").exit_code == 2
    assert invoke("dedup", tmp_path / "missing.parquet").exit_code == 2
    other = tmp_path / "not_a_manifest.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), other)
    result = invoke("dedup", other)
    assert result.exit_code == 2 and result.stderr.startswith("Error: ")
