"""Every stage over Pillow's own ~1,070 test images (real awkward files), through the real CLI.

scan -> verify --fix -> dedup -> shard (copy mode, and --resize-short) -> shards check -> loader
check (DALI on the CPU) -> report, and ``imgnet run`` of a recipe doing the same: every command
exits 0 without a traceback, every file gets a status from the vocabulary, no row is a crash
(``internal_error`` / ``crashed_decoder``), the sources are byte-for-byte and mtime-for-mtime
untouched, and no published shard names this machine's folders.

The verdict of every file (status and reason after verify, status after dedup, whether it was
sharded) is checked against ``tests/data/pillow_corpus_verdicts.tsv``, so a change of a verdict
(a new check, another Pillow) shows up in review. Regenerate it after a deliberate change with

    IMGNET_UPDATE_VERDICTS=1 python -m pytest -q tests/hostile/test_hostile_corpus.py

The corpus comes from :mod:`tests.pillow_corpus` (fetched once into ~/.cache by set-up); the
tests skip, saying why, only when it is neither cached nor downloadable (and fail instead with
``IMGNET_REQUIRE_CORPUS=1``, which CI sets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from imgnet_tools.images.check import REASON_ORDER
from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.manifest.schemas import load_schema
from tests import pillow_corpus
from tests.conftest import REPO

VERDICTS = REPO / "tests" / "data" / "pillow_corpus_verdicts.tsv"
HEADER = ("path", "status", "reason", "issues", "after_dedup", "sharded")
CRASH_REASONS = {"internal_error", "crashed_decoder", "timeout"}
IMGNET = Path(sys.executable).with_name("imgnet")


@pytest.fixture(scope="module")
def corpus() -> Path:
    try:
        return pillow_corpus.corpus_dir()
    except pillow_corpus.CorpusUnavailable as exc:
        if os.environ.get("IMGNET_REQUIRE_CORPUS") == "1":  # CI (.ci/run): it must run there
            pytest.fail(f"Pillow test-image corpus unavailable and IMGNET_REQUIRE_CORPUS=1: {exc}")
        pytest.skip(f"Pillow test-image corpus unavailable: {exc}")


def _imgnet(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real console script; fail with its output when it does not exit 0 cleanly."""
    proc = subprocess.run([str(IMGNET), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600,
                          env={**os.environ, "IMGNET_LOG_DIR": str(cwd / "logs")})
    where = f"imgnet {' '.join(map(str, args))}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, where
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, where
    return proc


@pytest.fixture(scope="module")
def run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The whole pipeline, stage by stage and as a recipe; what each step printed (``--json``)."""
    base = tmp_path_factory.mktemp("pillow_corpus")
    before = pillow_corpus.tree_digest(corpus)
    w = ["--workers", "2"]
    out: dict[str, Any] = {"base": base, "corpus": corpus}
    out["scan"] = _imgnet("scan", corpus, "--out", "work", "--chunk-rows", "128", *w, "-q", "--json", cwd=base)
    out["verify"] = _imgnet("verify", "work/manifest.parquet", "--fix", "fixed", "--chunk-rows", "128", *w, "-q",
                            "--json", cwd=base)
    out["verified"] = read_table(base / "work" / "manifest.parquet", "manifest").to_pylist()
    out["dedup"] = _imgnet("dedup", "work/manifest.parquet", "--chunk-rows", "128", *w, "-q", "--json", cwd=base)
    for name, extra in (("copy", []), ("resize", ["--resize-short", "64"])):
        _imgnet("shard", "work/manifest.parquet", "--out", f"shards-{name}", "--size", "100", *extra, *w, "-q",
                "--json", cwd=base)
        out[f"check-{name}"] = json.loads(_imgnet("shards", "check", f"shards-{name}", *w, "-q", "--json",
                                                  cwd=base).stdout)
        out[f"loader-{name}"] = json.loads(_imgnet("loader", "check", f"shards-{name}", "-q", "--json",
                                                   cwd=base).stdout)
    out["report"] = _imgnet("report", ".", "--out", "report", "--json", cwd=base)
    recipe = base / "recipe" / "recipe.yaml"
    recipe.parent.mkdir()
    recipe.write_text(RECIPE.replace("CORPUS", str(corpus)))
    out["run"] = json.loads(_imgnet("run", recipe, "-q", "--json", cwd=base).stdout)
    out["after"] = pillow_corpus.tree_digest(corpus)
    out["before"] = before
    return out


RECIPE = """\
format_version: 1
name: pillow-corpus
description: every stage over Pillow's Tests/images
inputs:
  data: CORPUS
outputs:
  work: work
  shards: shards
  report: report
stages:
  - stage: scan
    params: {src: ["${data}"], out: "${work}", chunk-rows: 256, workers: 2}
  - stage: verify
    params: {manifest: "${work}/manifest.parquet", fix: "${work}/fixed", chunk-rows: 256, workers: 2}
  - stage: dedup
    params: {manifest: "${work}/manifest.parquet", workers: 2}
  - stage: shard
    params: {manifest: "${work}/manifest.parquet", out: "${shards}", size: 100, resize-short: 64, workers: 2}
  - stage: report
    params: {dir: ., out: "${report}"}
"""


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _verdicts(run: dict[str, Any]) -> list[tuple[str, ...]]:
    base = run["base"]
    final = {r["rel_path"]: r for r in read_table(base / "work" / "manifest.parquet", "manifest").to_pylist()}
    sharded = {r["source_path"] for r in read_table(base / "shards-resize" / "manifest.parquet", "shard_manifest",
                                                    columns=["source_path"]).to_pylist()}
    rows = []
    for row in sorted(run["verified"], key=lambda r: r["rel_path"]):
        rel = row["rel_path"]
        rows.append((rel, row["status"], row["reason"] or "", ",".join(row["issues"] or []),
                     final[rel]["status"], "yes" if rel in sharded else "no"))
    return rows


def test_every_file_gets_a_status_from_the_vocabulary_and_none_crashed(run: dict[str, Any]) -> None:
    rows = run["verified"]
    assert sorted(r["rel_path"] for r in rows) == _files(run["corpus"])  # every file, once
    assert len(rows) > 1000
    schema = load_schema("manifest")
    for row in rows:
        assert row["status"] in ("ok", "fixable", "fixed", "rejected"), row
        assert (row["reason"] is None) == (row["status"] == "ok"), row
        assert row["reason"] is None or row["reason"] in schema["reason_values"], row
        assert all(i in REASON_ORDER for i in row["issues"] or []), row
        assert row["reason"] not in CRASH_REASONS, row  # no decoder crash, no bug, no hang
    summary = json.loads(run["verify"].stdout)
    assert summary["rows"] == len(rows) and sum(summary["status"].values()) == len(rows)
    assert json.loads(run["dedup"].stdout)["hash_failed"] == 0


def test_verdicts_match_the_checked_in_table(run: dict[str, Any]) -> None:
    rows = _verdicts(run)
    text = ("# Verdicts on Pillow " + pillow_corpus.VERSION + "'s Tests/images; regenerate: "
            "IMGNET_UPDATE_VERDICTS=1 python -m pytest -q tests/hostile/test_hostile_corpus.py\n"
            + "\t".join(HEADER) + "\n" + "".join("\t".join(r) + "\n" for r in rows))
    if os.environ.get("IMGNET_UPDATE_VERDICTS") == "1":
        VERDICTS.parent.mkdir(exist_ok=True)
        VERDICTS.write_text(text, encoding="utf-8")
    expected = VERDICTS.read_text(encoding="utf-8").splitlines()
    got = text.splitlines()
    changed = sorted(set(expected[2:]) ^ set(got[2:]))
    assert got == expected, "verdicts changed (- expected / + now):\n" + "\n".join(
        ("- " if line in expected else "+ ") + line for line in changed[:60])


def test_sources_are_never_modified(run: dict[str, Any]) -> None:
    assert run["after"] == run["before"]


def test_shards_check_and_dali_agree_on_both_shard_kinds(run: dict[str, Any]) -> None:
    for name in ("copy", "resize"):
        check, loader = run[f"check-{name}"], run[f"loader-{name}"]
        assert check["ok"] and not check["problems"], check
        assert loader["ok"] and loader["compared"] == check["samples"] > 200, loader
        assert loader["label_mismatches"] == 0 and loader["sample_mismatches"] == 0


def test_published_shards_hold_no_path_of_this_machine(run: dict[str, Any]) -> None:
    corpus, base = str(run["corpus"]), str(run["base"])
    secrets = [s.encode() for s in (corpus, base, str(Path.home()))]
    for name in ("copy", "resize"):
        folder = run["base"] / f"shards-{name}"
        for tar_path in sorted(folder.glob("*.tar")):
            with tarfile.open(tar_path) as archive:
                for member in archive.getmembers():
                    assert not member.name.startswith("/") and ".." not in member.name.split("/")
                    if member.name.endswith(".json"):
                        meta = json.loads(archive.extractfile(member).read())  # type: ignore[union-attr]
                        assert not os.path.isabs(meta["path"]), meta
                        assert not any(s.decode() in meta["path"] for s in secrets), meta
        stored = pq.read_table(folder / "manifest.parquet", columns=["source_path"]).column("source_path").to_pylist()
        assert stored and not any(os.path.isabs(p) or corpus in p for p in stored), stored[:5]
        assert not any(s in (folder / "dataset.json").read_bytes() for s in secrets)


def test_report_and_recipe_run_cover_the_corpus(run: dict[str, Any]) -> None:
    base = run["base"]
    assert (base / "report" / "report.html").stat().st_size > 10_000
    steps = run["run"]["steps"]
    assert [s["stage"] for s in steps] == ["scan", "verify", "dedup", "shard", "report"], steps
    assert all(s["error"] is None for s in steps), steps
    # the recipe reaches the same verdicts as the commands run one by one
    by_recipe = {r["rel_path"]: (r["status"], r["reason"])
                 for r in read_table(base / "recipe" / "work" / "manifest.parquet", "manifest").to_pylist()}
    by_hand = {r["rel_path"]: (r["status"], r["reason"])
               for r in read_table(base / "work" / "manifest.parquet", "manifest").to_pylist()}
    assert by_recipe == by_hand
    assert (base / "recipe" / "report" / "report.html").is_file()
