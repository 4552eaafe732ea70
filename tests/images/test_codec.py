"""One pixel policy (images/codec.py): verify --fix and shard re-encoding give the same pixels.

Sources are PNGs (which every path re-encodes), so the two JPEGs can be compared byte for byte;
orientation cases start from an asymmetric upright picture, store it turned the other way with the
EXIF tag that undoes it, and check that every path gives the upright picture back.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imgnet_tools.images import codec
from imgnet_tools.images.check import Policy, check_image
from imgnet_tools.images.fix import normalize_to_jpeg
from imgnet_tools.images.phash import gray_array
from imgnet_tools.loader.augment import decode_rgb
from imgnet_tools.shards.transform import TransformParams, encode


def _png(img: Image.Image, **save: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **save)
    return buf.getvalue()


def _upright() -> Image.Image:
    """48x32 RGB, a different colour in each quadrant, so any wrong turn or flip shows."""
    arr = np.zeros((32, 48, 3), dtype=np.uint8)
    arr[:16, :24] = (250, 10, 10)
    arr[:16, 24:] = (10, 250, 10)
    arr[16:, :24] = (10, 10, 250)
    arr[16:, 24:] = (250, 250, 10)
    return Image.fromarray(arr)


# The stored picture for orientation o is the upright one with o's inverse applied.
_INVERSE = {1: None, 2: 0, 3: 3, 4: 1, 5: 5, 6: 2, 7: 6, 8: 4}


def _stored_for(orientation: int) -> bytes:
    img = _upright()
    op = _INVERSE[orientation]
    if op is not None:
        img = img.transpose(Image.Transpose(op))
    exif = Image.Exif()
    exif[codec.ORIENTATION_TAG] = orientation
    return _png(img, exif=exif.tobytes())


def _rgba() -> bytes:
    arr = np.zeros((24, 24, 4), dtype=np.uint8)
    arr[..., 0] = np.arange(24, dtype=np.uint8)[None, :] * 10
    arr[..., 3] = np.arange(24, dtype=np.uint8)[:, None] * 11  # top row fully transparent
    return _png(Image.fromarray(arr, "RGBA"))


def _la() -> bytes:
    arr = np.zeros((24, 24, 2), dtype=np.uint8)
    arr[..., 0] = 40
    arr[..., 1] = np.arange(24, dtype=np.uint8)[:, None] * 11
    return _png(Image.fromarray(arr, "LA"))


def _palette_transparency() -> bytes:
    img = Image.new("P", (24, 24), 0)
    img.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    img.paste(1, (0, 12, 24, 24))
    return _png(img, transparency=0)


def _sixteen_bit() -> bytes:
    arr = (np.arange(24 * 24, dtype=np.uint32).reshape(24, 24) * 113).astype(np.uint16)
    return _png(Image.fromarray(arr))


SOURCES = {"rgba": _rgba, "la": _la, "p_transparency": _palette_transparency, "sixteen_bit": _sixteen_bit,
           **{f"orientation_{o}": (lambda o=o: _stored_for(o)) for o in range(1, 9)}}


def _fix(data: bytes) -> bytes:
    found = check_image(data, "x.png", Policy(min_size=1))
    assert found.status(Policy(min_size=1)) == "fixable", found.issues
    return normalize_to_jpeg(data, found.orientation)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_fix_and_shard_reencoding_give_the_same_bytes(name: str) -> None:
    data = SOURCES[name]()
    fixed = _fix(data)
    sharded = encode(data, TransformParams())
    assert sharded.reencoded
    assert fixed == sharded.data, "verify --fix and shard re-encode must write identical JPEGs"
    assert fixed[:3] == codec.JPEG_MAGIC


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_path_turns_the_picture_upright(orientation: int) -> None:
    data = _stored_for(orientation)
    want = np.asarray(_upright(), dtype=np.int16)
    for got in (decode_rgb(_fix(data)), decode_rgb(encode(data, TransformParams()).data), decode_rgb(data)):
        arr = np.asarray(got, dtype=np.int16)
        assert arr.shape == want.shape
        # quadrant centres well inside each colour block: JPEG error there is a few levels
        for y, x in ((8, 12), (8, 36), (24, 12), (24, 36)):
            assert np.abs(arr[y, x] - want[y, x]).max() < 24, (orientation, y, x)
    size = encode(data, TransformParams(resize_short=16)).width, encode(data, TransformParams(resize_short=16)).height
    assert size == (24, 16), "a resized copy keeps the upright aspect"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_array_orientation_equals_the_pil_one(orientation: int) -> None:
    img = Image.fromarray(np.arange(35, dtype=np.uint8).reshape(5, 7))
    want = np.asarray(codec.apply_orientation(img, orientation))
    assert np.array_equal(codec.orient_array(np.asarray(img), orientation), want)
    assert codec.upright_size(7, 5, orientation) == (want.shape[1], want.shape[0])


def test_alpha_goes_onto_white_and_sixteen_bit_is_scaled_not_clipped() -> None:
    rgb = decode_rgb(_rgba())
    assert np.asarray(rgb)[0].min() >= 250, "fully transparent pixels are white"
    gray = decode_rgb(_sixteen_bit())
    values = np.asarray(gray)[..., 0]
    assert values.max() > 200 and len(np.unique(values)) > 100, "16-bit range scaled down, not clipped at 255"


def test_phash_sees_the_same_gray_pixels_as_the_fixed_copy() -> None:
    for make in (_rgba, _palette_transparency, _sixteen_bit):
        data = make()
        with Image.open(io.BytesIO(data)) as src, Image.open(io.BytesIO(_fix(data))) as fixed:
            a, b = gray_array(src), gray_array(fixed)
        assert a.shape == b.shape
        assert np.abs(a - b).mean() < 3.0


def test_broken_exif_reads_as_upright_and_is_reported() -> None:
    img = _upright()
    bad = _png(img, exif=b"Exif\x00\x00GARBAGE-NOT-TIFF")
    with Image.open(io.BytesIO(bad)) as opened:
        assert codec.read_orientation(opened) == codec.Orientation(1, broken=True)
    assert "broken_exif" in check_image(bad, "x.png", Policy(min_size=1)).issues
