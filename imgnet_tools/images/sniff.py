"""Real image format from the first bytes of a file, and the format its name claims.

By content, never by name: :func:`sniff_format` looks only at magic bytes. :func:`claimed_format`
reads the extension, so that a mismatch (PNG data named ``.JPEG``) can be reported.
"""

from __future__ import annotations

import os

from imgnet_tools.images.codec import JPEG_MAGIC, PNG_MAGIC

# Formats this imgnet decodes (Pillow plugins of the same names).
DECODABLE = frozenset({"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"})

# Image formats recognised by their magic bytes but not decoded here (reason: unsupported_format).
KNOWN_UNSUPPORTED = frozenset({"JPEG2000", "HEIF", "AVIF", "PSD", "ICO", "JPEGXL"})

HEAD_BYTES = 32
"""How many leading bytes :func:`sniff_format` needs."""

_EXTENSIONS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG",
    ".png": "PNG", ".gif": "GIF", ".webp": "WEBP", ".bmp": "BMP", ".dib": "BMP",
    ".tif": "TIFF", ".tiff": "TIFF", ".jp2": "JPEG2000", ".j2k": "JPEG2000",
    ".heic": "HEIF", ".heif": "HEIF", ".avif": "AVIF", ".psd": "PSD", ".ico": "ICO", ".jxl": "JPEGXL",
}


def sniff_format(head: bytes) -> str | None:
    """Format named by the magic bytes at the start of ``head`` (None when not an image we know)."""
    if head.startswith(JPEG_MAGIC):
        return "JPEG"
    if head.startswith(PNG_MAGIC):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM" and len(head) >= 18:
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return _sniff_unsupported(head)


def _sniff_unsupported(head: bytes) -> str | None:
    """Image formats we recognise only to name them in the reason."""
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "JPEG2000"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1"):
            return "HEIF"
    if head.startswith(b"8BPS"):
        return "PSD"
    if head.startswith(b"\x00\x00\x01\x00") and len(head) > 6 and head[4] != 0:
        return "ICO"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "JPEGXL"
    return None


def claimed_format(name: str) -> str | None:
    """Format that the file name's extension claims (case-insensitive), or None for other names."""
    return _EXTENSIONS.get(os.path.splitext(name)[1].lower())
