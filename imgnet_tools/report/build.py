"""The report stage: ``ReportParams`` / ``report`` / ``outputs_complete`` (docs/CONTRACTS.md shape).

Writes into ``out`` (default ``DIR/report``): one PNG per figure, ``report.html`` with every
figure embedded as a base64 data URI (self-contained: it opens offline, mailed or archived), and
``report.json`` (schema ``report``) listing the sections and the sources with their size and
sha256, which is what tells a re-run that nothing changed. The directory is replaced atomically.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from imgnet_tools import __version__
from imgnet_tools.errors import InputError, OutputExistsError
from imgnet_tools.manifest.atomic import atomic_output_dir
from imgnet_tools.manifest.schemas import format_version, read_valid_json, validate_json
from imgnet_tools.report.collect import RunData, collect, fingerprint
from imgnet_tools.report.sections import SECTIONS, Section, _table

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


@dataclass(frozen=True)
class ReportParams:
    """``imgnet report DIR [--out OUT]``: the run directory to describe and where the report goes."""

    dir: Path
    out: Path | None = None
    max_clusters: int = 8
    overwrite: bool = False

    def out_dir(self) -> Path:
        """``out``, or ``DIR/report`` by default."""
        return self.out if self.out is not None else self.dir / "report"


@dataclass
class ReportResult:
    """Where the report is and what it holds."""

    html: Path
    figures: list[Path]
    sections: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"html": str(self.html), "figures": [str(f) for f in self.figures], "sections": self.sections}


def _png(img: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")  # optimize=True is 6x slower on tall charts for 3% fewer bytes
    return buf.getvalue()


def _check_out(params: ReportParams) -> None:
    out = params.out_dir()
    if not params.dir.is_dir():
        raise InputError(f"{params.dir} is not a directory; pass the run directory (the recipe's --workdir).")
    if out.is_dir() and any(out.iterdir()) and not (out / REPORT_JSON).is_file() and not params.overwrite:
        raise OutputExistsError(f"{out} exists and holds no earlier report; pass --overwrite or another --out.")


def report(params: ReportParams, progress: Callable[[int], None] | None = None) -> ReportResult:
    """Collect the run's artifacts, draw every section's figure, write PNGs, HTML and report.json."""
    _check_out(params)
    data = collect(params.dir)
    built: list[tuple[Section, Any, str]] = []
    for section in (s for s in SECTIONS if s.shown(data)):
        img, note = section.draw(data, params.max_clusters)
        built.append((section, img, note))
        if progress is not None:
            progress(1)
    pngs = {f"fig_{s.id.replace('-', '_')}.png": _png(img) for s, img, _ in built}
    doc = _record(params, data, built)
    validate_json(doc, "report", REPORT_JSON)
    out = params.out_dir()
    with atomic_output_dir(out, overwrite=True) as stage:
        stage.chmod(0o755)  # mkdtemp makes it 0700; a report is meant to be read by others
        for name, blob in pngs.items():
            (stage / name).write_bytes(blob)
        (stage / REPORT_HTML).write_text(render_html(data, built, pngs), encoding="utf-8")
        (stage / REPORT_JSON).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return ReportResult(out / REPORT_HTML, [out / n for n in pngs], doc["sections"])


def _record(params: ReportParams, data: RunData, built: list[tuple[Section, Any, str]]) -> dict[str, Any]:
    return {
        "format_version": format_version("report"),
        "created_by": f"imgnet {__version__}",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "dir": str(params.dir.resolve()),
        "params": {"max_clusters": params.max_clusters},
        "sources": [s.to_dict() for s in data.sources],
        "sections": [
            {"id": s.id, "title": s.title, "figure": f"fig_{s.id.replace('-', '_')}.png",
             "available": note == "", "note": note}
            for s, _, note in built
        ],
    }


def outputs_complete(params: ReportParams) -> bool:
    """True when report.json exists, is valid, and its sources are unchanged (size and sha256)."""
    path = params.out_dir() / REPORT_JSON
    if not path.is_file() or not (params.out_dir() / REPORT_HTML).is_file() or not params.dir.is_dir():
        return False
    doc = read_valid_json(path, "report")
    if doc is None:
        return False
    if doc["params"] != {"max_clusters": params.max_clusters}:
        return False
    if not all((params.out_dir() / s["figure"]).is_file() for s in doc["sections"]):
        return False
    return bool(doc["sources"] == fingerprint(params.dir))


def _data_uri(blob: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(blob).decode("ascii")


CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#f6f6f4}
header{background:#2f3b4c;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#cfd6df}nav{padding:8px 28px;background:#e9ecef}nav a{margin-right:14px;color:#2f3b4c}
main{padding:8px 28px 40px;max-width:1100px}section{background:#fff;border:1px solid #ddd;border-radius:6px;
padding:14px 18px;margin:16px 0}h2{margin:0 0 8px;font-size:18px}img{max-width:100%;height:auto;display:block;
margin:8px 0}table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left}th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#8a5a00;background:#fff6e0;padding:6px 10px;border-radius:4px}
"""

# Marks the page once every embedded figure has decoded, so a headless browser test can check it.
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-figures-total', String(imgs.length));
  document.body.setAttribute('data-figures-decoded', String(ok));
});
"""


def _run_section(data: RunData) -> str:
    run = data.run
    if run is None:
        return '<p class="note">No run.json here: this directory was not made by <code>imgnet run</code>.</p>'
    rows = [[s["id"], s["stage"], s["action"], "" if s["seconds"] is None else s["seconds"], s["error"] or ""]
            for s in run["steps"]]
    status = run["status"]
    if status == "running" and any(s["stage"] == "report" and s["action"] == "running" for s in run["steps"]):
        status = "running (this report is written by one of its steps)"
    head = (f"<p>Recipe <b>{html.escape(run['recipe']['name'])}</b> ({html.escape(run['recipe']['path'])}), "
            f"status <b>{html.escape(status)}</b>, started {html.escape(run['started'])}.</p>")
    return head + _table(rows, ["step", "stage", "action", "seconds", "error"])


def render_html(data: RunData, built: list[tuple[Section, Any, str]], pngs: dict[str, bytes]) -> str:
    """The self-contained page: run summary, then one section per figure with its table."""
    title = f"imgnet report: {data.dir.name}"
    nav = " ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s, _, _ in built)
    parts = [f'<section id="run"><h2>Run</h2>{_run_section(data)}</section>']
    for section, _, note in built:
        name = f"fig_{section.id.replace('-', '_')}.png"
        body = f'<p class="note">{html.escape(note)}</p>' if note else section.table(data)
        parts.append(
            f'<section id="{section.id}"><h2>{html.escape(section.title)}</h2>'
            f'<img src="{_data_uri(pngs[name])}" alt="{html.escape(section.title)}" data-figure="{name}">'
            f"{body}</section>"
        )
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style><script>{SCRIPT}</script></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(str(data.dir))} &middot; imgnet {__version__} "
        f"&middot; {stamp}</p></header><nav><a href=\"#run\">Run</a> {nav}</nav><main>"
        + "".join(parts)
        + "</main></body></html>\n"
    )
