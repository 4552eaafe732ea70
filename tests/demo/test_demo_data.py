"""`imgnet demo-data`: deterministic bytes, every planted fault really is what its name says."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgnet_tools.demo.data import DEMO_WNIDS, DemoParams, make_demo
from imgnet_tools.errors import InputError, OutputExistsError
from imgnet_tools.manifest.schemas import validate_json, validate_text
from tests.conftest import REPO

REQUIRED_KINDS = {"truncated_jpeg", "cmyk_jpeg", "png_named_jpeg", "grayscale", "exact_duplicate",
                  "near_duplicate", "train_val_leak", "zero_byte", "tiny_image"}


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "data"
    make_demo(DemoParams(out, train_per_class=4, val_per_class=2, size=64))
    return out


def faults(root: Path) -> dict[str, dict]:
    return {f["kind"]: f for f in json.loads((root / "faults.json").read_text())["faults"]}


def test_same_params_give_the_same_bytes_and_another_seed_does_not(demo: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    make_demo(DemoParams(again, train_per_class=4, val_per_class=2, size=64))
    assert tree_digest(again) == tree_digest(demo)
    other = tmp_path / "other"
    make_demo(DemoParams(other, train_per_class=4, val_per_class=2, size=64, seed=1))
    same = set(tree_digest(other).items()) & set(tree_digest(demo).items())
    assert {name for name, _ in same} == {"wnids.txt", "train/n03000684/empty__zero_bytes.JPEG"}


def test_layout_classes_and_records_validate(demo: Path) -> None:
    doc = json.loads((demo / "faults.json").read_text())
    validate_json(doc, "demo_faults", "faults.json")
    assert validate_text(demo / "wnids.txt", "demo_wnids") == 5
    wnids = (demo / "wnids.txt").read_text().split()
    assert wnids == [w for w, _ in DEMO_WNIDS[:5]]
    ilsvrc = set((REPO / "imgnet_tools/synsets/presets/ilsvrc2012_wnids.txt").read_text().split())
    assert set(wnids) <= ilsvrc, "demo classes must be real ILSVRC-2012 wnids"
    assert sorted(p.name for p in (demo / "train").iterdir()) == wnids
    assert sorted(p.name for p in (demo / "val").iterdir()) == wnids
    assert {f["kind"] for f in doc["faults"]} == REQUIRED_KINDS
    for f in doc["faults"]:
        assert (demo / f["file"]).is_file(), f


def test_classes_differ_and_images_within_a_class_differ(demo: Path) -> None:
    means = {}
    for wnid_dir in sorted((demo / "train").iterdir()):
        clean = sorted(wnid_dir.glob(f"{wnid_dir.name}_*.JPEG"))
        assert len({hashlib.sha256(p.read_bytes()).digest() for p in clean}) == len(clean) == 4
        hue = [np.asarray(Image.open(p).convert("HSV"))[..., 0].mean() for p in clean]
        means[wnid_dir.name] = float(np.mean(hue))
    hues = sorted(means.values())
    assert min(b - a for a, b in zip(hues, hues[1:])) > 10, f"class hues too close: {means}"


def test_each_fault_is_what_it_claims(demo: Path) -> None:
    f = faults(demo)
    truncated = (demo / f["truncated_jpeg"]["file"]).read_bytes()
    assert truncated[:3] == b"\xff\xd8\xff" and not truncated.endswith(b"\xff\xd9")
    with pytest.raises(OSError):
        Image.open(io.BytesIO(truncated)).load()
    assert Image.open(demo / f["cmyk_jpeg"]["file"]).mode == "CMYK"
    assert Image.open(demo / f["cmyk_jpeg"]["file"]).format == "JPEG"
    png = demo / f["png_named_jpeg"]["file"]
    assert png.suffix == ".JPEG" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(demo / f["grayscale"]["file"]).mode == "L"
    assert (demo / f["zero_byte"]["file"]).stat().st_size == 0
    assert Image.open(demo / f["tiny_image"]["file"]).size == (8, 8)
    exact = f["exact_duplicate"]
    assert (demo / exact["file"]).read_bytes() == (demo / exact["related"]).read_bytes()
    near = f["near_duplicate"]
    small, big = Image.open(demo / near["file"]), Image.open(demo / near["related"])
    assert small.size == (big.width * 3 // 4, big.height * 3 // 4)
    leak = f["train_val_leak"]
    assert leak["file"].startswith("val/") and leak["related"].startswith("train/")
    assert (demo / leak["file"]).read_bytes() == (demo / leak["related"]).read_bytes()


def test_rerun_keeps_a_complete_dir_and_refuses_a_foreign_one(demo: Path, tmp_path: Path) -> None:
    before = tree_digest(demo)
    result = make_demo(DemoParams(demo, train_per_class=4, val_per_class=2, size=64))
    assert result.created is False and tree_digest(demo) == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(OutputExistsError):
        make_demo(DemoParams(foreign))
    assert (foreign / "precious.txt").read_text() == "keep me"
    make_demo(DemoParams(foreign, overwrite=True))
    assert not (foreign / "precious.txt").exists() and (foreign / "faults.json").is_file()


def test_bad_params_are_refused_before_any_write(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--classes"):
        make_demo(DemoParams(tmp_path / "x", classes=3))
    assert not (tmp_path / "x").exists()


def test_cli_prints_the_directory_and_json(tmp_path: Path, invoke) -> None:
    result = invoke("demo-data", tmp_path / "d", "--train-per-class", "3", "--val-per-class", "1", "--size", "48")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "d")
    assert "9 planted faults" in result.stderr
    doc = json.loads(invoke("demo-data", tmp_path / "d", "--train-per-class", "3", "--val-per-class", "1",
                            "--size", "48", "--json").stdout)
    assert doc["created"] is False and doc["images"] == {"train": 3 * 5 + 8, "val": 1 * 5 + 1}
    assert invoke("demo-data", tmp_path / "e", "--classes", "2").exit_code == 2
