"""``imgnet train SHARDS --out CKPT`` and ``imgnet predict CKPT SHARDS --out PREDS``."""

from __future__ import annotations

import sys
from typing import Any

import click

from imgnet_tools.cli.options import emit_json, json_option, note, overwrite_option, progress_bar, quiet_option
from imgnet_tools.errors import InputError

MODELS = ("lenet5", "alexnet2012", "alexnet")
LOADERS = ("baseline", "dali", "nvjpeg")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def epoch_line(e: dict[str, Any]) -> str:
    """One line per finished epoch, for people (stderr)."""
    loss = "-" if e["loss"] is None else f"{e['loss']:.4f}"
    text = (f"epoch {e['epoch']}: loss {loss}, train top-1 {_pct(e['train_top1'])}, "
            f"{e['images_per_s'] or 0:,.0f} img/s, lr {e['lr']:.4g}")
    if e["val_images"]:
        text += f"; val top-1 {_pct(e['val_top1'])}, top-5 {_pct(e['val_top5'])} ({e['val_images']} images)"
    return text


@click.command("train")
@click.argument("shards", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Checkpoint file (e.g. runs/lenet5.pt); CKPT.train.json beside it records the run.")
@click.option("--model", type=click.Choice(MODELS), default="lenet5", show_default=True,
              help="lenet5 (LeCun et al. 1998, 32 px), alexnet2012 (two towers) or alexnet (single tower).")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Total epochs; a finished run with fewer is extended.")
@click.option("--loader", type=click.Choice(LOADERS), default="baseline", show_default=True,
              help="baseline (webdataset + PIL), dali (CPU or nvJPEG decode), nvjpeg (torchvision GPU decode).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--image-size", type=click.IntRange(min=14), default=None,
              help="Crop size (default: the model's own, 32 for LeNet-5, 224 for AlexNet).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True,
              help="Peak learning rate (SGD).")
@click.option("--momentum", type=click.FloatRange(0, 1, max_open=True), default=0.9, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True)
@click.option("--schedule", type=click.Choice(["cosine", "constant"]), default="cosine", show_default=True,
              help="Learning rate over all planned steps.")
@click.option("--split", default="train", show_default=True, help="Split to train on.")
@click.option("--val-split", default="val", show_default=True,
              help="Split to validate on after every epoch (skipped when the shards lack it).")
@click.option("--no-val", is_flag=True, help="Do not validate.")
@click.option("--device", default="auto", show_default=True, help="auto (a GPU when there is one), cpu, cuda or cuda:N.")
@click.option("--amp", type=click.Choice(["auto", "off", "bf16", "fp16"]), default="auto", show_default=True,
              help="Autocast dtype (auto: bf16 on a GPU, off on the CPU).")
@click.option("--compile", "compile_", is_flag=True, help="Wrap the model in torch.compile.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Loader workers (default: every core on a GPU, half of them on the CPU).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for weights, shuffling and augmentation.")
@click.option("--save-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also checkpoint every N steps (0: after every epoch only).")
@click.option("--shuffle-buffer", type=click.IntRange(min=1), default=1024, show_default=True)
@overwrite_option
@json_option
@quiet_option
def train(shards: str, out: str, compile_: bool, no_val: bool, val_split: str, as_json: bool, quiet: bool,
          **options: Any) -> None:
    """Train LeNet-5 or AlexNet on the shards in SHARDS, on the CPU or a GPU.

    \b
    Checkpoints are written atomically after every epoch (and on Ctrl-C); the same command
    resumes, and a larger --epochs extends a finished run. Every epoch validates on --val-split.
      imgnet train shards/ --model lenet5 --epochs 5 --out runs/lenet5.pt
      imgnet train shards/ --model alexnet --image-size 224 --batch-size 256 --out runs/alexnet.pt
    The loss/accuracy curve goes into CKPT.train.json and `imgnet report`.
    """
    from imgnet_tools.train.loop import TrainParams, steps_to_run
    from imgnet_tools.train.loop import train as run_train

    try:
        params = TrainParams(shards=shards, out=out, compile=compile_, val_split=None if no_val else val_split,
                             **options)
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    total = steps_to_run(params)
    lead = "\n" if sys.stderr.isatty() else ""  # end the progress bar's line first
    with progress_bar("train", total, quiet) as progress:
        result = run_train(params, progress, on_epoch=None if quiet else lambda e: note(lead + epoch_line(e)))
    if as_json:
        emit_json(result.to_dict())
        return
    last = result.history[-1] if result.history else None
    tail = f"; last: {epoch_line(last)}" if last else ""
    click.echo(f"{result.checkpoint}: {result.epochs_done} epochs done ({result.epochs_run} this run), "
               f"record {result.record}{tail}")


@click.command("predict")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.argument("shards", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Predictions file: .parquet (schema predictions) or .csv (key,pred_1..pred_5).")
@click.option("--split", default="val", show_default=True, help="Split of SHARDS to predict.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="Reader workers (default: every core).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@overwrite_option
@json_option
def predict(checkpoint: str, shards: str, as_json: bool, **options: Any) -> None:
    """Ranked top-5 predictions of CHECKPOINT for every sample of a split of SHARDS, by key.

    \b
    The output is the table `imgnet eval` scores:
      imgnet predict runs/lenet5.pt shards/ --split val --out preds.parquet
      imgnet eval preds.parquet --manifest shards/manifest.parquet --split val
    """
    from imgnet_tools.train.predict import PredictParams, summary_line
    from imgnet_tools.train.predict import predict as run_predict

    try:
        params = PredictParams(checkpoint=checkpoint, shards=shards, **options)
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    result = run_predict(params)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(summary_line(result))
