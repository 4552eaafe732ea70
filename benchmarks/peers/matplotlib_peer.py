"""matplotlib side of benchmarks/bench_report.py; runs inside .bench-venvs/matplotlib (stock Pillow).

    python matplotlib_peer.py DATA.json REPEATS

DATA.json: {"title", "labels", "series": [{"name", "values"}], "width_px", "height_px"}. Draws the
same stacked horizontal bar chart as imgnet's report (Agg backend, same pixel size) and encodes
it as PNG in memory. Prints one JSON line: median seconds of REPEATS runs after one untimed
warm-up, and the PNG's pixel size.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import time


def draw(doc: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dpi = 100
    fig, ax = plt.subplots(figsize=(doc["width_px"] / dpi, doc["height_px"] / dpi), dpi=dpi)
    left = [0.0] * len(doc["labels"])
    positions = list(range(len(doc["labels"])))
    for s in doc["series"]:
        ax.barh(positions, s["values"], left=left, label=s["name"])
        left = [a + b for a, b in zip(left, s["values"])]
    for y, total in zip(positions, left):
        ax.text(total, y, f" {total:,.0f}", va="center", fontsize=8)
    ax.set_yticks(positions, doc["labels"], fontsize=8)
    ax.invert_yaxis()
    ax.set_title(doc["title"])
    ax.legend(loc="upper right")
    ax.margins(y=0.001)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def main() -> None:
    doc = json.load(open(sys.argv[1], encoding="utf-8"))
    repeats = int(sys.argv[2])
    png = draw(doc)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        png = draw(doc)
        times.append(time.perf_counter() - t0)
    from PIL import Image

    size = Image.open(io.BytesIO(png)).size
    print(json.dumps({"seconds": statistics.median(times), "png_bytes": len(png), "size": size}))


if __name__ == "__main__":
    main()
