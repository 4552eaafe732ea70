"""Pixels, in one place: EXIF orientation, upright sizes, RGB conversion, JPEG encoding, magic bytes.

Every module that turns stored bytes into pixels or pixels into stored bytes calls this one:
``images.check`` (orientation and broken EXIF), ``images.fix`` (normalised copies),
``images.phash`` (hashes of upright pixels), ``shards.transform`` (re-encoded shard images) and
``loader.augment`` (the reference decoder). So a transparent PNG has the same pixels after
``verify --fix`` as after ``shard --resize-short``, and a rotated photo is upright everywhere.

One policy, settled here:

* Orientation: EXIF tag 0x0112, 1..8, applied as ``ImageOps.exif_transpose`` does; a missing,
  unreadable or out-of-range tag counts as 1 (upright as stored). :func:`read_orientation` also
  says whether the EXIF block was broken (``verify`` reports that).
* RGB: 16- and 32-bit samples are scaled down over their full range (65535 -> 255; Pillow's
  ``convert`` would clip them); palette transparency and alpha channels are composited onto
  white; every other mode goes through Pillow's ``convert("RGB")``.
* JPEG: :data:`DEFAULT_QUALITY` (90) for every re-encode, baseline, 4:2:0, no EXIF or ICC
  profile carried over (the pixels are upright already).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

JPEG_MAGIC = b"\xff\xd8\xff"
"""The first three bytes of every JPEG file (SOI marker plus the next marker's 0xFF)."""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
"""The eight-byte PNG signature."""

DEFAULT_QUALITY = 90
"""JPEG quality of every image imgnet encodes (fixed copies and resized shard images alike)."""

ORIENTATION_TAG = 0x0112
# EXIF orientation -> PIL Image.Transpose value (FLIP_LEFT_RIGHT=0, FLIP_TOP_BOTTOM=1, ROTATE_90=2,
# ROTATE_180=3, ROTATE_270=4, TRANSPOSE=5, TRANSVERSE=6), the table of ImageOps.exif_transpose; ints
# so that importing this module does not import PIL.
TRANSPOSE = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}
_HIGH_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_ALPHA_MODES = frozenset({"PA", "LA", "La", "RGBa", "RGBA"})
_EXIF_FORMATS = frozenset({"JPEG", "MPO", "TIFF", "WEBP", "PNG"})
_TIFF_HEADERS = (b"II*\x00", b"MM\x00*")


def swaps_axes(orientation: int) -> bool:
    """Whether ``orientation`` turns the image by 90 degrees (5..8): width and height swap."""
    return orientation in (5, 6, 7, 8)


def upright_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """(width, height) of a ``width`` x ``height`` stored image once ``orientation`` is applied."""
    return (height, width) if swaps_axes(orientation) else (width, height)


@dataclass(frozen=True)
class Orientation:
    """What an image's EXIF says of its orientation: ``value`` (1..8) and whether the block is broken."""

    value: int = 1
    broken: bool = False


def read_orientation(img: Image.Image) -> Orientation:
    """The EXIF orientation of an opened image, and whether its EXIF block is malformed.

    Broken means: an EXIF block whose TIFF header is wrong, that does not parse, that makes Pillow
    warn, or whose orientation is outside 1..8. A broken block reads as orientation 1.
    """
    if img.format not in _EXIF_FORMATS:
        return Orientation()
    raw = img.info.get("exif")
    if not raw and img.format != "TIFF":
        return Orientation()  # no EXIF block at all: skip building an Exif object (hot path)
    if raw:
        body = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw
        if body[:4] not in _TIFF_HEADERS:
            return Orientation(broken=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = img.getexif().get(ORIENTATION_TAG, 1)
        except Exception:  # noqa: BLE001 - malformed EXIF raises a zoo of types
            return Orientation(broken=True)
    if caught or not isinstance(value, int) or not 1 <= value <= 8:
        return Orientation(broken=True)
    return Orientation(value)


def exif_orientation(img: Image.Image) -> int:
    """EXIF orientation (1..8) of an opened image; 1 when absent or broken."""
    return read_orientation(img).value


def apply_orientation(img: Image.Image, orientation: int) -> Image.Image:
    """``img`` turned upright per ``orientation`` (a new image, or ``img`` itself for 1)."""
    from PIL import Image

    op = TRANSPOSE.get(orientation)
    return img if op is None else img.transpose(Image.Transpose(op))


def orient_array(arr: np.ndarray, orientation: int) -> np.ndarray:
    """A 2-D (or HxWxC) array turned upright per ``orientation``; equals :func:`apply_orientation`."""
    import numpy as np

    ops = {
        2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1, :],
        5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode, by the one policy (module docstring)."""
    from PIL import Image

    if img.mode in _HIGH_BIT_MODES:
        img = narrow_to_l(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode == "La":
        img = img.convert("LA")
    if img.mode == "L" and "transparency" in img.info:
        img = img.convert("LA")
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB") if img.mode != "RGB" else img


def narrow_to_l(img: Image.Image) -> Image.Image:
    """16/32-bit grayscale -> 8-bit by scaling the full range (``convert("L")`` would clip).

    16-bit modes scale 0..65535 to 0..255; 32-bit integer and float images do too when their
    values exceed 255, else they are taken as 8-bit values already.
    """
    import numpy as np
    from PIL import Image

    arr = np.asarray(img).astype(np.float64)
    top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
    arr = np.clip(arr * (255.0 / top), 0, 255).round().astype(np.uint8)
    return Image.fromarray(arr)


def gray_l(img: Image.Image) -> Image.Image:
    """8-bit grayscale by the same policy as :func:`to_rgb` (alpha onto white, 16-bit narrowed)."""
    if img.mode == "L" and "transparency" not in img.info:
        return img
    if img.mode in _HIGH_BIT_MODES:
        return narrow_to_l(img)
    if img.mode in ("RGB", "1"):
        return img.convert("L")
    return to_rgb(img).convert("L")


@contextlib.contextmanager
def pixel_limit_off() -> Iterator[None]:
    """Switch off Pillow's global decompression-bomb check for one call (callers apply their own)."""
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def upright_rgb(img: Image.Image, orientation: int | None = None) -> Image.Image:
    """Frame 0 of an opened image as upright 8-bit RGB (``orientation``: None reads it from EXIF)."""
    img.seek(0)
    img.load()
    value = exif_orientation(img) if orientation is None else orientation
    return apply_orientation(to_rgb(img), value)


def decode_rgb(data: bytes, orientation: int | None = None) -> Image.Image:
    """Decode image bytes to upright 8-bit RGB (frame 0; ``orientation`` None: from EXIF)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return upright_rgb(img, orientation)


def encode_jpeg(img: Image.Image, quality: int = DEFAULT_QUALITY) -> bytes:
    """Baseline JPEG bytes of an RGB image at ``quality`` (no EXIF, no ICC profile)."""
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality)
    return out.getvalue()
