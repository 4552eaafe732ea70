"""Optional transform of one image for its shard: resize, re-encode, or keep the source bytes.

Re-encoding happens only when needed: a JPEG that is small enough and needs no EXIF rotation
keeps its original bytes (copy mode is then a byte copy). Otherwise the image is decoded with
JPEG DCT-domain downscaling (``Image.draft``), which skips most of the decode work for large
photos, resized with pillow-simd's SIMD convolution (``reducing_gap`` lets it box-reduce first),
and saved as a baseline JPEG at ``quality``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

JPEG_MAGIC = b"\xff\xd8\xff"
ORIENTATION_TAG = 0x0112
# EXIF orientation -> PIL Image.Transpose value (FLIP_LEFT_RIGHT=0 ... TRANSVERSE=6), as in
# ImageOps.exif_transpose; ints so that this module imports PIL only when it decodes.
_TRANSPOSE = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}


@dataclass(frozen=True)
class TransformParams:
    """How to store images: ``resize_short`` / ``max_side`` in pixels (None: keep), JPEG ``quality``."""

    resize_short: int | None = None
    max_side: int | None = None
    quality: int = 90


@dataclass(frozen=True)
class Encoded:
    """The stored bytes of one image and their size in pixels."""

    data: bytes
    width: int
    height: int
    reencoded: bool


def target_size(width: int, height: int, params: TransformParams) -> tuple[int, int]:
    """Size after the transform: only ever shrinks, keeps the aspect ratio, rounds to >= 1 pixel."""
    scale = 1.0
    if params.resize_short is not None:
        scale = min(scale, params.resize_short / min(width, height))
    if params.max_side is not None:
        scale = min(scale, params.max_side / max(width, height))
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _orientation(image: "Image.Image") -> int:
    try:
        return int(image.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block is not a reason to drop the image
        return 1


def needs_decode(params: TransformParams) -> bool:
    """False when no resize is asked: JPEG sources are then stored as they are without decoding."""
    return params.resize_short is not None or params.max_side is not None


def encode(data: bytes, params: TransformParams) -> Encoded:
    """Return what to store for an image whose file holds ``data`` (raises on undecodable data).

    ``width``/``height`` are upright (after EXIF orientation), as in the input manifest. Kept
    bytes keep their EXIF orientation; re-encoded images are rotated upright and carry none.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        is_jpeg = data[:3] == JPEG_MAGIC and image.format == "JPEG"
        orientation = _orientation(image)
        rotated = orientation in (5, 6, 7, 8)
        raw_w, raw_h = image.size
        upright = (raw_h, raw_w) if rotated else (raw_w, raw_h)
        width, height = target_size(upright[0], upright[1], params)
        if is_jpeg and (width, height) == upright:
            return Encoded(data, upright[0], upright[1], reencoded=False)
        raw_target = (height, width) if rotated else (width, height)
        if is_jpeg:
            image.draft("RGB", raw_target)  # DCT-domain downscale to the smallest size >= target
        out_image = image.convert("RGB") if image.mode != "RGB" else image
        if out_image.size != raw_target:
            out_image = out_image.resize(raw_target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        if orientation in _TRANSPOSE:
            out_image = out_image.transpose(Image.Transpose(_TRANSPOSE[orientation]))
        out = io.BytesIO()
        out_image.save(out, format="JPEG", quality=params.quality)
        return Encoded(out.getvalue(), out_image.size[0], out_image.size[1], reencoded=True)


def upright_size(data: bytes) -> tuple[int, int]:
    """(width, height) after EXIF orientation, reading the header only (no pixel decode)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        return (height, width) if _orientation(image) in (5, 6, 7, 8) else (width, height)
