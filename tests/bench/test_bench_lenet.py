"""imgnet bench with LeNet-5 at its native 32 px: every mode on the CPU, and the report names it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.shardgen import real_shards

from imgnet_tools.manifest.schemas import validate_json


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_bench_runs_lenet5_in_every_mode(invoke, tmp_path: Path) -> None:
    shards = real_shards(tmp_path, samples=16, per_shard=4, classes=4)
    result = invoke("bench", shards, "--gpus", "0", "--model", "lenet5", "--image-size", "32", "--loader", "baseline",
                    "--batch-size", "4", "--steps", "1", "--warmup", "0", "--repeats", "1", "--workers", "1",
                    "--threads", "1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate_json(doc, "bench_report", "report")
    assert doc["model"]["name"] == "lenet5" and doc["model"]["image_size"] == 32
    assert doc["model"]["parameters"] == 62_006 - 850 + (84 * 1000 + 1000)  # 1000 outputs, as the bench uses
    assert [(r["mode"], r["loader"]) for r in doc["results"]] == [("loader", "baseline"), ("model", None), ("e2e", "baseline")]
    assert "LeNet-5 bench: lenet5" in result.stderr
