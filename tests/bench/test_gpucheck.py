"""The one-call GPU check: its CPU dry run through scripts/gpu_bench.sh on a "bare host" (nltk, Ray,
DALI and torchvision blocked), the goals it checks, and its summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imgnet_tools.bench.gpucheck import GpuCheckParams, goals, gpu_check, summary_text
from imgnet_tools.errors import InputError, OutputExistsError
from imgnet_tools.manifest.schemas import validate_json
from tests.conftest import REPO

BLOCKED = ("nltk", "ray", "nvidia.dali", "torchvision")
SITECUSTOMIZE = f'''
import sys

BLOCKED = {BLOCKED!r}


class BareHost:
    """Imports of what a bare GPU host lacks fail, as they would there."""

    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: bare-host test)")
        return None


sys.meta_path.insert(0, BareHost())
'''


def test_dry_run_through_the_script_on_a_bare_host(tmp_path: Path) -> None:
    """scripts/gpu_bench.sh --dry-run installs the project --no-deps into a temporary target and runs
    every step with nltk, Ray, DALI and torchvision unimportable."""
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "PY": sys.executable, "PYTHONPATH": str(block), "DALI": "0", "OMP_NUM_THREADS": "1",
           "GPU_WHEELS": str(tmp_path / "no-wheels"), "TMPDIR": str(tmp_path)}
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_bench.sh"), "--dry-run", str(out)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "gpu_check.json").read_text())
    validate_json(doc, "gpu_check", "gpu_check.json")
    env_doc = doc["environment"]
    assert env_doc["importable"] == {"torchvision": False, "nvidia.dali": False, "webdataset": True}
    assert env_doc["install"].startswith("pip --no-deps --target")
    status = {s["name"]: (s["status"], s["reason"]) for s in doc["steps"]}
    assert status["loader:dali"] == ("skipped", "DALI is not importable here")
    assert status["e2e:dali"][0] == "skipped"
    ok = [n for n, (st, _) in status.items() if st == "ok"]
    assert set(ok) == {"environment", "data", "loader:nvjpeg", "decode:nvjpeg", "loader:baseline", "model:fp32-nchw",
                       "model:bf16-nchw", "model:bf16-cl", "model:fp16-cl", "model:bf16-cl-compile", "e2e:nvjpeg",
                       "e2e:baseline"}, status
    assert all(doc["rates"][n] > 0 for n in ok if n not in ("environment", "data"))
    nv = next(s for s in doc["steps"] if s["name"] == "loader:nvjpeg")
    assert "PIL stand-in" in nv["results"]["decoder"]
    assert all(g["met"] is None for g in doc["goals"])  # no goal is judged off a GPU
    summary = (out / "summary.txt").read_text()
    assert "dry run" in summary and "loader:baseline" in summary and summary in proc.stdout
    assert not list(tmp_path.glob("imgnet-gpu.*"))  # the temporary install is removed


def test_goals_are_judged_from_the_rates() -> None:
    rates = {"model:bf16-cl": 30_000.0, "model:bf16-cl-compile": 40_000.0, "loader:nvjpeg": 9_000.0,
             "decode:nvjpeg": 10_000.0, "loader:dali": 12_000.0, "loader:baseline": 3_000.0,
             "e2e:nvjpeg": 8_500.0, "e2e:dali": 10_000.0}
    by = {g["name"]: g for g in goals(rates, "cuda", "NVIDIA H100 80GB HBM3")}
    assert by["alexnet_bf16_model_only_img_s"]["value"] == 40_000 and by["alexnet_bf16_model_only_img_s"]["met"]
    assert by["nvjpeg_loader_vs_decode_ceiling"]["value"] == 0.9 and by["nvjpeg_loader_vs_decode_ceiling"]["met"]
    assert by["gpu_loader_vs_pil_baseline"]["value"] == 4.0 and "dali" in by["gpu_loader_vs_pil_baseline"]["note"]
    assert by["e2e_nvjpeg_vs_min_loader_model"]["value"] == pytest.approx(8_500 / 9_000, abs=1e-3)
    assert by["e2e_dali_vs_min_loader_model"]["met"] is False  # 10k of min(12k, 40k)
    other = {g["name"]: g for g in goals(rates, "cuda", "NVIDIA A100")}
    assert other["alexnet_bf16_model_only_img_s"]["target"] is None  # the 38k goal is for an H100
    assert all(g["met"] is None for g in goals({}, "cuda", "H100"))


def test_params_and_outputs_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="63"):
        GpuCheckParams(out=str(tmp_path), image_size=32)
    assert GpuCheckParams(out="x", dry_run=True).effective().model == "lenet5"
    assert GpuCheckParams(out="x").effective().model == "alexnet2012"
    (tmp_path / "gpu_check.json").write_text("{}")
    with pytest.raises(OutputExistsError):
        gpu_check(GpuCheckParams(out=str(tmp_path), dry_run=True))


def test_summary_lists_steps_and_goals() -> None:
    doc = {"dry_run": False, "elapsed_s": 300.0,
           "environment": {"device_name": "NVIDIA H100", "device": "cuda", "torch": "2.x", "cuda": "12.8",
                           "torchvision": "0.x", "dali": None},
           "steps": [{"name": "loader:dali", "status": "skipped", "seconds": 0, "reason": "DALI is not importable here",
                      "results": {}},
                     {"name": "model:bf16-cl", "status": "ok", "seconds": 3, "reason": "",
                      "results": {"images_per_s": 41000.0, "step_ms": 6.2, "tflops": 176.0}}],
           "goals": [{"name": "alexnet_bf16_model_only_img_s", "value": 41000.0, "target": 38000.0, "met": True, "note": ""}]}
    text = summary_text(doc)
    assert "41,000" in text and "DALI is not importable" in text and "met" in text and "NVIDIA H100" in text
