"""Figures drawn with PIL ImageDraw: horizontal bar charts and duplicate-cluster thumbnail strips.

Why PIL: pillow-simd is already the project's only imaging library; matplotlib would pull the
``pillow`` wheel in over it. The charts are simple on purpose: one series or a few stacked ones,
labels on the left, values at the bar ends, a legend when there is more than one series.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image, ImageFont

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")
INK, GRID, BG = "#222222", "#dddddd", "#ffffff"
WIDTH = 900


@functools.lru_cache(maxsize=8)
def font(size: int) -> "ImageFont.FreeTypeFont | ImageFont.ImageFont":
    """PIL's built-in scalable font (no font files needed on the machine)."""
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _text_width(text: str, size: int) -> int:
    left, _, right, _ = font(size).getbbox(text)
    return int(right - left)


def _fmt(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"


@dataclass(frozen=True)
class Series:
    """One named series of a bar chart (values align with the chart's labels)."""

    name: str
    values: Sequence[float]


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series], unit: str = "") -> "Image.Image":
    """Horizontal bars, one row per label; several series are stacked left to right."""
    from PIL import Image, ImageDraw

    row, top, pad = 26, 56 if len(series) > 1 else 40, 12
    label_w = min(360, max([_text_width(str(lb), 14) for lb in labels] + [40]) + 16)
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    peak = max(totals + [1e-9])
    value_w = max([_text_width(_fmt(t) + unit, 13) for t in totals] + [30]) + 12
    plot_w = WIDTH - label_w - value_w - 2 * pad
    img = Image.new("RGB", (WIDTH, top + row * max(len(labels), 1) + pad), BG)
    draw = ImageDraw.Draw(img)
    draw.text((pad, 8), title, fill=INK, font=font(18))
    if len(series) > 1:
        x = pad
        for k, s in enumerate(series):
            draw.rectangle((x, 34, x + 12, 46), fill=PALETTE[k % len(PALETTE)])
            draw.text((x + 16, 32), s.name, fill=INK, font=font(13))
            x += 16 + _text_width(s.name, 13) + 18
    x0 = pad + label_w
    for frac in (0.25, 0.5, 0.75, 1.0):
        gx = x0 + int(plot_w * frac)
        draw.line((gx, top - 4, gx, img.height - pad), fill=GRID)
    for i, label in enumerate(labels):
        y = top + i * row
        draw.text((pad, y + 4), str(label), fill=INK, font=font(14))
        x = x0
        for k, s in enumerate(series):
            w = int(round(plot_w * s.values[i] / peak))
            if w > 0:
                draw.rectangle((x, y + 3, x + w, y + row - 5), fill=PALETTE[k % len(PALETTE)])
            x += w
        draw.text((x + 6, y + 5), _fmt(totals[i]) + unit, fill=INK, font=font(13))
    return img


@dataclass(frozen=True)
class Thumb:
    """One image of a duplicate cluster: where it is, its caption, and whether it is the keeper."""

    path: Path
    split: str
    kept: bool


def _tail(text: str, width: int, size: int) -> str:
    """``text`` cut from the left until it fits ``width`` pixels (file names differ at the end)."""
    if _text_width(text, size) <= width:
        return text
    while len(text) > 1 and _text_width("…" + text, size) > width:
        text = text[1:]
    return "…" + text


def cluster_strips(title: str, clusters: Sequence[Sequence[Thumb]], size: int = 112) -> "Image.Image":
    """One row per cluster: thumbnails framed green (kept) or red (duplicate), captions below."""
    from PIL import Image, ImageDraw

    pad, cap, top = 12, 40, 40
    per_row = max([len(c) for c in clusters] + [1])
    cell = size + 2 * 6
    width = max(WIDTH // 2, pad * 2 + per_row * (cell + pad) + 120)
    img = Image.new("RGB", (width, top + len(clusters) * (cell + cap) + pad), BG)
    draw = ImageDraw.Draw(img)
    draw.text((pad, 8), title, fill=INK, font=font(18))
    for r, cluster in enumerate(clusters):
        y = top + r * (cell + cap)
        draw.text((pad, y + cell // 2 - 8), f"#{r + 1}", fill=INK, font=font(14))
        for c, thumb in enumerate(cluster):
            x = pad + 40 + c * (cell + pad)
            colour = PALETTE[2] if thumb.kept else PALETTE[3]
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), outline=colour, width=4)
            tile = _thumbnail(thumb.path, size)
            img.paste(tile, (x + 6 + (size - tile.width) // 2, y + 6 + (size - tile.height) // 2))
            status = "kept" if thumb.kept else "duplicate"
            draw.text((x, y + cell + 2), f"{status} ({thumb.split})", fill=colour, font=font(12))
            draw.text((x, y + cell + 18), _tail(thumb.path.name, cell, 11), fill=INK, font=font(11))
    return img


def _thumbnail(path: Path, size: int) -> "Image.Image":
    """The image scaled to fit ``size``; a grey tile with a cross when it cannot be decoded."""
    from PIL import Image, ImageDraw

    try:
        with Image.open(path) as im:
            im.draft("RGB", (size, size))
            tile = im.convert("RGB")
            tile.thumbnail((size, size))
            return tile
    except (OSError, ValueError, Image.DecompressionBombError):
        tile = Image.new("RGB", (size, size), "#bbbbbb")
        ImageDraw.Draw(tile).line((0, 0, size, size), fill=INK, width=2)
        return tile


def empty_figure(title: str, message: str) -> "Image.Image":
    """A small figure that says why there is nothing to draw (never a silent blank)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (WIDTH, 80), BG)
    draw = ImageDraw.Draw(img)
    draw.text((12, 8), title, fill=INK, font=font(18))
    draw.text((12, 44), message, fill="#666666", font=font(14))
    return img
