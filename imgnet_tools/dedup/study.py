"""Seeded near-duplicate images and the threshold study that chose the default Hamming threshold.

What: :func:`make_base` draws a distinct photo-like image (a 1/f colour noise field, the power
spectrum of natural images, with a few random shapes on top); :data:`VARIANTS` derives near
duplicates from it the way they occur in scraped datasets (resized, recompressed, slightly
cropped, combinations). :func:`threshold_study` hashes a generated set with
:mod:`imgnet_tools.images.phash` and reports precision and recall of "distance <= t" for every t.

Why here: the default threshold of ``imgnet dedup`` (:data:`imgnet_tools.dedup.run.DEFAULT_THRESHOLD`)
is a measured choice; the tests and ``benchmarks/dedup_threshold_study.py`` re-run the same study
from the same seeds, so the figures in the docs can be reproduced and are held by a test.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image


def make_base(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A distinct, photo-like RGB image determined by ``seed`` (1/f noise plus shapes)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    w, h = size
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    amp = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / max(w, h)) ** 1.1
    channels = []
    for _ in range(3):
        spec = amp * np.exp(2j * np.pi * rng.random(amp.shape)) * rng.standard_normal(amp.shape)
        field = np.fft.irfft2(spec, s=(h, w))
        field = (field - field.mean()) / (field.std() + 1e-9)
        channels.append(field)
    mix = rng.normal(size=(3, 3)) * 0.5 + np.eye(3)
    rgb = np.tensordot(mix, np.stack(channels), axes=1)
    rgb = 128 + 40 * rgb / (np.abs(rgb).max() / 3 + 1e-9)
    img = Image.fromarray(np.clip(rgb.transpose(1, 2, 0), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        x1, y1 = x0 + int(rng.integers(15, w // 2)), y0 + int(rng.integers(15, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    return img


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    """``img`` encoded as a baseline JPEG."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _resize(scale: float) -> Callable[[Image.Image], Image.Image]:
    def apply(img: Image.Image) -> Image.Image:
        from PIL import Image

        return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)

    return apply


def _crop(left: float, top: float, right: float, bottom: float) -> Callable[[Image.Image], Image.Image]:
    def apply(img: Image.Image) -> Image.Image:
        w, h = img.size
        return img.crop((round(w * left), round(h * top), w - round(w * right), h - round(h * bottom)))

    return apply


@dataclass(frozen=True)
class Variant:
    """A near-duplicate transform: ``name`` (used in file names), the transform, the JPEG quality."""

    name: str
    transform: Callable[[Image.Image], Image.Image]
    quality: int = 90


VARIANTS: tuple[Variant, ...] = (
    Variant("resize50", _resize(0.5)),
    Variant("resize150", _resize(1.5)),
    Variant("recompress_q40", lambda im: im, quality=40),
    Variant("crop3pct_center", _crop(0.015, 0.015, 0.015, 0.015)),
    Variant("crop5pct_corner", _crop(0.05, 0.05, 0.0, 0.0)),
    Variant("resize70_q60_crop2pct", lambda im: _crop(0.02, 0.0, 0.0, 0.02)(_resize(0.7)(im)), quality=60),
)


def write_study_set(out: Path, n_bases: int, seed: int = 0) -> list[tuple[Path, int, str]]:
    """Write ``n_bases`` distinct JPEGs and every variant of each; return (path, base, variant)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for b in range(n_bases):
        base = make_base(seed * 100_003 + b)
        path = out / f"base{b:05d}__original.jpg"
        path.write_bytes(jpeg_bytes(base))
        rows.append((path, b, "original"))
        for v in VARIANTS:
            vpath = out / f"base{b:05d}__dup__{v.name}.jpg"
            vpath.write_bytes(jpeg_bytes(v.transform(base), v.quality))
            rows.append((vpath, b, v.name))
    return rows


@dataclass(frozen=True)
class ThresholdRow:
    """Precision and recall of "Hamming distance <= threshold" over all pairs of a study set."""

    threshold: int
    true_pairs_found: int
    true_pairs: int
    false_pairs_found: int
    distinct_pairs: int

    @property
    def recall(self) -> float:
        return self.true_pairs_found / self.true_pairs if self.true_pairs else float("nan")

    @property
    def precision(self) -> float:
        found = self.true_pairs_found + self.false_pairs_found
        return self.true_pairs_found / found if found else 1.0


def threshold_study(hashes: np.ndarray, groups: np.ndarray, max_threshold: int = 16) -> list[ThresholdRow]:
    """Precision/recall per threshold over every pair of ``hashes`` (``groups``: same base, same id).

    All pairs are compared here on purpose: the study sets are small and the answer must not
    depend on the search index it is meant to tune.
    """
    import numpy as np

    h = np.asarray(hashes, dtype=np.int64).view(np.uint64)
    g = np.asarray(groups)
    i, j = np.triu_indices(len(h), k=1)
    dist = np.bitwise_count(h[i] ^ h[j])
    same = g[i] == g[j]
    rows = []
    for t in range(max_threshold + 1):
        hit = dist <= t
        rows.append(ThresholdRow(t, int((hit & same).sum()), int(same.sum()), int((hit & ~same).sum()), int((~same).sum())))
    return rows


def recall_by_variant(hashes: np.ndarray, groups: np.ndarray, variants: list[str], threshold: int) -> dict[str, float]:
    """Share of each variant kind whose distance to its original is <= ``threshold``."""
    import numpy as np

    h = np.asarray(hashes, dtype=np.int64).view(np.uint64)
    g = np.asarray(groups)
    names = np.asarray(variants)
    originals = {int(g[k]): h[k] for k in np.flatnonzero(names == "original")}
    out = {}
    for name in sorted(set(variants) - {"original"}):
        idx = np.flatnonzero(names == name)
        dist = np.array([int(np.bitwise_count(h[k] ^ originals[int(g[k])])) for k in idx])
        out[name] = float((dist <= threshold).mean()) if len(dist) else float("nan")
    return out
