"""imgnet bench: DDP on the CPU (gloo, 2 processes) end to end, the report, the verdict, error paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.shardgen import real_shards, write_shards

from imgnet_tools.bench.params import BenchParams
from imgnet_tools.bench.report import analysis, build_report, format_table
from imgnet_tools.bench.run import bench, outputs_complete
from imgnet_tools.errors import InputError, OutputExistsError
from imgnet_tools.manifest.schemas import validate_json

# The reduced-resolution CI setting: 64 px, tiny batches, one timed step.
TINY = ["--image-size", "64", "--batch-size", "4", "--steps", "1", "--warmup", "0", "--repeats", "1",
        "--workers", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_shards(tmp_path_factory.mktemp("bench"), samples=16, per_shard=4, classes=4)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spawned ranks inherit these: one BLAS/OpenMP thread each on a shared 2-core box."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")


def test_cpu_ddp_two_processes_all_modes(invoke, shards_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = invoke("bench", shards_dir, "--gpus", "0", "--procs", "2", *TINY, "--json", "--out", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert json.loads(out.read_text()) == doc
    validate_json(doc, "bench_report", "report")
    assert doc["devices"] == {"type": "cpu", "count": 2, "backend": "gloo", "names": doc["devices"]["names"]}
    assert doc["model"]["parameters"] == 60965224 and doc["model"]["image_size"] == 64
    assert [(r["mode"], r["loader"]) for r in doc["results"]] == [
        ("loader", "dali"), ("loader", "baseline"), ("model", None), ("e2e", "dali"), ("e2e", "baseline")]
    for r in doc["results"]:
        assert r["images_per_s"] == pytest.approx(2 * r["images_per_s_per_device"], rel=1e-2)
        assert r["images_per_s"] == pytest.approx(2 * 4 * 1 / r["repeats_s"][0], rel=1e-2)
    assert [a["loader"] for a in doc["analysis"]] == ["dali", "baseline"]
    assert doc["allreduce"]["numel"] == 60965224 and doc["allreduce"]["ms_per_step"] > 0
    assert doc["params"]["procs"] == 2 and doc["dataset"]["samples"] == 16 and doc["dataset"]["num_classes"] == 4
    assert doc["versions"]["torch"] == torch.__version__ and doc["versions"]["dali"]
    assert "images/s" in result.stderr and "all-reduce" in result.stderr
    # A re-run with the same parameters has nothing to do; other parameters do.
    params = BenchParams(shards=str(shards_dir), gpus=0, procs=2, image_size=64, batch_size=4, steps=1, warmup=0,
                         repeats=1, workers=1, threads=1, out=str(out))
    assert outputs_complete(params)
    assert not outputs_complete(BenchParams(**{**params.__dict__, "batch_size": 8}))


def test_one_process_one_loader_mode(shards_dir: Path) -> None:
    params = BenchParams(shards=str(shards_dir), gpus=0, procs=1, mode="loader", loader="dali", image_size=64,
                         batch_size=4, steps=2, warmup=1, repeats=2, workers=1, threads=1, model="alexnet")
    doc = bench(params).to_dict()
    assert [(r["mode"], r["loader"]) for r in doc["results"]] == [("loader", "dali")]
    assert len(doc["results"][0]["repeats_s"]) == 2 and doc["analysis"] == []
    assert doc["allreduce"]["ms_per_step"] is None  # nothing trained, nothing all-reduced
    assert doc["model"]["parameters"] == 61100840


def test_half_precision_nhwc_batches_train_on_the_cpu(shards_dir: Path) -> None:
    """DALI's NHWC bf16 batches feed training (widened to fp32 on the CPU, channels_last on a GPU)."""
    params = BenchParams(shards=str(shards_dir), gpus=0, mode="e2e", loader="dali", dtype="bf16", layout="NHWC",
                         image_size=64, batch_size=4, steps=1, warmup=0, repeats=1, workers=1, threads=1)
    doc = bench(params).to_dict()
    assert [(r["mode"], r["loader"]) for r in doc["results"]] == [("e2e", "dali")]
    assert doc["params"]["dtype"] == "bf16" and doc["allreduce"]["ms_per_step"] is not None


def _rank(rank: int, timings: dict[str, list[float]]) -> dict:
    return {"rank": rank, "timings": timings, "allreduce_ms": [1.0, 2.0, 3.0], "device_type": "cpu",
            "device_name": "x86_64", "backend": "gloo", "parameters": 10, "train_flops_per_image": 2e9,
            "num_classes": 1000}


def _context(params: BenchParams) -> dict:
    return {"created": "2026-01-01T00:00:00+00:00", "elapsed_s": 1.0, "params": {**params.__dict__, "workers": 1, "threads": 1},
            "dataset": {"shards": "s", "split": "train", "shard_files": 1, "samples": 8, "num_classes": None},
            "host": {"hostname": "h", "cpus": 2, "platform": "p"},
            "versions": {"imgnet": "0", "python": "3", "torch": "2", "cuda": None, "cudnn": None, "dali": None,
                         "webdataset": None, "pillow": None}}


def test_report_uses_the_slowest_rank_and_the_median_repeat() -> None:
    params = BenchParams(shards="s", gpus=0, procs=2, batch_size=10, steps=5, repeats=3)
    ranks = [_rank(0, {"model": [1.0, 2.0, 9.0]}), _rank(1, {"model": [1.5, 1.0, 1.0]})]
    doc = build_report(params, ranks, _context(params))
    row = doc["results"][0]
    assert row["repeats_s"] == [1.5, 2.0, 9.0]
    assert row["images_per_s"] == pytest.approx(2 * 10 * 5 / 2.0)
    assert row["step_ms"] == pytest.approx(2000.0 / 5)
    assert doc["allreduce"]["ms_per_step"] == 2.0
    assert "2 x x86_64" in format_table(doc)


@pytest.mark.parametrize("loader_rate,verdict", [(500.0, "loader-bound"), (1000.0, "balanced"), (3000.0, "model-bound")])
def test_verdict_compares_loader_with_model(loader_rate: float, verdict: str) -> None:
    results = [{"mode": "loader", "loader": "dali", "images_per_s": loader_rate},
               {"mode": "model", "loader": None, "images_per_s": 1000.0},
               {"mode": "e2e", "loader": "dali", "images_per_s": 400.0}]
    (row,) = analysis(results)
    assert row["verdict"] == verdict and row["loader_vs_model"] == pytest.approx(loader_rate / 1000.0)
    assert row["e2e_efficiency"] == pytest.approx(400.0 / min(loader_rate, 1000.0), rel=1e-3)


def test_too_many_gpus_is_a_clear_error(invoke, shards_dir: Path) -> None:
    visible = torch.cuda.device_count()
    result = invoke("bench", shards_dir, "--gpus", str(visible + 1), *TINY)
    assert result.exit_code == 2
    assert f"asked for {visible + 1} GPU(s) but {visible} visible" in result.stderr and "--gpus 0 --procs" in result.stderr


def test_no_shards_and_bad_index(invoke, tmp_path: Path) -> None:
    result = invoke("bench", tmp_path, "--gpus", "0", *TINY)
    assert result.exit_code == 2 and "no shards train-NNNNNN.tar" in result.stderr
    shards = write_shards(tmp_path / "s", samples=4, per_shard=2)
    (shards / "train-000001.idx").write_text("v1.2 7\n")
    result = invoke("bench", shards, "--gpus", "0", *TINY)
    assert result.exit_code == 2 and "train-000001.idx" in result.stderr


def test_existing_report_is_kept_without_overwrite(shards_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    out.write_text("{}")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        bench(BenchParams(shards=str(shards_dir), gpus=0, out=str(out)))
    assert out.read_text() == "{}"


def test_usage_errors(invoke, shards_dir: Path) -> None:
    assert invoke("bench", shards_dir, "--gpus", "1", "--procs", "2").exit_code == 2
    assert invoke("bench", shards_dir, "--mode", "fast").exit_code == 2
    assert invoke("bench", shards_dir, "--image-size", "16").exit_code == 2
    with pytest.raises(InputError, match="procs is for CPU runs"):
        BenchParams(shards="s", gpus=2, procs=2)
    with pytest.raises(InputError, match="loader must be one of"):
        BenchParams(shards="s", loader="pil")


@pytest.mark.gpu
def test_one_gpu_all_modes(shards_dir: Path, tmp_path: Path) -> None:
    params = BenchParams(shards=str(shards_dir), gpus=1, image_size=64, batch_size=8, steps=3, warmup=2, repeats=2,
                         workers=2, dtype="fp16", layout="NHWC", out=str(tmp_path / "r.json"))
    doc = bench(params).to_dict()
    validate_json(doc, "bench_report", "report")
    assert doc["devices"]["type"] == "cuda" and doc["devices"]["backend"] == "nccl"
    assert len(doc["analysis"]) == 2 and doc["versions"]["cuda"]


def test_undecodable_image_stops_the_run_with_a_clear_error(invoke, tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "s", samples=4, per_shard=4)
    tar_path = shards / "train-000000.tar"
    data = bytearray(tar_path.read_bytes())
    data[512:1024] = b"\0" * 512  # the first member, KEY.jpg, starts after its 512-byte header
    tar_path.write_bytes(bytes(data))
    result = invoke("bench", shards, "--gpus", "0", "--mode", "loader", "--loader", "dali", *TINY[:4],
                    "--steps", "4", "--warmup", "0", "--repeats", "1", "--workers", "1", "--threads", "1")
    assert result.exit_code == 1 and "cannot be decoded" in result.stderr
