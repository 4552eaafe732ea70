"""The shipped demo recipe end to end on real stages, every planted fault found, resume after a crash.

One module-scoped run of ``pipelines/demo.yaml`` (CPU bench at the smallest settings) feeds the
checks; the resume test runs its own shorter recipe so it can interrupt the shard stage half-way.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from imgnet_tools.demo.data import DemoParams, make_demo
from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.manifest.schemas import validate_json
from imgnet_tools.recipes.run import RunHooks, RunParams, run
from tests.conftest import REPO

DEMO = REPO / "pipelines" / "demo.yaml"
SMALL_BENCH = ("bench.batch-size=4", "bench.steps=1", "bench.warmup=0")
DEMO_DATA = dict(train_per_class=4, val_per_class=2, size=64)
SMALL_DATA = ("demo.train-per-class=4", "demo.val-per-class=2", "demo.size=64")  # the recipe makes its own data


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("demo-run")
    from click.testing import CliRunner

    from imgnet_tools.cli.main import cli

    args = ["run", str(DEMO), "--workdir", str(work)] + [a for s in SMALL_DATA + SMALL_BENCH for a in ("--set", s)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {"work": work, "stdout": result.stdout, "stderr": result.stderr,
            "record": json.loads((work / "run.json").read_text())}


def manifest_rows(work: Path) -> dict[str, dict[str, Any]]:
    """Manifest rows by source path relative to the demo data folder."""
    rows = read_table(work / "work" / "manifest.parquet", "manifest").to_pylist()
    data = (work / "data").resolve()
    return {Path(r["source_path"]).relative_to(data).as_posix(): r for r in rows}


def test_every_stage_ran_and_wrote_valid_artifacts(demo_run: dict[str, Any]) -> None:
    work, record = demo_run["work"], demo_run["record"]
    assert demo_run["stdout"].strip() == str(work / "run.json")
    validate_json(record, "run_record", "run.json")
    assert record["status"] == "ok"
    assert [(s["stage"], s["action"]) for s in record["steps"]] == [
        (s, "ran") for s in ("demo", "synsets", "scan", "verify", "dedup", "shard", "bench", "report")]
    assert record["overrides"] == list(SMALL_DATA + SMALL_BENCH)
    bench = json.loads((work / "bench.json").read_text())
    validate_json(bench, "bench_report", "bench.json")
    assert {(r["mode"], r["loader"]) for r in bench["results"]} == {
        ("loader", "dali"), ("loader", "baseline"), ("model", None), ("e2e", "dali"), ("e2e", "baseline")}
    assert bench["params"]["gpus"] == 0 and bench["params"]["batch_size"] == 4
    dataset = json.loads((work / "shards" / "dataset.json").read_text())
    validate_json(dataset, "dataset", "dataset.json")
    faults = json.loads((work / "data" / "faults.json").read_text())["faults"]
    files = sum(1 for p in (work / "data").rglob("*.JPEG"))
    removed = sum(f["status"] in ("rejected", "duplicate") for f in faults)
    assert dataset["samples"] == files - removed
    assert {c["wnid"] for c in dataset["classes"]} == set((work / "data" / "wnids.txt").read_text().split())


def _check_stage_fault(fault: dict[str, Any], row: dict[str, Any], record: dict[str, Any]) -> None:
    # The recipe runs verify with --fix, so a fixable image ends as "fixed" (a copy was written).
    expected = {"fixable": ("fixable", "fixed")}.get(fault["status"], (fault["status"],))
    assert row["status"] in expected, (fault, row["status"])
    assert row["reason"] == fault["reason"], (fault, row["reason"])
    step = next(s for s in record["steps"] if s["stage"] == fault["stage"])
    assert step["result"]["reasons"].get(fault["reason"], 0) >= 1, (fault, step["result"])


def _check_duplicate_fault(fault: dict[str, Any], rows: dict[str, dict[str, Any]]) -> None:
    a, b = rows[fault["file"]], rows[fault["related"]]
    assert a["cluster_id"] is not None and a["cluster_id"] == b["cluster_id"], fault
    dup, kept = (a, b) if a["status"] == "duplicate" else (b, a)
    assert dup["status"] == "duplicate" and dup["dup_of"] == kept["key"], fault
    assert kept["status"] in ("ok", "fixed") and kept["dup_of"] is None, fault
    if fault["reason"] == "cross_split":
        assert a["split"] != b["split"]
    else:
        assert dup["dup_kind"] == fault["reason"], (fault, dup["dup_kind"])


def test_every_planted_fault_is_found_by_the_stage_that_should_find_it(demo_run: dict[str, Any]) -> None:
    work, record = demo_run["work"], demo_run["record"]
    rows = manifest_rows(work)
    faults = json.loads((work / "data" / "faults.json").read_text())["faults"]
    assert len(faults) == 9
    for fault in faults:
        assert fault["file"] in rows, f"{fault['file']} was not scanned"
        if fault["stage"] == "dedup":
            _check_duplicate_fault(fault, rows)
        else:
            _check_stage_fault(fault, rows[fault["file"]], record)
    planted = {f["file"] for f in faults} | {f["related"] for f in faults if f["related"]}
    clean = {k: r for k, r in rows.items() if k not in planted}
    assert {r["status"] for r in clean.values()} == {"ok"}, "a clean image was flagged"


def test_the_demo_writes_a_report_with_every_section(demo_run: dict[str, Any]) -> None:
    report = demo_run["work"] / "report"
    doc = json.loads((report / "report.json").read_text())
    validate_json(doc, "report", "report.json")
    assert [s["id"] for s in doc["sections"] if s["available"]] == [
        "images-per-class", "verify-reasons", "duplicates", "shard-sizes", "bench-throughput"]
    assert {s["kind"] for s in doc["sources"]} == {"manifest", "dataset", "bench_report"}
    html = (report / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(doc["sections"]) and "src=\"fig_" not in html
    assert "status <b>running (this report is written by one of its steps)</b>" in html


def test_a_rerun_skips_every_finished_stage(demo_run: dict[str, Any]) -> None:
    work = demo_run["work"]
    before = (work / "shards" / "dataset.json").read_bytes()
    result = run(RunParams(DEMO, workdir=work, overrides=SMALL_DATA + SMALL_BENCH))
    actions = {s.stage: s.action for s in result.steps}
    assert actions == {s: "skipped" for s in actions}, actions
    assert (work / "shards" / "dataset.json").read_bytes() == before


RESUME_RECIPE = """
format_version: 1
name: resume
inputs: {data: data}
outputs: {work: work, shards: shards}
stages:
  - stage: scan
    params: {src: ["${data}"], classes: "${data}/wnids.txt", out: "${work}", workers: 1}
  - stage: verify
    params: {manifest: "${work}/manifest.parquet", fix: "${work}/fixed", workers: 1}
  - stage: dedup
    params: {manifest: "${work}/manifest.parquet", workers: 1}
  - stage: shard
    params: {manifest: "${work}/manifest.parquet", out: "${shards}", size: 4, workers: 1}
"""


class Crash(Exception):
    """Stands in for a machine dying half-way through a stage."""


def test_resume_after_a_stage_fails_half_way(tmp_path: Path) -> None:
    make_demo(DemoParams(tmp_path / "data", **DEMO_DATA))  # type: ignore[arg-type]
    recipe = tmp_path / "resume.yaml"
    recipe.write_text(textwrap.dedent(RESUME_RECIPE).lstrip(), encoding="utf-8")
    current: list[str] = []
    shards_done = [0]

    def progress(n: int) -> None:
        if current and current[-1] == "shard":
            shards_done[0] += 1
            if shards_done[0] == 2:
                raise Crash("power cut after two shards")

    hooks = RunHooks(step_started=lambda i, n, step: current.append(step.spec.stage), progress=progress)
    with pytest.raises(Crash):
        run(RunParams(recipe), hooks)
    record = json.loads((tmp_path / "run.json").read_text())
    validate_json(record, "run_record", "run.json")
    assert record["status"] == "failed"
    assert [s["action"] for s in record["steps"]] == ["ran", "ran", "ran", "failed"]
    assert "power cut" in record["steps"][3]["error"]
    shards = tmp_path / "shards"
    assert not (shards / "dataset.json").exists()
    tars = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.tar")}
    # the two shards the run reported, and perhaps the next one, which the pool had handed to the
    # idle worker before the run saw the second result (never committed, so written again below)
    assert 2 <= len(tars) <= 3
    written = {name: tars[name] for name in sorted(tars)[:2]}
    begun = {name: (shards / name).read_bytes() for name in sorted(tars)[2:]}

    result = run(RunParams(recipe))
    actions = [s.action for s in result.steps]
    assert actions[1:] == ["skipped", "skipped", "ran"], actions
    assert result.steps[3].result is not None and result.steps[3].result["resumed"] == 2
    for name, mtime in written.items():
        assert (shards / name).stat().st_mtime_ns == mtime, f"{name} was rewritten instead of resumed"
    for name, data in begun.items():
        assert (shards / name).read_bytes() == data  # deterministic: the same bytes when written again
    dataset = json.loads((shards / "dataset.json").read_text())
    assert dataset["samples"] == sum(s["samples"] for s in dataset["shards"]) > 0
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "ok"
    shutil.rmtree(tmp_path / "data")  # the next run must notice its input is gone
    with pytest.raises(Exception, match="missing input"):
        run(RunParams(recipe))
