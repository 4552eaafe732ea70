"""64-bit DCT perceptual hash (pHash) of one image, fast enough to run over ImageNet.

What: the image is reduced to a 32x32 grayscale thumbnail, a 2-D DCT-II is taken, the 8x8
lowest-frequency coefficients are kept, and each of the 64 bits says whether its coefficient is
above the median of the 63 non-DC coefficients (the same construction as imagededup's ``PHash``).
Near-identical images (resized, recompressed, slightly cropped) get hashes a few bits apart;
distinct images land about 32 bits apart.

Why it is fast: JPEGs are decoded with ``Image.draft("L", ...)``, which lets libjpeg scale by
1/2, 1/4 or 1/8 in the DCT domain and skip colour conversion, so a 500x375 photo is decoded at
63x47; the 32x32 area-average and the DCT are folded into two precomputed matrices per input size
(``P_h @ image @ P_w.T``), so no thumbnail is materialised. What remains is libjpeg's entropy
decoding (about 85% of the time per image). Per-image problems are returned as a manifest reason
code by :func:`hash_one`, never raised, so a batch always completes.

Bit layout: bit 63 (the sign bit of the stored ``int64``) is coefficient (0, 0); coefficients
follow in row-major order. Hashes are stored as signed ``int64`` (Parquet has no ``uint64`` in
the manifest schema); :func:`to_unsigned` gives the ``uint64`` view used for Hamming distances.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from imgnet_tools.images.codec import exif_orientation, gray_l, orient_array, swaps_axes

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

THUMB = 32  # thumbnail side the DCT is taken over
HASH_SIDE = 8  # 8x8 low-frequency coefficients -> 64 bits
REDUCE_TO = 64  # images whose short side is >= 2x this are box-reduced first


@functools.cache
def _dct_basis() -> np.ndarray:
    """Rows 0..7 of the orthonormal 32-point DCT-II matrix (8x32, float32)."""
    import numpy as np

    n = np.arange(THUMB)
    k = np.arange(HASH_SIDE)[:, None]
    basis = np.cos(np.pi * (2 * n + 1) * k / (2 * THUMB)) * np.sqrt(2.0 / THUMB)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


@functools.lru_cache(maxsize=4096)
def _projection(src: int) -> np.ndarray:
    """8 x ``src`` matrix: area-average ``src`` pixels down to 32, then the 8 lowest DCT rows.

    ``P_h @ image @ P_w.T`` is the 8x8 DCT of the 32x32 area-averaged thumbnail, computed in one
    pass over the (draft-decoded, hence small) image without materialising the thumbnail.
    """
    import numpy as np

    return (_dct_basis() @ _projection_area(src)).astype(np.float32)


def hash_gray(gray: np.ndarray) -> int:
    """pHash of a 2-D grayscale array of any size, as a signed 64-bit int."""
    import numpy as np

    h, w = gray.shape
    coeffs = (_projection(h) @ gray.astype(np.float32, copy=False) @ _projection(w).T).ravel()
    ac = coeffs[1:].copy()
    ac.partition(31)  # 63 AC coefficients: the median is the 32nd smallest
    bits = coeffs > ac[31]
    return int.from_bytes(np.packbits(bits).tobytes(), "big", signed=True)


def hash_pixels(gray: np.ndarray) -> int:
    """pHash of a 32x32 grayscale thumbnail (the textbook definition; equals :func:`hash_gray`)."""
    return hash_gray(gray)


def gray_array(img: Image.Image) -> np.ndarray:
    """Small upright float32 grayscale array of an opened image, at least 32 px a side when it can.

    JPEGs are decoded at 1/2..1/8 scale in the DCT domain (``draft``); anything still larger than
    about twice :data:`REDUCE_TO` is box-reduced in C before conversion, so a 4000x3000 PNG costs
    little more than its decode. Grayscale follows the codec's policy (alpha onto white, 16-bit
    scaled over its full range), so an image and its ``verify --fix`` copy hash alike.
    """
    import numpy as np

    orientation = exif_orientation(img)
    if img.format in ("JPEG", "MPO"):
        img.draft("L", (THUMB, THUMB))
    factor = min(img.size) // REDUCE_TO
    if factor >= 2 and img.mode in ("L", "RGB", "RGBA", "LA"):
        img = img.reduce(factor)
    return orient_array(np.asarray(gray_l(img), dtype=np.float32), orientation)


def thumbnail(img: Image.Image) -> np.ndarray:
    """32x32 float32 grayscale thumbnail (area-averaged) of an opened image, for inspection."""
    import numpy as np

    gray = gray_array(img)
    h, w = gray.shape
    area_h = _projection_area(h)
    area_w = _projection_area(w)
    return (area_h @ gray @ area_w.T).astype(np.float32)


@functools.lru_cache(maxsize=4096)
def _projection_area(src: int) -> np.ndarray:
    """32 x ``src`` area-averaging matrix: output pixel i is the mean of source span i/32..(i+1)/32."""
    import numpy as np

    edges = np.linspace(0.0, float(src), THUMB + 1)
    j = np.arange(src, dtype=np.float64)
    overlap = np.minimum(edges[1:, None], j + 1) - np.maximum(edges[:-1, None], j)
    return (np.clip(overlap, 0.0, None) / (src / THUMB)).astype(np.float32)


def hash_image(img: Image.Image) -> int:
    """pHash of an opened image (first frame)."""
    return hash_gray(gray_array(img))


def phash_file(path: str | os.PathLike[str] | BinaryIO) -> int:
    """pHash of the image file at ``path`` (first frame). Raises on an unreadable file."""
    from PIL import Image

    with Image.open(path) as img:
        return hash_image(img)


def to_unsigned(values: np.ndarray) -> np.ndarray:
    """The ``uint64`` bit pattern of stored signed hashes (no copy)."""
    import numpy as np

    return np.asarray(values, dtype=np.int64).view(np.uint64)


@dataclass(frozen=True)
class HashTask:
    """One file to hash; ``need_sha256`` when the manifest lacks the content hash."""

    path: str
    need_sha256: bool = False


@dataclass(frozen=True)
class HashOutcome:
    """Result for one file: ``phash`` and header size, or ``reason`` when it could not be hashed."""

    phash: int | None
    width: int | None
    height: int | None
    sha256: str | None
    reason: str | None
    detail: str | None = None


def hash_one(task: HashTask) -> HashOutcome:
    """Hash one file; every failure becomes a ``reason`` (per-image problems are rows)."""
    from PIL import Image

    try:
        sha = None
        if task.need_sha256:
            with open(task.path, "rb") as fh:
                sha = hashlib.file_digest(fh, "sha256").hexdigest()
        with Image.open(task.path) as img:
            width, height = img.size
            if swaps_axes(exif_orientation(img)):  # rotated by 90 degrees: report upright size
                width, height = height, width
            value = hash_image(img)
        return HashOutcome(value, width, height, sha, None)
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files; each is a row's reason
        return HashOutcome(None, None, None, None, failure_reason(exc), f"{type(exc).__name__}: {exc}"[:300])


def hash_one_timed(task: HashTask, timeout: float | None) -> HashOutcome:
    """:func:`hash_one` within a time limit; a header size the manifest cannot hold is ``bad_header``.

    Never raises for a bad file, whatever goes wrong (an unexpected error is ``internal_error``).
    """
    from imgnet_tools.execute.limits import TimeLimitExceeded, time_limit

    try:
        with time_limit(timeout):
            out = hash_one(task)
    except TimeLimitExceeded:
        return HashOutcome(None, None, None, None, "timeout", f"hashing took longer than {timeout:g} s")
    except Exception as exc:  # noqa: BLE001 - one file's bug is one row
        return HashOutcome(None, None, None, None, "internal_error", f"{type(exc).__name__}: {exc}"[:300])
    for side in (out.width, out.height):
        if side is not None and not 0 <= side <= 2**31 - 1:
            return HashOutcome(None, None, None, None, "bad_header", f"header size {out.width}x{out.height}")
    return out


def failure_reason(exc: BaseException) -> str:
    """The manifest reason code (schemas/manifest.schema.json ``reason_values``) for a failed hash."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, FileNotFoundError):
        return "missing"
    if isinstance(exc, UnidentifiedImageError):
        return "not_an_image"
    if isinstance(exc, OSError) and exc.errno is not None:
        return "unreadable"  # a file-system error (permissions, I/O), not bad image data
    return "truncated" if "truncated" in str(exc).lower() else "corrupt"


def hash_batch(tasks: Sequence[HashTask]) -> list[HashOutcome]:
    """Hash a batch of files in order (the unit of work sent to a worker process)."""
    return [hash_one(t) for t in tasks]
