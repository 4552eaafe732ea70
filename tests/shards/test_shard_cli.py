"""The shard commands from the command line: results on stdout, exit codes, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_installed
from tests.shard_data import make_dataset, write_manifest


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    rows = make_dataset(tmp_path / "img", {"n01440764": 5, "n01443537": 4})
    rows[0]["status"] = "duplicate"
    return write_manifest(rows, tmp_path / "manifest.parquet")


def test_shard_info_check_round_trip(invoke, manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    result = invoke("shard", manifest, "--size", "3", "--out", out, "--workers", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"8 samples in 3 shards (")
    assert "skipped rows: 1 duplicate" in result.stderr
    info = invoke("shards", "info", out, "--json")
    assert info.exit_code == 0 and json.loads(info.stdout)["samples_per_shard"] == {"min": 2, "max": 3}
    text = invoke("shards", "info", out)
    assert "train: 8 samples in 3 shards" in text.stdout
    check = invoke("shards", "check", out, "--workers", "1")
    assert check.exit_code == 0 and check.stdout == "" and "3 shards, 8 samples: ok" in check.stderr
    again = invoke("shard", manifest, "--size", "3", "--out", out, "--json")
    assert json.loads(again.stdout)["written"] == 0


def test_check_exits_1_with_the_problems(invoke, manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    invoke("shard", manifest, "--size", "3", "--out", out, "--workers", "1")
    (out / "train-000001.tar").write_bytes(b"x" * 2048)
    check = invoke("shards", "check", out, "--workers", "1", "--json")
    assert check.exit_code == 1
    problems = json.loads(check.stdout)["problems"]
    assert any(p.startswith("train-000001.tar: 2048 bytes") for p in problems)


def test_run_level_and_usage_errors(invoke, manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    invoke("shard", manifest, "--size", "3", "--out", out, "--workers", "1")
    changed = invoke("shard", manifest, "--size", "4", "--out", out)
    assert changed.exit_code == 2 and changed.stderr.startswith("Error: ") and "--overwrite" in changed.stderr
    assert invoke("shard", manifest, "--out", out, "--address", "auto").exit_code == 2
    assert invoke("shard", manifest, "--out", out, "--size", "0").exit_code == 2
    assert invoke("shard", manifest, "--out", out, "--prefix", "{wnid}").exit_code == 2
    assert invoke("shards", "check", tmp_path).exit_code == 2  # no dataset.json


def test_installed_console_script(manifest: Path, tmp_path: Path) -> None:
    proc = run_installed("shard", str(manifest), "--out", str(tmp_path / "s"), "--size", "9", "--resize-short", "16", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("8 samples in 1 shards")
