"""The 64-bit DCT perceptual hash: reference DCT, robustness, EXIF orientation, per-file failures."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from imgnet_tools.images.phash import (
    THUMB,
    HashTask,
    hash_batch,
    hash_one,
    hash_pixels,
    phash_file,
    thumbnail,
    to_unsigned,
)
from imgnet_tools.manifest.schemas import load_schema
from tests.imagegen import VARIANTS, make_base, photo_jpeg


def _distance(a: int, b: int) -> int:
    return int(np.bitwise_count(to_unsigned(np.array([a]))[0] ^ to_unsigned(np.array([b]))[0]))


def _reference_phash(gray: np.ndarray) -> int:
    """pHash from the textbook DCT-II sum in float64 (no matrix tricks), imagededup's recipe."""
    n = gray.shape[0]
    x = np.arange(n)
    coeffs = np.empty((8, 8))
    for u in range(8):
        for v in range(8):
            cu = np.cos(np.pi * (2 * x + 1) * u / (2 * n))[:, None]
            cv = np.cos(np.pi * (2 * x + 1) * v / (2 * n))[None, :]
            coeffs[u, v] = (gray * cu * cv).sum()
    flat = coeffs.ravel()
    bits = flat > np.median(flat[1:])
    return int("".join("1" if b else "0" for b in bits), 2) - (1 << 64 if bits[0] else 0)


def test_hash_pixels_matches_the_textbook_dct_on_random_thumbnails() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        gray = rng.random((THUMB, THUMB)) * 255
        # Orthonormal scaling changes coefficient sizes, not which side of the median they fall on.
        assert hash_pixels(gray.astype(np.float32)) == _reference_phash(gray)


def test_hash_is_signed_int64_with_dc_as_top_bit() -> None:
    flat = np.full((THUMB, THUMB), 200.0, dtype=np.float32)
    flat[:, : THUMB // 2] = 10.0  # a left/right edge: DC positive, first horizontal frequency strong
    value = hash_pixels(flat)
    assert -(1 << 63) <= value < (1 << 63)
    assert value < 0  # bit 63 = DC coefficient above the median


def test_near_duplicates_are_close_and_distinct_images_far(tmp_path: Path) -> None:
    base = make_base(5)
    original = phash_file(_write(tmp_path / "orig__a.jpg", photo_jpeg(base)))
    for variant in VARIANTS:
        if "corner" in variant.name:
            continue  # a 5% shift is the documented miss
        dup = phash_file(_write(tmp_path / f"dup_of_a__{variant.name}.jpg",
                                photo_jpeg(variant.transform(base), variant.quality)))
        assert _distance(original, dup) <= 8, variant.name
    for seed in range(6, 16):
        other = phash_file(_write(tmp_path / f"distinct__{seed}.jpg", photo_jpeg(make_base(seed))))
        assert _distance(original, other) > 12


def test_png_and_jpeg_of_the_same_pixels_hash_alike(tmp_path: Path) -> None:
    base = make_base(8)
    jpg = phash_file(_write(tmp_path / "orig__a.jpg", photo_jpeg(base, quality=95)))
    png = tmp_path / "dup_of_a__as_png.png"
    base.save(png)
    assert _distance(jpg, phash_file(png)) <= 2


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path: Path, orientation: int) -> None:
    stored = make_base(21, size=(200, 120))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"exif_orientation_{orientation}.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
    with Image.open(path) as img:
        upright = ImageOps.exif_transpose(img)
        assert upright is not None
        expected = hash_pixels(np.asarray(upright.convert("L").resize((THUMB, THUMB), Image.Resampling.BILINEAR),
                                          dtype=np.float32))
    assert _distance(phash_file(path), expected) <= 2
    outcome = hash_one(HashTask(str(path)))
    assert (outcome.width, outcome.height) == ((120, 200) if orientation >= 5 else (200, 120))


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16", "1"])
def test_every_common_mode_hashes_close_to_its_rgb_version(tmp_path: Path, mode: str) -> None:
    base = make_base(30)
    ref = hash_pixels(thumbnail(base))
    if mode == "I;16":
        arr = (np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        img = Image.fromarray(arr)
        assert img.mode == "I;16"
    else:
        img = base.convert(mode)
    path = tmp_path / f"mode_{mode.replace(';', '_')}.{'tif' if mode in ('CMYK', 'I;16') else 'png'}"
    img.save(path)
    limit = 16 if mode == "1" else 4  # 1-bit dithering moves low frequencies a little
    assert _distance(ref, phash_file(path)) <= limit


def test_broken_files_become_reasons_not_exceptions(tmp_path: Path) -> None:
    good = photo_jpeg(make_base(3))
    truncated = _write(tmp_path / "corrupt__truncated_10pct.jpg", good[: len(good) // 10])
    text = _write(tmp_path / "not_an_image__text.jpg", b"hello, not a picture\n")
    missing = tmp_path / "missing__gone.jpg"
    outcomes = hash_batch([HashTask(str(truncated)), HashTask(str(text)), HashTask(str(missing))])
    assert [o.reason for o in outcomes] == ["truncated", "not_an_image", "missing"]
    for outcome in outcomes:
        assert outcome.phash is None and outcome.detail
    assert (outcomes[2].detail or "").startswith("FileNotFoundError")
    declared = load_schema("manifest")["reason_values"]
    assert all(declared[o.reason or ""].startswith("rejected") and "dedup" in declared[o.reason or ""] for o in outcomes)


def test_hash_one_reports_size_and_sha256_on_request(tmp_path: Path) -> None:
    data = photo_jpeg(make_base(4, size=(150, 90)))
    path = _write(tmp_path / "orig__b.jpg", data)
    with_sha = hash_one(HashTask(str(path), need_sha256=True))
    without = hash_one(HashTask(str(path)))
    assert with_sha.sha256 == hashlib.sha256(data).hexdigest() and without.sha256 is None
    assert (with_sha.width, with_sha.height) == (150, 90)
    assert with_sha.phash == without.phash == phash_file(io.BytesIO(data))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
