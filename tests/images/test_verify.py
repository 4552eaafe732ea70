"""verify: every defect class by content, the manifest columns, --fix copies, policy, resume."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from imgnet_tools.images.check import (
    FIXABLE_REASONS,
    REJECT_REASONS,
    Policy,
    check_image,
)
from imgnet_tools.images.fix import normalize_to_jpeg
from imgnet_tools.images.scan import ScanParams, scan
from imgnet_tools.images.verify import VerifyParams, outputs_complete, verify
from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.manifest.schemas import load_schema
from tests import imagegen
from tests.conftest import SHARED

FIXABLE_KINDS = [k for k, d in imagegen.DEFECTS.items() if d.status == "fixable"]


@pytest.mark.parametrize("kind", sorted(imagegen.DEFECTS))
def test_check_image_finds_each_defect_by_content(kind: str) -> None:
    spec = imagegen.DEFECTS[kind]
    data = spec.make(11)
    policy = Policy()
    found = check_image(data, spec.filename, policy)
    assert (found.status(policy), found.reason(policy)) == (spec.status, spec.reason), found.issues
    if spec.issue:
        assert spec.issue in found.issues


def test_exif_rotation_swaps_reported_size() -> None:
    data = imagegen.with_exif(imagegen.jpeg_bytes(3, (90, 40)), imagegen.exif_orientation(6))
    found = check_image(data, "exif__orientation6.jpg", Policy())
    assert (found.width, found.height, found.orientation) == (40, 90, 6)


@pytest.mark.parametrize("kind", FIXABLE_KINDS)
def test_normalized_copy_is_a_clean_rgb_jpeg(kind: str) -> None:
    spec = imagegen.DEFECTS[kind]
    data = spec.make(5)
    found = check_image(data, spec.filename, Policy())
    fixed = normalize_to_jpeg(data, found.orientation)
    again = check_image(fixed, "fixed.jpg", Policy())
    assert again.issues == [] and again.mode == "RGB" and again.format == "JPEG"
    assert (again.width, again.height) == (found.width, found.height)


def test_fix_applies_orientation_to_pixels() -> None:
    im = Image.new("RGB", (80, 40), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 40, 40))  # left half blue
    data = imagegen.with_exif(imagegen.encode(im, "JPEG", quality=95), imagegen.exif_orientation(6))
    fixed = Image.open(io.BytesIO(normalize_to_jpeg(data, 6)))
    assert fixed.size == (40, 80)
    r, _, b = fixed.getpixel((20, 10))  # orientation 6 = rotate 90 clockwise: blue ends on top
    assert b > 200 and r < 60


def test_fix_flattens_alpha_onto_white() -> None:
    im = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    fixed = Image.open(io.BytesIO(normalize_to_jpeg(imagegen.encode(im, "PNG"))))
    assert min(fixed.getpixel((20, 20))) > 245


def test_sixteen_bit_gray_is_scaled_not_clipped() -> None:
    data = imagegen.encode(Image.new("I;16", (40, 40), 32768), "PNG")
    fixed = Image.open(io.BytesIO(normalize_to_jpeg(data)))
    assert abs(fixed.getpixel((5, 5))[0] - 128) <= 2


def test_pillow_global_state_is_left_alone() -> None:
    from PIL import Image as PILImage
    from PIL import ImageFile

    before = PILImage.MAX_IMAGE_PIXELS
    check_image(imagegen.bomb_png(), "bomb.png", Policy())
    check_image(imagegen.truncated(imagegen.jpeg_bytes(1), 0.5), "t.jpg", Policy())
    assert PILImage.MAX_IMAGE_PIXELS == before
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_policy_options_move_images_between_statuses() -> None:
    gray = imagegen.DEFECTS["grayscale"].make(1)
    assert check_image(gray, "g.jpg", Policy(allow_grayscale=True)).status(Policy(allow_grayscale=True)) == "ok"
    small = imagegen.jpeg_bytes(2, (48, 40))
    assert check_image(small, "s.jpg", Policy(min_size=64)).reason(Policy(min_size=64)) == "too_small"
    assert check_image(small, "s.jpg", Policy(max_size=40)).reason(Policy(max_size=40)) == "too_large"
    strict = Policy(reject=("animated",))
    gif = imagegen.DEFECTS["animated_gif"].make(1)
    found = check_image(gif, "a.gif", strict)
    assert (found.status(strict), found.reason(strict)) == ("rejected", "animated")
    assert check_image(imagegen.jpeg_bytes(1, (200, 100)), "x.jpg", Policy(max_pixels=10_000)).reason(
        Policy(max_pixels=10_000)) == "bomb"


def test_reason_vocabulary_matches_schema() -> None:
    declared = load_schema("manifest")["reason_values"]
    assert set(declared) == set(REJECT_REASONS) | set(FIXABLE_REASONS)
    for name in REJECT_REASONS:
        assert declared[name].startswith("rejected")
    for name in FIXABLE_REASONS:
        assert declared[name].startswith("fixable")


# --- the stage, end to end -----------------------------------------------------------------------

@pytest.fixture
def pool(tmp_path: Path) -> tuple[Path, Path]:
    """A training folder holding one file per defect class plus clean images; scanned."""
    src = tmp_path / "data" / "train"
    imagegen.make_imagefolder(src, ["n01440764", "n01443537"], per_class=3)
    imagegen.write_defects(src / "n01440764", seed=1)
    scan(ScanParams(src=(str(src),), out=str(tmp_path / "work"), workers=1))
    return src, tmp_path / "work" / "manifest.parquet"


def _rows(manifest: Path) -> dict[str, dict]:
    return {Path(r["source_path"]).name: r for r in read_table(manifest, "manifest").to_pylist()}


def test_verify_rows_for_every_defect_and_sources_untouched(pool: tuple[Path, Path], tmp_path: Path) -> None:
    src, manifest = pool
    before = imagegen.tree_hashes(src)
    result = verify(VerifyParams(manifest=str(manifest), fix=str(tmp_path / "fixed"), workers=1))
    assert imagegen.tree_hashes(src) == before
    rows = _rows(manifest)
    assert result.rows == len(rows) == len(before)
    for spec in imagegen.DEFECTS.values():
        row = rows[spec.filename]
        want = "fixed" if spec.status == "fixable" else spec.status
        assert (row["status"], row["reason"]) == (want, spec.reason), spec.filename
        if spec.issue:
            assert spec.issue in row["issues"]
    for row in rows.values():
        if row["status"] == "fixed":
            assert row["path"] != row["source_path"] and Path(row["path"]).suffix == ".jpg"
            assert Path(row["path"]).parent == tmp_path / "fixed"
            assert check_image(Path(row["path"]).read_bytes(), row["path"], Policy()).issues == []
            assert (row["format"], row["mode"]) == ("JPEG", "RGB")
        else:
            assert row["path"] == row["source_path"]
        if row["status"] in ("ok", "fixed"):
            import hashlib

            assert row["sha256"] == hashlib.sha256(Path(row["path"]).read_bytes()).hexdigest()
            assert row["width"] > 0 and row["height"] > 0


def test_verify_without_fix_marks_fixable(pool: tuple[Path, Path]) -> None:
    _, manifest = pool
    result = verify(VerifyParams(manifest=str(manifest), workers=1))
    rows = _rows(manifest)
    assert rows["cmyk__plain.jpg"]["status"] == "fixable"
    assert rows["png_as_jpeg__rgb.JPEG"]["format"] == "PNG"
    assert rows["cmyk__plain.jpg"]["mode"] == "CMYK"
    assert result.fixed == 0 and result.status["fixable"] == len(FIXABLE_KINDS)


def test_verify_resumes_and_rechecks_on_change(pool: tuple[Path, Path], tmp_path: Path) -> None:
    src, manifest = pool
    first = verify(VerifyParams(manifest=str(manifest), fix=str(tmp_path / "fixed"), workers=1))
    assert first.checked > 0
    params = VerifyParams(manifest=str(manifest), fix=str(tmp_path / "fixed"), workers=1)
    assert outputs_complete(params)
    again = verify(params)
    assert again.checked == 0 and again.skipped == first.rows
    # a source file replaced on disk is checked again; so is everything under a new policy
    target = src / "n01443537" / "n01443537_1.JPEG"
    target.write_bytes(imagegen.DEFECTS["cmyk"].make(9))
    changed = verify(params)
    assert changed.checked == 1 and _rows(manifest)["n01443537_1.JPEG"]["status"] == "fixed"
    stricter = verify(VerifyParams(manifest=str(manifest), fix=str(tmp_path / "fixed"), min_size=64, workers=1))
    assert stricter.checked == first.checked
    assert _rows(manifest)["n01443537_2.JPEG"]["reason"] == "too_small"  # 64x48 images


def test_a_fixed_copy_carries_its_source_mtime_and_is_fixed_again_when_changed(pool: tuple[Path, Path],
                                                                               tmp_path: Path) -> None:
    """The copy's mtime is its source's (not the time of writing), so every run writes the same
    manifest bytes; a copy changed afterwards has a new mtime, and the next run writes it again."""
    import os

    _, manifest = pool
    params = VerifyParams(manifest=str(manifest), fix=str(tmp_path / "fixed"), workers=1)
    verify(params)
    first = manifest.read_bytes()
    fixed = [r for r in _rows(manifest).values() if r["status"] == "fixed"]
    assert len(fixed) == len(FIXABLE_KINDS)
    for row in fixed:
        assert os.stat(row["path"]).st_mtime_ns == os.stat(row["source_path"]).st_mtime_ns == row["mtime_ns"]
    copy = Path(fixed[0]["path"])
    good = copy.read_bytes()
    copy.write_bytes(b"spoiled")
    again = verify(params)
    assert again.checked == 1 and copy.read_bytes() == good
    assert manifest.read_bytes() == first


def test_verify_parallel_matches_inline(pool: tuple[Path, Path], tmp_path: Path) -> None:
    _, manifest = pool
    one = verify(VerifyParams(manifest=str(manifest), out=str(tmp_path / "one.parquet"), workers=1))
    two = verify(VerifyParams(manifest=str(manifest), out=str(tmp_path / "two.parquet"), workers=2))
    assert one.status == two.status
    drop = {"verify_policy"}
    a = [{k: v for k, v in r.items() if k not in drop} for r in pq.read_table(tmp_path / "one.parquet").to_pylist()]
    b = [{k: v for k, v in r.items() if k not in drop} for r in pq.read_table(tmp_path / "two.parquet").to_pylist()]
    assert a == b


def test_verified_manifest_matches_schema(pool: tuple[Path, Path]) -> None:
    _, manifest = pool
    verify(VerifyParams(manifest=str(manifest), workers=1))
    table = read_table(manifest, "manifest")
    schema = load_schema("manifest")
    declared = {f["name"]: f for f in schema["fields"]}
    assert table.column_names == list(declared)  # version 2: every declared column, in declared order
    dedup_columns = [f for f, d in declared.items() if d.get("stage") == "dedup"]
    assert all(table.column(c).null_count == table.num_rows for c in dedup_columns)  # dedup has not run
    checked = [r for r in table.to_pylist() if r["reason"] not in ("empty", "not_an_image", "unreadable")]
    assert checked and all(r["verify_policy"] and r["issues"] is not None for r in checked)
    meta = pq.read_schema(manifest).metadata
    assert meta[b"imgnet.format_version"] == str(schema["format_version"]).encode()
    for row in table.to_pylist():
        assert row["status"] in schema["status_values"]
        assert row["reason"] is None or row["reason"] in schema["reason_values"]
        assert row["status"] != "ok" or row["reason"] is None


# --- the 23 known-bad ILSVRC-2012 kinds ----------------------------------------------------------

KNOWN_BAD = SHARED / "reference" / "ilsvrc2012_known_bad_files.tsv"


def _known_bad() -> list[tuple[str, str, str, str]]:
    lines = [ln.split("\t") for ln in KNOWN_BAD.read_text().splitlines() if ln and not ln.startswith("#")]
    return [(c[0], c[1], c[2], c[3]) for c in lines]


@pytest.mark.skipif(not KNOWN_BAD.is_file(), reason=f"reference list {KNOWN_BAD} is not in this checkout")
def test_known_bad_ilsvrc_kinds_found_by_content_whatever_the_name(tmp_path: Path) -> None:
    entries = [e for e in _known_bad() if e[1] == "train"]
    assert len(entries) == 23
    root = tmp_path / "train"
    for i, (name, _, wnid, kind) in enumerate(entries):
        (root / wnid).mkdir(parents=True, exist_ok=True)
        maker = imagegen.DEFECTS["cmyk" if kind == "CMYK" else "png_as_jpeg"].make
        (root / wnid / name).write_bytes(maker(i))
        # the same bad content under an innocent name, and clean content under the notorious name
        (root / wnid / f"{wnid}_innocent{i}.JPEG").write_bytes(maker(i))
        (root / wnid / f"clean_{name}").write_bytes(imagegen.jpeg_bytes(i))
    scan(ScanParams(src=(str(root),), out=str(tmp_path / "work"), workers=1))
    verify(VerifyParams(manifest=str(tmp_path / "work" / "manifest.parquet"), workers=1))
    rows = _rows(tmp_path / "work" / "manifest.parquet")
    for i, (name, _, wnid, kind) in enumerate(entries):
        want = "cmyk" if kind == "CMYK" else "format_mismatch"
        for file in (name, f"{wnid}_innocent{i}.JPEG"):
            assert (rows[file]["status"], rows[file]["reason"]) == ("fixable", want), file
        assert rows[f"clean_{name}"]["status"] == "ok"
    assert sum(r["reason"] == "cmyk" for r in rows.values()) == 44


# --- the command -----------------------------------------------------------------------------------

def test_cli_verify_json_and_fix(pool: tuple[Path, Path], tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    src, manifest = pool
    before = imagegen.tree_hashes(src)
    res = invoke("verify", manifest, "--fix", tmp_path / "fixed", "--workers", "2", "--json", "--reject", "animated")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    animated = [k for k in FIXABLE_KINDS if "animated" in (imagegen.DEFECTS[k].reason, imagegen.DEFECTS[k].issue)]
    assert doc["fixed"] == len(FIXABLE_KINDS) - len(animated)
    assert doc["reasons"]["animated"] == len(animated) == 2
    assert imagegen.tree_hashes(src) == before
    res = invoke("verify", manifest, "--reject", "animated", "--fix", tmp_path / "fixed")
    assert res.exit_code == 0 and " 0 checked" in res.stdout


def test_fix_folder_inside_the_sources_is_refused(pool: tuple[Path, Path], invoke) -> None:  # type: ignore[no-untyped-def]
    src, manifest = pool
    before = imagegen.tree_hashes(src)
    for inside in (src / "n01440764" / "fixed", src / "n01440764", src.parent):
        res = invoke("verify", manifest, "--fix", inside)
        assert res.exit_code == 2 and "outside the source tree" in res.stderr
    assert imagegen.tree_hashes(src) == before and not (src / "n01440764" / "fixed").exists()


def test_cli_verify_usage_and_run_errors(tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    bogus = tmp_path / "not_a_manifest.parquet"
    bogus.write_text("hello")
    res = invoke("verify", bogus)
    assert res.exit_code == 2 and res.stderr.startswith("Error: ")
    res = invoke("verify", bogus, "--reject", "truncated")
    assert res.exit_code == 2
    res = invoke("verify", bogus, "--min-size", "0")
    assert res.exit_code == 2


def test_chunks_resume_and_cross_boundaries(pool: tuple[Path, Path], tmp_path: Path) -> None:
    """Tiny chunks: results equal one big chunk's; a run stopped after some chunks resumes from them."""
    _, manifest = pool
    whole = tmp_path / "whole.parquet"
    verify(VerifyParams(manifest=str(manifest), out=str(whole), workers=2))
    tiny = tmp_path / "tiny.parquet"
    first = verify(VerifyParams(manifest=str(manifest), out=str(tiny), workers=2, chunk_rows=2))
    assert read_table(tiny, "manifest").equals(read_table(whole, "manifest"))
    assert first.resumed_chunks == 0 and first.checked == first.rows - 3
    again = verify(VerifyParams(manifest=str(tiny), workers=2, chunk_rows=2))
    assert again.checked == 0 and read_table(tiny, "manifest").equals(read_table(whole, "manifest"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # work folders removed
