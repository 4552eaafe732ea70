"""Line charts drawn with PIL ImageDraw (the training curve): one or more series over a shared x axis.

Kept beside :mod:`.figures` and in its style (same palette, fonts, width): a title, a legend, a
light grid with labelled y ticks, x ticks at the data points (or every n-th when there are many),
and a dot on every point so a one-epoch run still shows something.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from imgnet_tools.report.figures import BG, GRID, INK, PALETTE, WIDTH, _fmt, _text_width, font

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image


@dataclass(frozen=True)
class Line:
    """One series: its name and a value per x (None where it has none, e.g. no validation)."""

    name: str
    values: Sequence[float | None]


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    step = (high - low) / (count - 1)
    return [low + i * step for i in range(count)]


def line_chart(title: str, xs: Sequence[float], lines: Sequence[Line], y_label: str = "", height: int = 260,
               y_range: tuple[float, float] | None = None) -> "Image.Image":
    """A line chart of ``lines`` over ``xs``; ``y_range`` fixes the axis (else from the data, from 0)."""
    from PIL import Image, ImageDraw

    pad, top, left, bottom = 12, 58, 64, 34
    img = Image.new("RGB", (WIDTH, height), BG)
    draw = ImageDraw.Draw(img)
    draw.text((pad, 8), title, fill=INK, font=font(18))
    x = pad
    for k, line in enumerate(lines):
        draw.rectangle((x, 36, x + 12, 48), fill=PALETTE[k % len(PALETTE)])
        draw.text((x + 16, 34), line.name, fill=INK, font=font(13))
        x += 16 + _text_width(line.name, 13) + 18
    values = [v for line in lines for v in line.values if v is not None]
    low, high = y_range if y_range is not None else (min(0.0, min(values, default=0.0)), max(values, default=1.0))
    if high <= low:
        high = low + 1.0
    plot = (left, top, WIDTH - pad, height - bottom)
    for t in _ticks(low, high):
        y = plot[3] - (t - low) / (high - low) * (plot[3] - plot[1])
        draw.line((plot[0], y, plot[2], y), fill=GRID)
        draw.text((pad, y - 8), _fmt(round(t, 3)), fill=INK, font=font(12))
    if y_label:
        draw.text((pad, plot[3] + 14), y_label, fill="#666666", font=font(12))
    if not xs:
        return img
    x_lo, x_hi = min(xs), max(xs)
    span = (x_hi - x_lo) or 1.0

    def px(xv: float) -> float:
        return plot[0] + 10 + (xv - x_lo) / span * (plot[2] - plot[0] - 20) if x_hi > x_lo else (plot[0] + plot[2]) / 2

    def py(v: float) -> float:
        return plot[3] - (v - low) / (high - low) * (plot[3] - plot[1])

    every = max(1, len(xs) // 12)
    for i, xv in enumerate(xs):
        if i % every == 0 or i == len(xs) - 1:
            draw.text((px(xv) - 6, plot[3] + 2), _fmt(xv), fill=INK, font=font(12))
    for k, line in enumerate(lines):
        colour = PALETTE[k % len(PALETTE)]
        points = [(px(xv), py(v)) for xv, v in zip(xs, line.values) if v is not None]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        for cx, cy in points:
            draw.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), fill=colour)
    return img
