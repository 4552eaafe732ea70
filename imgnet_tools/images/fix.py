"""Normalise a fixable image into a plain RGB JPEG: first frame, EXIF orientation applied, 8-bit,
transparency flattened onto white, no EXIF or ICC profile carried over (the pixels are what counts).

Used by ``verify --fix``; the source bytes are only read, never written.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from imgnet_tools.images.check import pixel_limit_off

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

DEFAULT_QUALITY = 95


def normalize_to_jpeg(data: bytes, orientation: int = 1, quality: int = DEFAULT_QUALITY) -> bytes:
    """RGB JPEG bytes of the first frame of ``data``, rotated per ``orientation`` (EXIF 1..8)."""
    from PIL import Image

    with pixel_limit_off(), Image.open(io.BytesIO(data)) as im:
        im.seek(0)
        im.load()
        rgb = _to_rgb(im)
    rgb = _apply_orientation(rgb, orientation)
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode; alpha is composited onto white."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        im = _narrow_to_l(im)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("PA", "LA", "La", "RGBa", "RGBA"):
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im.convert("RGB") if im.mode != "RGB" else im


def _narrow_to_l(im: Image.Image) -> Image.Image:
    """16/32-bit grayscale -> 8-bit by scaling the full range (Pillow's convert() would clip)."""
    import numpy as np
    from PIL import Image

    arr = np.asarray(im).astype(np.float64)
    top = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
    arr = np.clip(arr * (255.0 / top), 0, 255).round().astype(np.uint8)
    return Image.fromarray(arr)


def _apply_orientation(im: Image.Image, orientation: int) -> Image.Image:
    """Apply an EXIF orientation (same table as ``ImageOps.exif_transpose``) without reading EXIF again."""
    from PIL import Image

    ops = {
        2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180],
        4: [Image.Transpose.FLIP_TOP_BOTTOM], 5: [Image.Transpose.TRANSPOSE],
        6: [Image.Transpose.ROTATE_270], 7: [Image.Transpose.TRANSVERSE], 8: [Image.Transpose.ROTATE_90],
    }
    for op in ops.get(orientation, []):
        im = im.transpose(op)
    return im
