"""Judge one image by its content: full decode, real format, colour mode, EXIF, frames, size, bomb.

:func:`check_image` never raises for a bad image: every problem becomes a reason string from a small
fixed vocabulary (declared with its meaning in ``schemas/manifest.schema.json``). Reasons are either
*rejected* (the image cannot be used) or *fixable* (``verify --fix`` can write a normalised RGB JPEG).
The row's ``reason`` is the first found in :data:`REASON_ORDER`; ``issues`` lists them all.

Why a full ``load()`` and not ``Image.verify()``: verify() only walks chunk headers, so a JPEG cut in
the middle of its entropy-coded data passes it. Pillow's ``LOAD_TRUNCATED_IMAGES`` stays False, so a
short file raises here and is reported as ``truncated``.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imgnet_tools.images.codec import PNG_MAGIC, pixel_limit_off, read_orientation, upright_size
from imgnet_tools.images.jpegwalk import header_problem
from imgnet_tools.images.sniff import DECODABLE, claimed_format, sniff_format

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

# Rejected by ``imgnet collect`` because the fetch failed or was refused (no file was stored).
# Collect also uses unknown_class, empty, not_an_image, too_large, truncated and bomb below.
COLLECT_REASONS = (
    "bad_url", "private_host", "dns", "connection", "tls", "timeout", "too_many_redirects", "redirect_loop",
    "bad_redirect", "http_404", "http_429", "http_4xx", "http_5xx", "http_other", "opted_out",
)
# Rejected by the crowd (``imgnet votes apply``), never by a check here; listed so that the
# vocabulary stays one list (a test holds it equal to the schema's reason_values).
VOTE_REASONS = ("votes_no", "no_consensus", "votes_pending")
# Rejected: the image cannot be used. Scan-time reasons first (set before any decode).
REJECT_REASONS = (
    "missing", "unreadable", "symlink_loop", "symlink_outside", "not_a_file", "non_utf8_name", "unknown_class",
    *COLLECT_REASONS, "empty", "not_an_image", "unsupported_format", "bad_header", "bomb", "truncated", "corrupt",
    "too_small", "too_large", "bad_aspect", "crashed_decoder", "internal_error", *VOTE_REASONS,  # timeout: in COLLECT_REASONS
)

# Fixable: a normalised copy (RGB JPEG, orientation applied, first frame) is usable.
FIXABLE_REASONS = (
    "format_mismatch", "cmyk", "colour_space", "high_bit_depth", "palette", "alpha", "grayscale", "animated",
    "broken_exif", "exif_rotated", "malformed_jpeg", "not_jpeg",
)
REASON_ORDER = REJECT_REASONS + FIXABLE_REASONS

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own MAX_IMAGE_PIXELS default


@dataclass(frozen=True)
class Policy:
    """What verify accepts. ``reject`` moves fixable reasons to rejected (e.g. ``("cmyk",)``)."""

    min_size: int = 32
    max_size: int = 0
    max_aspect: float = 10.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    allow_grayscale: bool = False
    reject: tuple[str, ...] = ()

    def describe(self) -> str:
        """Canonical one-line form, stored per row so that a policy change triggers a re-check."""
        return (f"min_size={self.min_size};max_size={self.max_size};max_aspect={self.max_aspect:g};"
                f"max_pixels={self.max_pixels};allow_grayscale={int(self.allow_grayscale)};"
                f"reject={','.join(sorted(self.reject))}")


@dataclass
class Check:
    """What :func:`check_image` found. ``width``/``height`` are after EXIF orientation."""

    format: str | None = None
    mode: str | None = None
    width: int | None = None
    height: int | None = None
    orientation: int = 1
    issues: list[str] = field(default_factory=list)

    def status(self, policy: Policy) -> str:
        """``ok``, ``fixable`` or ``rejected`` under ``policy``."""
        if any(r in REJECT_REASONS or r in policy.reject for r in self.issues):
            return "rejected"
        return "fixable" if self.issues else "ok"

    def reason(self, policy: Policy) -> str | None:
        """The one reason reported in the manifest (rejections before fixables; None when ok)."""
        ordered = sorted(self.issues, key=REASON_ORDER.index)
        rejecting = [r for r in ordered if r in REJECT_REASONS or r in policy.reject]
        chosen = rejecting or ordered
        return chosen[0] if chosen else None


def check_image(data: bytes, name: str, policy: Policy) -> Check:
    """Decode ``data`` (the whole file) fully and collect every reason it is not a plain RGB JPEG.

    ``name`` is only used to compare the extension's claim with the real format.
    """
    found = Check()
    if not data:
        found.issues.append("empty")
        return found
    found.format = sniff_format(data[:32])
    if found.format is None:
        found.issues.append("not_an_image")
        return found
    if found.format not in DECODABLE:
        found.issues.append("unsupported_format")
        return found
    claimed = claimed_format(name)
    if claimed is not None and claimed != found.format:
        found.issues.append("format_mismatch")
    elif found.format != "JPEG":
        found.issues.append("not_jpeg")
    _decode_into(found, data, policy)
    if found.format == "JPEG" and found.mode is not None and header_problem(data):
        found.issues.append("malformed_jpeg")  # PIL read it; DALI would refuse it
    return found


def _decode_into(found: Check, data: bytes, policy: Policy) -> None:
    """Open, apply the bomb limit from the header, fully load frame 0, then inspect the pixels' mode."""
    from PIL import Image

    if found.format is None:  # pragma: no cover - the caller sniffed a format
        return
    with pixel_limit_off(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            im = Image.open(io.BytesIO(data), formats=[found.format])
        except Exception:  # noqa: BLE001 - Pillow raises many types for a bad header; all mean the same here
            found.issues.append("corrupt")
            return
        with im:
            width, height = im.size
            if width * height > policy.max_pixels:
                found.issues.append("bomb")
                found.width, found.height = width, height
                return
            try:
                im.load()
            except Exception as exc:  # noqa: BLE001 - every decoder failure is a row, not a crash
                found.issues.append(_decode_failure(exc))
                return
            found.mode = im.mode
            _inspect_mode(found, im, data, policy)
            try:
                _inspect_frames(found, im)
            except Exception:  # noqa: BLE001 - a later frame that cannot even be parsed
                found.issues.append("corrupt")
                return
            _inspect_exif(found, im)
    _inspect_size(found, width, height, policy)


def _decode_failure(exc: BaseException) -> str:
    """``truncated`` when the data ended early, otherwise ``corrupt``."""
    text = str(exc).lower()
    if isinstance(exc, EOFError) or "truncated" in text or "premature end" in text:
        return "truncated"
    return "corrupt"


def _inspect_mode(found: Check, im: Image.Image, data: bytes, policy: Policy) -> None:
    """Colour-mode reasons: CMYK, 16-bit, palette, alpha, grayscale."""
    mode = im.mode
    if mode == "CMYK":
        found.issues.append("cmyk")
    elif mode in ("YCbCr", "LAB", "HSV"):
        found.issues.append("colour_space")
    if mode.startswith("I") or mode == "F" or _png_bit_depth(data) == 16:
        found.issues.append("high_bit_depth")
    if mode in ("P", "PA"):
        found.issues.append("palette")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        found.issues.append("alpha")
    gray = mode in ("L", "LA", "La", "1") or mode.startswith("I") or mode == "F"
    if gray and not (policy.allow_grayscale and mode == "L"):
        found.issues.append("grayscale")


def _png_bit_depth(data: bytes) -> int:
    """Bit depth from a PNG's IHDR (Pillow silently narrows 16-bit RGB PNGs to 8-bit RGB)."""
    if data[:8] == PNG_MAGIC and data[12:16] == b"IHDR" and len(data) > 24:
        return data[24]
    return 0


def _inspect_frames(found: Check, im: Image.Image) -> None:
    """Animated GIF/WEBP/PNG or multi-page TIFF. An MPO's extra pictures are not animation."""
    if im.format != "MPO" and getattr(im, "n_frames", 1) > 1:
        found.issues.append("animated")


def _inspect_exif(found: Check, im: Image.Image) -> None:
    """Orientation other than 1 -> ``exif_rotated``; EXIF that does not parse -> ``broken_exif``."""
    orientation = read_orientation(im)
    if orientation.broken:
        found.issues.append("broken_exif")
        return
    found.orientation = orientation.value
    if orientation.value != 1:
        found.issues.append("exif_rotated")


def _inspect_size(found: Check, width: int, height: int, policy: Policy) -> None:
    """Dimensions after orientation, then the min/max side and aspect-ratio policy."""
    width, height = upright_size(width, height, found.orientation)
    found.width, found.height = width, height
    short, long = min(width, height), max(width, height)
    if short < policy.min_size:
        found.issues.append("too_small")
    if policy.max_size and long > policy.max_size:
        found.issues.append("too_large")
    if short and policy.max_aspect and long / short > policy.max_aspect:
        found.issues.append("bad_aspect")
    elif not short:
        found.issues.append("corrupt")
