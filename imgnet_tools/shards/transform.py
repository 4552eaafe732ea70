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

from imgnet_tools.images.codec import (
    DEFAULT_QUALITY,
    JPEG_MAGIC,
    apply_orientation,
    encode_jpeg,
    exif_orientation,
    to_rgb,
    upright_size as oriented_size,
)

__all__ = ["JPEG_MAGIC", "Encoded", "TransformParams", "encode", "needs_decode", "target_size", "upright_size"]

@dataclass(frozen=True)
class TransformParams:
    """How to store images: ``resize_short`` / ``max_side`` in pixels (None: keep), JPEG ``quality``."""

    resize_short: int | None = None
    max_side: int | None = None
    quality: int = DEFAULT_QUALITY


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
        orientation = exif_orientation(image)
        upright = oriented_size(*image.size, orientation)
        width, height = target_size(upright[0], upright[1], params)
        if is_jpeg and (width, height) == upright:
            return Encoded(data, upright[0], upright[1], reencoded=False)
        raw_target = oriented_size(width, height, orientation)  # the target, as stored (before turning)
        if is_jpeg:
            image.draft("RGB", raw_target)  # DCT-domain downscale to the smallest size >= target
        image.seek(0)
        image.load()
        out_image = to_rgb(image)
        if out_image.size != raw_target:
            out_image = out_image.resize(raw_target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        out_image = apply_orientation(out_image, orientation)
        return Encoded(encode_jpeg(out_image, params.quality), out_image.size[0], out_image.size[1], reencoded=True)


def upright_size(data: bytes) -> tuple[int, int]:
    """(width, height) after EXIF orientation, reading the header only (no pixel decode)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return oriented_size(*image.size, exif_orientation(image))
