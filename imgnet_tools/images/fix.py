"""Normalise a fixable image into a plain RGB JPEG: first frame, EXIF orientation applied, 8-bit,
transparency flattened onto white, no EXIF or ICC profile carried over (the pixels are what counts).

Used by ``verify --fix``; the source bytes are only read, never written. The pixel policy is
:mod:`imgnet_tools.images.codec`'s, the same as a re-encoded shard image's.
"""

from __future__ import annotations

import io

from imgnet_tools.images.codec import DEFAULT_QUALITY, encode_jpeg, pixel_limit_off, upright_rgb

__all__ = ["DEFAULT_QUALITY", "normalize_to_jpeg"]


def normalize_to_jpeg(data: bytes, orientation: int = 1, quality: int = DEFAULT_QUALITY) -> bytes:
    """RGB JPEG bytes of the first frame of ``data``, rotated per ``orientation`` (EXIF 1..8)."""
    from PIL import Image

    with pixel_limit_off(), Image.open(io.BytesIO(data)) as im:
        return encode_jpeg(upright_rgb(im, orientation), quality)
