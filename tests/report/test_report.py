"""`imgnet report`: figures from a real manifest, self-contained HTML rendered by headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest
from PIL import Image

from imgnet_tools.demo.data import DemoParams, make_demo
from imgnet_tools.errors import OutputExistsError
from imgnet_tools.manifest.parquet import write_table
from imgnet_tools.manifest.schemas import validate_json
from imgnet_tools.report.build import ReportParams, outputs_complete, report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECTIONS = ["images-per-class", "verify-reasons", "duplicates", "shard-sizes", "bench-throughput",
            "training-curve", "evaluation", "wordnet-matches"]


def _manifest(run_dir: Path, data: Path) -> Path:
    """A manifest as verify + dedup would leave it: ok rows, two rejections, one fixed, a cluster."""
    files = sorted(p for p in (data / "train").rglob("n*_*.JPEG"))[:6]
    rows = []
    for i, p in enumerate(files):
        rows.append({"key": f"train-{p.stem}", "path": str(p), "source_path": str(p), "split": "train",
                     "label": i % 2, "wnid": p.parent.name, "status": "ok", "reason": None,
                     "cluster_id": None, "dup_of": None})
    rows[1].update(status="rejected", reason="truncated")
    rows[2].update(status="rejected", reason="too_small")
    rows[3].update(status="fixed", reason="cmyk")
    rows[4].update(cluster_id=0)
    rows[5].update(cluster_id=0, status="duplicate", dup_of=rows[4]["key"])
    out = run_dir / "work" / "manifest.parquet"
    out.parent.mkdir(parents=True)
    write_table(pa.Table.from_pylist(rows), out, "manifest")
    return out


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    make_demo(DemoParams(tmp_path / "data", train_per_class=3, val_per_class=1, size=48))
    _manifest(tmp_path, tmp_path / "data")
    return tmp_path


def test_report_from_a_manifest_only_says_what_is_missing(run_dir: Path) -> None:
    result = report(ReportParams(run_dir))
    out = run_dir / "report"
    doc = json.loads((out / "report.json").read_text())
    validate_json(doc, "report", "report.json")
    available = {s["id"]: s["available"] for s in doc["sections"]}
    assert available == {"images-per-class": True, "verify-reasons": True, "duplicates": True,
                         "shard-sizes": False, "bench-throughput": False, "training-curve": False,
                         "evaluation": False, "wordnet-matches": False}
    notes = {s["id"]: s["note"] for s in doc["sections"]}
    assert "imgnet shard" in notes["shard-sizes"] and "imgnet bench" in notes["bench-throughput"]
    assert [s["kind"] for s in doc["sources"]] == ["manifest"]
    for fig in result.figures:
        with Image.open(fig) as im:
            assert im.format == "PNG" and im.width >= 450 and im.height >= 60
    html = result.html.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    assert "truncated" in html and "too_small" in html and "cmyk" in html
    assert html.count("data:image/png;base64,") == len(SECTIONS)


def test_duplicate_figure_shows_thumbnails_of_the_cluster(run_dir: Path) -> None:
    report(ReportParams(run_dir))
    with Image.open(run_dir / "report" / "fig_duplicates.png") as im:
        rgb = im.convert("RGB")
        # Two framed thumbnails: the keeper in green, the duplicate in red.
        colours = {c for _, c in rgb.getcolors(maxcolors=1 << 20)}
    assert (0x59, 0xA1, 0x4F) in colours and (0xE1, 0x57, 0x59) in colours
    assert len(colours) > 200, "thumbnails should bring the images' own colours"


def test_report_is_skipped_when_its_sources_are_unchanged(run_dir: Path) -> None:
    params = ReportParams(run_dir)
    assert outputs_complete(params) is False
    report(params)
    assert outputs_complete(params) is True
    assert outputs_complete(ReportParams(run_dir, max_clusters=1)) is False
    shutil.rmtree(run_dir / "work")  # rewritten with the same rows: a new file, the same bytes
    _manifest(run_dir, run_dir / "data")
    assert outputs_complete(params) is True, "same rows, same bytes: still up to date"
    (run_dir / "report" / "fig_duplicates.png").unlink()
    assert outputs_complete(params) is False


def test_report_refuses_a_foreign_out_dir(run_dir: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        report(ReportParams(run_dir, out=foreign))
    assert (foreign / "notes.txt").read_text() == "mine"


def test_cli_prints_the_html_path(run_dir: Path, invoke) -> None:
    result = invoke("report", run_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(run_dir / "report" / "report.html")
    assert "no data for: Shard sizes, Bench throughput" in result.stderr
    assert invoke("report", run_dir / "nope").exit_code == 2


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    base = [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}"]
    env = {**os.environ, "HOME": str(profile)}
    return subprocess.run(base + args, capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's `chromium` (apt-get install chromium; make setup does)")
def test_headless_chromium_renders_every_section_and_decodes_every_figure(run_dir: Path, tmp_path: Path) -> None:
    result = report(ReportParams(run_dir))
    html_copy = tmp_path / "offline" / "copy.html"  # self-contained: works alone, elsewhere
    html_copy.parent.mkdir()
    shutil.copy(result.html, html_copy)
    dom = _chromium(["--dump-dom", html_copy.as_uri()], tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f'data-figures-total="{len(SECTIONS)}"' in dom.stdout and f'data-figures-decoded="{len(SECTIONS)}"' in dom.stdout
    for section in ["run"] + SECTIONS:
        assert f'<section id="{section}">' in dom.stdout
    shot = tmp_path / "shot.png"
    ran = _chromium([f"--screenshot={shot}", "--window-size=1000,1400", html_copy.as_uri()], tmp_path / "profile")
    assert ran.returncode == 0 and shot.is_file(), ran.stderr[-2000:]
    with Image.open(shot) as im:
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "the page rendered blank"


def test_many_classes_draw_a_distribution_and_list_the_smallest(tmp_path: Path) -> None:
    """ImageNet-sized class counts: no 20,000-pixel-tall chart, a histogram and the 100 smallest."""
    rows = [{"key": f"k{c}-{i}", "path": f"/x/{c}/{i}.JPEG", "source_path": f"/x/{c}/{i}.JPEG", "split": "train",
             "wnid": f"n{c:08d}", "status": "ok"} for c in range(250) for i in range(1 + c % 7)]
    (tmp_path / "work").mkdir()
    write_table(pa.Table.from_pylist(rows), tmp_path / "work" / "manifest.parquet", "manifest")
    result = report(ReportParams(tmp_path))
    with Image.open(tmp_path / "report" / "fig_images_per_class.png") as im:
        assert im.height < 1000
    html = result.html.read_text()
    assert "The 100 classes with the fewest usable images, of 250" in html
    assert html.count("<tr><td>n0000") == 100
