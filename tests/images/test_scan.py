"""scan: layouts (ImageFolder, ILSVRC val, lists), class lists, keys, odd files, resume."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imgnet_tools.errors import InputError
from imgnet_tools.synsets.classlists import read_class_list as read_class_file
from imgnet_tools.images.keys import KeyAllocator, base_key, escape
from imgnet_tools.images.scan import ScanParams, outputs_complete, scan
from imgnet_tools.images.verify import VerifyParams, verify
from imgnet_tools.manifest.parquet import read_table
from tests import imagegen
from tests.conftest import require

WNIDS = ["n01443537", "n01440764", "n01484850"]  # deliberately not sorted
KEY_RE = re.compile(r"[A-Za-z0-9_%-]+")


def _scan(tmp_path: Path, *src: Path, **kw: object) -> list[dict]:
    scan(ScanParams(src=tuple(str(s) for s in src), out=str(tmp_path / "work"), workers=1, **kw))  # type: ignore[arg-type]
    return read_table(tmp_path / "work" / "manifest.parquet", "manifest").to_pylist()


def _by_name(rows: list[dict]) -> dict[str, dict]:
    return {os.path.basename(r["source_path"]): r for r in rows}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """root/train/WNID/WNID_I.JPEG and root/val/ILSVRC2012_val_0000000N.JPEG + LOC-style CSV."""
    root = tmp_path / "data"
    imagegen.make_imagefolder(root / "train", WNIDS, per_class=2)
    val_truth = ["n01484850", "n01440764", "n01443537", "n01440764"]
    imagegen.make_ilsvrc_val(root / "val", val_truth)
    lines = ["ImageId,PredictionString"] + [
        f"ILSVRC2012_val_{i:08d},{w} 1 2 30 40 {w} 5 6 7 8" for i, w in enumerate(val_truth, start=1)]
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    return root


def test_imagefolder_and_val_layout_with_derived_classes(dataset: Path, tmp_path: Path) -> None:
    before = imagegen.tree_hashes(dataset)
    rows = _scan(tmp_path, dataset, val_labels=str(tmp_path / "LOC_val_solution.csv"))
    assert imagegen.tree_hashes(dataset) == before
    assert len(rows) == 6 + 4
    by = _by_name(rows)
    order = sorted(WNIDS)  # no class list: sorted folder names, like torchvision ImageFolder
    assert by["n01484850_2.JPEG"]["label"] == order.index("n01484850")
    assert by["n01484850_2.JPEG"]["split"] == "train" and by["n01484850_2.JPEG"]["wnid"] == "n01484850"
    assert by["ILSVRC2012_val_00000001.JPEG"]["wnid"] == "n01484850"
    assert by["ILSVRC2012_val_00000002.JPEG"]["label"] == order.index("n01440764")
    assert by["ILSVRC2012_val_00000001.JPEG"]["key"] == "val-n01484850-ILSVRC2012_val_00000001"
    assert by["n01440764_1.JPEG"]["key"] == "train-n01440764_1"
    for row in rows:
        assert row["status"] == "pending" and row["reason"] is None
        assert row["path"] == row["source_path"] and os.path.isabs(row["path"])
        assert row["bytes"] == os.path.getsize(row["path"]) == row["source_bytes"]
        assert row["mtime_ns"] == os.stat(row["path"]).st_mtime_ns
        assert KEY_RE.fullmatch(row["key"])


def test_preset_and_class_files_set_label_order(dataset: Path, tmp_path: Path) -> None:
    rows = _by_name(_scan(tmp_path, dataset / "train", preset="ilsvrc2012"))
    assert rows["n01440764_1.JPEG"]["label"] == 0  # ILSVRC-2012 index order
    assert rows["n01443537_1.JPEG"]["label"] == 1
    tsv = tmp_path / "classes.tsv"
    tsv.write_text("index\twnid\tnames\n0\tn01484850\tgreat white shark\n1\tn01443537\tgoldfish\n2\tn01440764\ttench\n")
    rows = _by_name(_scan(tmp_path, dataset / "train", classes=str(tsv)))
    assert [rows[f"{w}_1.JPEG"]["label"] for w in ("n01484850", "n01443537", "n01440764")] == [0, 1, 2]
    tsv.write_text("0\tn01443537\tgoldfish, Carassius auratus\n1\tn01484850\tgreat white shark\n2\tn01440764\ttench\n")
    rows = _by_name(_scan(tmp_path, dataset / "train", classes=str(tsv)))  # as `imgnet synsets build` writes it
    assert [rows[f"{w}_1.JPEG"]["label"] for w in ("n01443537", "n01484850", "n01440764")] == [0, 1, 2]
    plain = tmp_path / "wnids.txt"
    plain.write_text("# my order\nn01440764\n\nn01484850\nn01443537\n")
    rows = _by_name(_scan(tmp_path, dataset / "train", classes=str(plain)))
    assert rows["n01484850_1.JPEG"]["label"] == 1
    mapping = tmp_path / "LOC_synset_mapping.txt"
    mapping.write_text("n01484850 great white shark, white shark\nn01440764 tench, Tinca tinca\nn01443537 goldfish\n")
    rows = _by_name(_scan(tmp_path, dataset / "train", classes=str(mapping)))
    assert [rows[f"{w}_1.JPEG"]["label"] for w in ("n01484850", "n01440764", "n01443537")] == [0, 1, 2]


def test_folder_not_in_class_list_is_a_row_not_a_crash(dataset: Path, tmp_path: Path) -> None:
    imagegen.make_imagefolder(dataset / "train", ["n99999999"], per_class=1)
    rows = _by_name(_scan(tmp_path, dataset / "train", preset="ilsvrc2012"))
    row = rows["n99999999_1.JPEG"]
    assert (row["status"], row["reason"], row["label"]) == ("rejected", "unknown_class", None)


def test_class_file_errors_name_the_problem(tmp_path: Path) -> None:
    dup = tmp_path / "dup.txt"
    dup.write_text("n01440764\nn01440764\n")
    with pytest.raises(InputError, match="repeats line 1"):
        read_class_file(dup)
    gap = tmp_path / "gap.tsv"
    gap.write_text("index\twnid\tnames\n0\tn01440764\ta\n2\tn01443537\tb\n")
    with pytest.raises(InputError, match="without gaps"):
        read_class_file(gap)


def test_devkit_ground_truth_needs_the_id_map(tmp_path: Path) -> None:
    val = tmp_path / "val"
    imagegen.make_ilsvrc_val(val, ["a"] * 3)
    truth = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    truth.write_text("3\n1\n3\n")  # devkit ILSVRC2012_IDs, 1-based, meta.mat order
    with pytest.raises(InputError, match="--val-id-map"):
        _scan(tmp_path, val, val_labels=str(truth))
    id_map = tmp_path / "ids.txt"
    id_map.write_text("n04399382\nn01440764\nn02119789\n")  # ID 1, 2, 3 (not sorted)
    rows = _by_name(_scan(tmp_path, val, val_labels=str(truth), val_id_map=str(id_map), preset="ilsvrc2012"))
    assert [rows[f"ILSVRC2012_val_0000000{i}.JPEG"]["wnid"] for i in (1, 2, 3)] == ["n02119789", "n04399382", "n02119789"]
    assert rows["ILSVRC2012_val_00000002.JPEG"]["label"] == 850  # teddy bear in ILSVRC-2012 order


def test_devkit_meta_mat_maps_ids(tmp_path: Path) -> None:
    scipy_io = require("scipy.io")
    import numpy as np

    val = tmp_path / "val"
    imagegen.make_ilsvrc_val(val, ["a"] * 2)
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_text("490\n361\n")
    # devkit layout: struct array 'synsets' with ILSVRC2012_ID, WNID, words, num_children (leaves first)
    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")]
    synsets = np.zeros((1860, 1), dtype=dtype)
    for i in range(1860):
        synsets[i, 0] = (float(i + 1), f"n{i:08d}", f"class {i}", 0.0 if i < 1000 else 3.0)
    synsets[489, 0] = (490.0, "n01751748", "sea snake", 0.0)
    scipy_io.savemat(tmp_path / "meta.mat", {"synsets": synsets})
    rows = _by_name(_scan(tmp_path, val, val_labels=str(tmp_path / "ILSVRC2012_validation_ground_truth.txt"),
                          val_id_map=str(tmp_path / "meta.mat")))
    assert rows["ILSVRC2012_val_00000001.JPEG"]["wnid"] == "n01751748"
    assert rows["ILSVRC2012_val_00000002.JPEG"]["wnid"] == "n00000360"
    (tmp_path / "not_meta.mat").write_bytes(b"MATLAB 5.0 nonsense")
    with pytest.raises(InputError, match="meta.mat"):
        _scan(tmp_path, val, val_labels=str(tmp_path / "ILSVRC2012_validation_ground_truth.txt"),
              val_id_map=str(tmp_path / "not_meta.mat"))


def test_one_wnid_per_line_val_labels(tmp_path: Path) -> None:
    val = tmp_path / "val"
    imagegen.make_ilsvrc_val(val, ["a"] * 2)
    truth = tmp_path / "imagenet_2012_validation_synset_labels.txt"
    truth.write_text("n01751748\nn09193705\n")
    rows = _by_name(_scan(tmp_path, val, val_labels=str(truth)))
    assert rows["ILSVRC2012_val_00000001.JPEG"]["wnid"] == "n01751748"
    assert rows["ILSVRC2012_val_00000002.JPEG"]["label"] == 1


def test_flat_folder_without_labels_is_unlabelled(tmp_path: Path) -> None:
    test = tmp_path / "test"
    imagegen.make_ilsvrc_val(test, ["a"] * 2)
    rows = _scan(tmp_path, test)
    assert {(r["split"], r["label"], r["wnid"]) for r in rows} == {("test", None, None)}


def test_csv_and_parquet_lists(dataset: Path, tmp_path: Path) -> None:
    files = sorted((dataset / "train").rglob("*.JPEG"))
    lst = tmp_path / "list.csv"
    lst.write_text("path,wnid,split\n" + "".join(
        f"{os.path.relpath(p, tmp_path)},{p.parent.name},{'train' if i % 2 else 'val'}\n" for i, p in enumerate(files)))
    rows = _by_name(_scan(tmp_path, lst))
    assert len(rows) == len(files)
    assert rows[files[1].name]["split"] == "train" and rows[files[0].name]["split"] == "val"
    assert rows[files[0].name]["wnid"] == files[0].parent.name
    table = pa.table({"path": [str(p) for p in files], "label": [7] * len(files)})
    pq.write_table(table, tmp_path / "list.parquet")
    rows = _by_name(_scan(tmp_path, tmp_path / "list.parquet", split="train", preset="ilsvrc2012"))
    assert {r["label"] for r in rows.values()} == {7}
    assert rows[files[0].name]["wnid"] == "n01514668"  # ILSVRC-2012 class 7: cock
    bad = tmp_path / "bad.csv"
    bad.write_text("file,wnid\nx.jpg,n01440764\n")
    with pytest.raises(InputError, match="'path' column"):
        _scan(tmp_path, bad, split="train")


def test_odd_files_become_rows_with_reasons(tmp_path: Path) -> None:
    cls = tmp_path / "train" / "n01440764"
    cls.mkdir(parents=True)
    (cls / "ok.JPEG").write_bytes(imagegen.jpeg_bytes(1))
    (cls / "empty__zero_bytes.JPEG").write_bytes(b"")
    (cls / "not_image__readme.JPEG").write_text("hello\n")
    os.symlink("loop__self.JPEG", cls / "loop__self.JPEG")
    os.symlink("missing_target.JPEG", cls / "dangling__link.JPEG")
    os.symlink("..", cls / "loop__dir")  # directory symlink back to its parent
    os.mkfifo(cls / "fifo__pipe.JPEG")
    weird = os.fsencode(str(cls)) + b"/latin1__caf\xe9.JPEG"
    with open(weird, "wb") as fh:
        fh.write(imagegen.jpeg_bytes(2))
    before = imagegen.tree_hashes(tmp_path / "train")
    rows = _scan(tmp_path, tmp_path / "train")
    assert imagegen.tree_hashes(tmp_path / "train") == before
    got = {os.path.basename(r["source_path"]): (r["status"], r["reason"]) for r in rows}
    assert got["ok.JPEG"] == ("pending", None)
    assert got["empty__zero_bytes.JPEG"] == ("rejected", "empty")
    assert got["not_image__readme.JPEG"] == ("rejected", "not_an_image")
    assert got["loop__self.JPEG"] == ("rejected", "symlink_loop")
    assert got["dangling__link.JPEG"] == ("rejected", "missing")
    assert got["loop__dir"] == ("rejected", "symlink_loop")
    assert got["fifo__pipe.JPEG"] == ("rejected", "not_a_file")
    assert got["latin1__caf\\xe9.JPEG"] == ("rejected", "non_utf8_name")
    keys = [r["key"] for r in rows]
    assert "train-n01440764-latin1__caf%E9" in keys
    assert len(set(keys)) == len(keys) and all(KEY_RE.fullmatch(k) for k in keys)
    verify(VerifyParams(manifest=str(tmp_path / "work" / "manifest.parquet"), workers=1))  # reads none of them


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_a_row(tmp_path: Path) -> None:
    cls = tmp_path / "train" / "n01440764"
    cls.mkdir(parents=True)
    locked = cls / "locked.JPEG"
    locked.write_bytes(imagegen.jpeg_bytes(1))
    locked.chmod(0)
    try:
        rows = _scan(tmp_path, tmp_path / "train")
    finally:
        locked.chmod(0o644)
    assert (rows[0]["status"], rows[0]["reason"]) == ("rejected", "unreadable")


def test_keys_are_sanitized_unique_and_stable() -> None:
    assert escape("a b/../.x\x01é") == "a%20b%2F%2E%2E%2F%2Ex%01%C3%A9"
    assert base_key("train", "n01440764", "n01440764_10026.JPEG") == "train-n01440764_10026"
    assert base_key("val", "n01751748", "ILSVRC2012_val_00000001.JPEG") == "val-n01751748-ILSVRC2012_val_00000001"
    assert base_key("train", None, ".hidden") == "train-%2Ehidden"
    long = base_key("train", None, "x" * 400 + ".jpg")
    assert len(long) <= 160 and long != base_key("train", None, "x" * 401 + ".jpg")
    alloc = KeyAllocator({"train-a"})
    assert [alloc.allocate("train-a"), alloc.allocate("train-a"), alloc.allocate("train-b")] == \
        ["train-a-2", "train-a-3", "train-b"]


def test_colliding_names_get_suffixes_in_a_stable_order(tmp_path: Path) -> None:
    cls = tmp_path / "train" / "n01440764"
    (cls / "sub").mkdir(parents=True)
    for path in (cls / "x.jpg", cls / "x.png", cls / "sub" / "x.jpg", cls / "x y.jpg", cls / "x.y.jpg"):
        path.write_bytes(imagegen.jpeg_bytes(len(str(path))))
    first = {r["source_path"]: r["key"] for r in _scan(tmp_path, tmp_path / "train")}
    assert sorted(first.values()) == ["train-n01440764-x", "train-n01440764-x%20y", "train-n01440764-x%2Ey",
                                      "train-n01440764-x-2", "train-n01440764-x-3"]
    (tmp_path / "work" / "manifest.parquet").unlink()
    assert {r["source_path"]: r["key"] for r in _scan(tmp_path, tmp_path / "train")} == first


def test_rescan_keeps_keys_and_verify_results(dataset: Path, tmp_path: Path) -> None:
    rows = _by_name(_scan(tmp_path, dataset / "train"))
    manifest = tmp_path / "work" / "manifest.parquet"
    verify(VerifyParams(manifest=str(manifest), workers=1))
    params = ScanParams(src=(str(dataset / "train"),), out=str(tmp_path / "work"), workers=1)
    assert outputs_complete(params)
    changed = dataset / "train" / "n01440764" / "n01440764_1.JPEG"
    changed.write_bytes(imagegen.DEFECTS["cmyk"].make(3))
    (dataset / "train" / "n01443537" / "n01443537_2.JPEG").unlink()
    (dataset / "train" / "n01443537" / "n01443537_2.png").write_bytes(imagegen.jpeg_bytes(99))
    assert not outputs_complete(params)
    result = scan(params)
    assert (result.new, result.removed) == (1, 1)
    again = _by_name(read_table(manifest, "manifest").to_pylist())
    assert again["n01440764_1.JPEG"]["key"] == rows["n01440764_1.JPEG"]["key"]
    assert again["n01440764_1.JPEG"]["status"] == "pending"  # changed on disk: verify again
    assert again["n01484850_1.JPEG"]["status"] == "ok"  # unchanged: verify result kept
    assert again["n01484850_1.JPEG"]["sha256"] == rows_sha(manifest, "n01484850_1.JPEG")
    # a removed file's key is never handed to another file (votes, predictions keyed by it stay true)
    assert again["n01443537_2.png"]["key"] == "train-n01443537_2-2"
    assert verify(VerifyParams(manifest=str(manifest), workers=1)).checked == 2


def rows_sha(manifest: Path, name: str) -> str:
    import hashlib

    path = next(r["source_path"] for r in read_table(manifest, "manifest").to_pylist() if r["source_path"].endswith(name))
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_scan_output_matches_schema(dataset: Path, tmp_path: Path) -> None:
    from imgnet_tools.manifest.schemas import load_schema

    _scan(tmp_path, dataset / "train")
    declared = {f["name"]: f for f in load_schema("manifest")["fields"]}
    table = read_table(tmp_path / "work" / "manifest.parquet", "manifest")
    assert table.column_names == list(declared)  # format 2: every declared column
    later = [n for n, f in declared.items() if f["stage"] != "scan"]
    assert all(table.column(c).null_count == table.num_rows for c in later)  # only scan has run
    for field in table.schema:
        assert field.nullable == declared[field.name].get("nullable", True)


def test_cli_scan(dataset: Path, tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    res = invoke("scan", dataset, "--val-labels", tmp_path / "LOC_val_solution.csv", "--out", tmp_path / "w", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["rows"] == 10 and doc["splits"] == {"train": 6, "val": 4} and doc["classes"] == 3
    res = invoke("scan", dataset, "--out", tmp_path / "w")
    assert res.exit_code == 0 and "10 kept" in res.stdout
    res = invoke("scan", dataset, "--out", tmp_path / "w", "--preset", "ilsvrc2012", "--classes", tmp_path / "LOC_val_solution.csv")
    assert res.exit_code == 2
    odd = tmp_path / "images"
    imagegen.make_ilsvrc_val(odd, ["a"])
    res = invoke("scan", odd, "--out", tmp_path / "w2", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["splits"] == {"train": 1}  # no split named: train
    res = invoke("scan", odd, "--out", tmp_path / "w2")
    assert "had no split" in res.stderr and "they are train" in res.stderr
    res = invoke("scan", odd, "--out", tmp_path / "w2" / "manifest.parquet")
    assert res.exit_code == 2 and "--out names a folder" in res.stderr
    res = invoke("scan", odd, "--out", tmp_path / "w2", "--split", "extra")
    assert res.exit_code == 0 and "extra 1" in res.stdout
