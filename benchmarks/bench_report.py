"""Report figures: imgnet's PIL ImageDraw charts vs matplotlib (Agg), same chart, same pixels.

Why it matters: the report draws with pillow-simd because matplotlib would pull the stock
``pillow`` wheel over it; this checks that choice costs nothing. The chart is the largest the
report draws: images per class with one bar per class up to 200 classes (``MAX_BARS``; above
that the report draws the distribution), 2 splits stacked, drawn and encoded to PNG in memory. Ours runs in this process (``report.figures.bar_chart`` + the report's
PNG encoder); theirs runs in ``.bench-venvs/matplotlib`` (built by
``benchmarks/peers/setup_matplotlib.sh`` if missing) and reports its own median. Data generation
and interpreter start-up are untimed; one warm-up, then the median of ``repeats``.
Goal: ours <= 1.0x theirs in seconds per chart.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import Result

REPO = Path(__file__).resolve().parent.parent
PEER_VENV = REPO / ".bench-venvs" / "matplotlib"
N_CLASSES = 200  # imgnet_tools.report.sections.MAX_BARS


def _data() -> tuple[list[str], dict[str, list[float]]]:
    rng = random.Random(0)
    wnids = (REPO / "imgnet_tools" / "synsets" / "presets" / "ilsvrc2012_wnids.txt").read_text().split()[:N_CLASSES]
    return wnids, {"train": [float(rng.randint(732, 1300)) for _ in wnids], "val": [50.0] * len(wnids)}


def _peer_python() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run(["bash", str(REPO / "benchmarks" / "peers" / "setup_matplotlib.sh"), str(PEER_VENV)], check=True)
    return python


def run(repeats: int) -> list[Result]:
    from imgnet_tools.report.build import _png
    from imgnet_tools.report.figures import Series, bar_chart

    labels, values = _data()
    title = "Images per class (usable: ok, fixable or fixed)"
    series = [Series(name, v) for name, v in values.items()]

    def ours() -> bytes:
        return _png(bar_chart(title, labels, series))

    png = ours()  # warm-up; also fixes the pixel size the peer must match
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ours()
        times.append(time.perf_counter() - t0)
    from PIL import Image
    import io

    width, height = Image.open(io.BytesIO(png)).size
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        data = Path(tmp) / "data.json"
        data.write_text(json.dumps({"title": title, "labels": labels, "width_px": width, "height_px": height,
                                    "series": [{"name": k, "values": v} for k, v in values.items()]}))
        out = subprocess.run([str(_peer_python()), str(REPO / "benchmarks" / "peers" / "matplotlib_peer.py"),
                              str(data), str(repeats)], capture_output=True, text=True, check=True)
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    params = {"classes": N_CLASSES, "series": len(series), "width_px": width, "height_px": height,
              "ours_png_bytes": len(png), "theirs_png_bytes": theirs["png_bytes"], "theirs_size": theirs["size"],
              "repeats": repeats}
    return [Result(f"report figure: images per class, {N_CLASSES} classes (draw + PNG)", statistics.median(times),
                   theirs["seconds"], "s", "ours <= 1.0x theirs", higher_is_better=False, params=params)]
