"""imgnet train / predict: LeNet-5 learns the demo data, checkpoints resume, predictions score in eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from imgnet_tools.errors import InputError, OutputExistsError
from imgnet_tools.evaluate.predictions import read_predictions
from imgnet_tools.evaluate.run import EvalParams, evaluate
from imgnet_tools.manifest.schemas import validate_json
from imgnet_tools.train import checkpoint
from imgnet_tools.train.loop import TrainInterrupted, TrainParams, outputs_complete, record_path, steps_to_run, train
from imgnet_tools.train.predict import PredictParams, predict
from tests.demo_shards import demo_shards
from tests.conftest import require

CLASSES = 10
CHANCE = 1 / CLASSES
FAST = dict(batch_size=32, workers=1, threads=1, lr=0.05, seed=0)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_shards(tmp_path_factory.mktemp("train-demo"), classes=CLASSES)


@pytest.fixture(scope="module")
def trained(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LeNet-5, four epochs on the CPU, fixed seed (a few seconds)."""
    out = tmp_path_factory.mktemp("run") / "lenet5.pt"
    train(TrainParams(shards=str(shards), out=str(out), epochs=4, **FAST))  # type: ignore[arg-type]
    return out


def test_lenet5_on_the_demo_data_beats_chance_clearly(trained: Path) -> None:
    record = json.loads(record_path(trained).read_text())
    validate_json(record, "train_record", "record")
    history = record["meta"]["history"]
    assert record["status"] == "complete" and [e["epoch"] for e in history] == [1, 2, 3, 4]
    last = history[-1]
    assert last["val_images"] >= CLASSES * 5
    assert last["val_top1"] > 2 * CHANCE, history  # a loose bound: chance is 10%
    assert last["loss"] < history[0]["loss"]
    assert 0 < last["lr"] < FAST["lr"]  # cosine schedule ends near zero


def test_predict_writes_ranked_top5_that_eval_scores_identically(trained: Path, shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.parquet"
    result = predict(PredictParams(checkpoint=str(trained), shards=str(shards), out=str(out), workers=1))
    preds = read_predictions(out)
    assert preds.kind == "wnid" and len(preds) == result.images == result.labelled
    assert all(len(g) == 5 and len(set(g)) == 5 for g in preds.guesses)
    doc = evaluate(EvalParams(predictions=str(out), manifest=str(shards / "manifest.parquet"))).report
    assert doc["metrics"]["top1_accuracy"] == result.metrics["top1_accuracy"]
    assert doc["metrics"]["top5_accuracy"] == result.metrics["top5_accuracy"] >= doc["metrics"]["top1_accuracy"]
    record = json.loads(record_path(trained).read_text())
    assert doc["metrics"]["top1_accuracy"] == pytest.approx(record["meta"]["history"][-1]["val_top1"], abs=1e-6)
    # The pool manifest (scan/verify) knows the same keys: predictions score there too.
    pool = shards.parent / "work" / "manifest.parquet"
    assert evaluate(EvalParams(predictions=str(out), manifest=str(pool))).report["metrics"] == doc["metrics"]
    csv = tmp_path / "preds.csv"
    predict(PredictParams(checkpoint=str(trained), shards=str(shards), out=str(csv), workers=1))
    assert read_predictions(csv).guesses == preds.guesses
    with pytest.raises(OutputExistsError):
        predict(PredictParams(checkpoint=str(trained), shards=str(shards), out=str(out), workers=1))


def test_an_interrupted_run_resumes_from_its_checkpoint(shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "ckpt.pt"
    params = TrainParams(shards=str(shards), out=str(out), epochs=2, val_split=None, save_every=3, **FAST)  # type: ignore[arg-type]
    total = steps_to_run(params)
    done = [0]

    def stop_after_five(n: int) -> None:
        done[0] += n
        if done[0] == 5:
            raise KeyboardInterrupt

    with pytest.raises(TrainInterrupted, match="resume"):
        train(params, progress=stop_after_five)
    meta, state = checkpoint.load(out)
    assert (meta["epoch"], meta["step"]) == (0, 5)
    assert json.loads(record_path(out).read_text())["status"] == "interrupted"
    assert steps_to_run(params) == total - 5
    ran = [0]
    result = train(params, progress=lambda n: ran.__setitem__(0, ran[0] + n))
    assert ran[0] == total - 5 and result.epochs_done == 2 and result.epochs_run == 2
    assert [e["steps"] for e in result.history] == [total // 2 - 5, total // 2]
    assert outputs_complete(params)
    # More epochs extend the run; other settings need --overwrite.
    longer = TrainParams(**{**params.__dict__, "epochs": 3})
    assert not outputs_complete(longer)
    assert train(longer).epochs_run == 1
    with pytest.raises(OutputExistsError, match="lr"):
        train(TrainParams(**{**params.__dict__, "epochs": 3, "lr": 0.1}))
    fresh = train(TrainParams(**{**params.__dict__, "epochs": 1, "overwrite": True}))
    assert fresh.epochs_run == 1 and len(fresh.history) == 1


def test_checkpoint_holds_weights_optimizer_and_rng_and_refuses_junk(trained: Path, tmp_path: Path) -> None:
    meta, state = checkpoint.load(trained)
    validate_json(meta, "checkpoint", "meta")
    assert meta["model"] == {"name": "lenet5", "num_classes": CLASSES, "image_size": 32, "parameters": 62_006}
    assert set(state) >= {"model", "optimizer", "rng"} and isinstance(state["rng"]["torch"], torch.Tensor)
    assert [c["index"] for c in meta["classes"]] == list(range(CLASSES))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable imgnet checkpoint"):
        checkpoint.load(junk)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(InputError, match="not an imgnet checkpoint"):
        checkpoint.load(tmp_path / "foreign.pt")


def test_training_through_dali_on_the_cpu(shards: Path, tmp_path: Path) -> None:
    """The same loop on the DALI loader (CPU decode here): one short epoch, a valid record."""
    require("nvidia.dali")
    out = tmp_path / "dali.pt"
    result = train(TrainParams(shards=str(shards), out=str(out), epochs=1, loader="dali", **FAST))  # type: ignore[arg-type]
    entry = result.history[0]
    assert entry["images"] >= 32 * entry["steps"] and entry["loss"] > 0 and entry["val_images"] > 0


def test_train_and_predict_commands(shards: Path, tmp_path: Path, invoke) -> None:
    out = tmp_path / "cli.pt"
    result = invoke("train", shards, "--out", out, "--epochs", "1", "--batch-size", "32", "--workers", "1",
                    "--threads", "1", "--lr", "0.05", "--no-val", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["epochs_done"] == 1 and doc["history"][0]["val_images"] == 0
    preds = tmp_path / "p.parquet"
    result = invoke("predict", out, shards, "--out", preds, "--workers", "1")
    assert result.exit_code == 0 and "predictions (val)" in result.stdout and "top-1" in result.stdout
    bad = invoke("train", shards, "--out", out, "--model", "alexnet", "--image-size", "32")
    assert bad.exit_code == 2 and "63" in bad.output
    other = invoke("train", shards, "--out", out, "--epochs", "1", "--seed", "3")
    assert other.exit_code == 2 and "seed" in other.output and "--overwrite" in other.output


def test_report_draws_the_training_curve_and_the_evaluation(trained: Path, shards: Path, tmp_path: Path) -> None:
    from PIL import Image

    from imgnet_tools.report.build import ReportParams, report

    run = trained.parent
    preds = run / "preds.parquet"
    predict(PredictParams(checkpoint=str(trained), shards=str(shards), out=str(preds), workers=1, overwrite=True))
    evaluate(EvalParams(predictions=str(preds), manifest=str(shards / "manifest.parquet"), out=str(run / "eval.json"),
                        overwrite=True))
    result = report(ReportParams(run, out=tmp_path / "report"))
    available = {s["id"]: s["available"] for s in result.sections}
    assert available["training-curve"] and available["evaluation"]
    html = result.html.read_text()
    assert "val top-1" in html and "lenet5" in html and "top-5" in html
    with Image.open(tmp_path / "report" / "fig_training_curve.png") as im:
        assert im.height > 400  # loss and accuracy panels
    kinds = {s["kind"] for s in json.loads((tmp_path / "report" / "report.json").read_text())["sources"]}
    assert {"train_record", "eval_report"} <= kinds


def test_the_demo_train_recipe_runs_and_resumes(tmp_path: Path) -> None:
    """pipelines/demo-train.yaml through `imgnet run`: train, predict and eval as recipe stages."""
    from imgnet_tools.recipes.run import RunParams, run
    from tests.conftest import REPO

    recipe = REPO / "pipelines" / "demo-train.yaml"
    overrides = ("demo.classes=5", "demo.train-per-class=12", "demo.val-per-class=3", "demo.size=48", "train.epochs=2", "train.workers=1", "train.threads=1", "predict.workers=1")
    result = run(RunParams(recipe, workdir=tmp_path, overrides=overrides))
    assert [s.action for s in result.steps] == ["ran"] * 9
    doc = json.loads((tmp_path / "runs" / "eval.json").read_text())
    assert doc["truth"]["images"] >= 15 and doc["metrics"]["top5_accuracy"] >= doc["metrics"]["top1_accuracy"]
    sections = json.loads((tmp_path / "report" / "report.json").read_text())["sections"]
    assert {s["id"]: s["available"] for s in sections}["training-curve"]
    again = run(RunParams(recipe, workdir=tmp_path, overrides=overrides))
    assert {s.stage: s.action for s in again.steps} == {s.stage: "skipped" for s in again.steps}
