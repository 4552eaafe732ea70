"""``imgnet predict CKPT SHARDS --out PREDS``: ranked top-5 predictions of a checkpoint, per key.

The model runs in eval mode over every sample of the split once (:mod:`.evalread`: centre crop at
the checkpoint's image size, no flip); each row of the output holds the key, the five best class
indices, their wnids (when every class has one) and softmax probabilities, in the table format
``imgnet eval`` scores (``schemas/predictions.schema.json``; ``.csv`` writes the wide form). The
summary scores the labelled samples with :mod:`imgnet_tools.evaluate.metrics` (the same numbers
``imgnet eval`` gives against the shard manifest). :func:`run_model` is also what ``imgnet train``
validates with after every epoch.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from imgnet_tools.errors import InputError, OutputExistsError
from imgnet_tools.evaluate.metrics import NO_GUESS, TOP_K

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from imgnet_tools.loader.shardset import ShardSet


@dataclass(frozen=True)
class PredictParams:
    """``imgnet predict CHECKPOINT SHARDS --out PREDS`` options (field names = CLI option names)."""

    checkpoint: str
    shards: str
    out: str
    split: str = "val"
    batch_size: int = 256
    workers: int | None = None
    device: str = "auto"
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise InputError("batch_size must be at least 1.")
        if self.workers is not None and self.workers < 0:
            raise InputError("workers must be >= 0.")
        if Path(self.out).suffix.lower() not in (".parquet", ".csv"):
            raise InputError(f"--out {self.out}: predictions are written as .parquet or .csv.")


@dataclass
class ModelOutput:
    """What one pass over a split gives: keys, top-k guesses and probabilities, labels, mean loss."""

    keys: list[str]
    guesses: "np.ndarray"
    scores: "np.ndarray"
    labels: "np.ndarray"
    loss: float | None
    seconds: float

    def scored(self) -> tuple["np.ndarray", "np.ndarray"]:
        """(truth, guesses) of the labelled samples only (label -1 marks an unlabelled one)."""
        keep = self.labels >= 0
        return self.labels[keep], self.guesses[keep]


def run_model(logits_fn: Callable[["torch.Tensor"], "torch.Tensor"], shards: "ShardSet", size: int, batch_size: int,
              workers: int, device: "torch.device", top: int = TOP_K) -> ModelOutput:
    """Every sample of ``shards`` once through ``logits_fn`` (no gradients): top-``top`` per sample."""
    import numpy as np
    import torch

    from imgnet_tools.train.evalread import eval_batches

    keys: list[str] = []
    guesses, scores, labels = [], [], []
    loss_sum = torch.zeros((), device=device)
    labelled = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for batch_keys, images, y in eval_batches(shards, size, batch_size, workers, device):
            logits = logits_fn(images).float()
            probs = torch.softmax(logits, dim=1)
            k = min(top, probs.shape[1])
            p, idx = probs.topk(k, dim=1)
            mask = y >= 0
            if bool(mask.any()):
                loss_sum += torch.nn.functional.cross_entropy(logits[mask], y[mask], reduction="sum")
                labelled += int(mask.sum())
            keys.extend(batch_keys)
            guesses.append(idx.cpu())
            scores.append(p.cpu())
            labels.append(y.cpu())
    if not keys:
        raise InputError(f"no samples read from {shards.root} ({shards.split}); check the shards with `imgnet shards check`.")
    g = torch.cat(guesses).numpy().astype(np.int64)
    if g.shape[1] < top:  # fewer classes than guesses: the missing ranks are no guess
        g = np.concatenate([g, np.full((g.shape[0], top - g.shape[1]), NO_GUESS, dtype=np.int64)], axis=1)
    return ModelOutput(keys, g, torch.cat(scores).numpy(), torch.cat(labels).numpy().astype(np.int64),
                       float(loss_sum) / labelled if labelled else None, time.perf_counter() - t0)


@dataclass
class PredictResult:
    """Where the predictions went and how they score on the labelled samples."""

    out: str
    checkpoint: str
    split: str
    images: int
    labelled: int
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict(params: PredictParams, progress: Callable[[int], None] | None = None) -> PredictResult:
    """Load the checkpoint, run it over the split, write ranked top-5 predictions atomically."""
    import torch

    from imgnet_tools.bench.models import build_model
    from imgnet_tools.evaluate.metrics import score
    from imgnet_tools.evaluate.predictions import write_predictions
    from imgnet_tools.execute.params import available_cores
    from imgnet_tools.loader.shardset import find_shards
    from imgnet_tools.train.checkpoint import load
    from imgnet_tools.train.step import resolve_device

    if Path(params.out).exists() and not params.overwrite:
        raise OutputExistsError(f"{params.out} already exists; pass --overwrite to replace it.")
    meta, state = load(params.checkpoint)
    shards = find_shards(params.shards, params.split)
    device = resolve_device(params.device)
    classes = meta["classes"]
    model = build_model(meta["model"]["name"], len(classes))
    model.load_state_dict(state["model"])
    model.to(device).eval()
    workers = available_cores() if params.workers is None else params.workers
    out = run_model(model, shards, meta["model"]["image_size"], params.batch_size, workers, device)
    wnids = [c.get("wnid") for c in classes]
    rows_wnids = None
    if all(wnids):
        rows_wnids = [[wnids[i] for i in row if i != NO_GUESS] for row in out.guesses.tolist()]
    labels = [[i for i in row if i != NO_GUESS] for row in out.guesses.tolist()]
    scores = [list(map(float, row[:len(lab)])) for row, lab in zip(out.scores.tolist(), labels, strict=True)]
    write_predictions(params.out, out.keys, labels, rows_wnids, scores)
    truth, guesses = out.scored()
    metrics = score(truth, guesses).to_dict() if truth.shape[0] else {}
    if progress is not None:
        progress(len(out.keys))
    return PredictResult(params.out, params.checkpoint, params.split, len(out.keys), int(truth.shape[0]), metrics,
                         round(out.seconds, 3))


def outputs_complete(params: PredictParams) -> bool:
    """True when the predictions exist, are readable, and are newer than the checkpoint and the shards."""
    from imgnet_tools.evaluate.predictions import read_predictions

    out, ckpt, dataset = Path(params.out), Path(params.checkpoint), Path(params.shards) / "dataset.json"
    if not out.is_file() or not ckpt.is_file():
        return False
    try:
        read_predictions(out)
    except InputError:
        return False
    newest_input = max(ckpt.stat().st_mtime_ns, dataset.stat().st_mtime_ns if dataset.is_file() else 0)
    return out.stat().st_mtime_ns >= newest_input


def summary_line(result: PredictResult) -> str:
    """One line for people."""
    text = f"{result.out}: {result.images:,} predictions ({result.split}) in {result.seconds:.1f} s"
    if result.metrics:
        m = result.metrics
        text += (f"; on {result.labelled:,} labelled: top-1 {100 * m['top1_accuracy']:.2f}%, "
                 f"top-5 {100 * m['top5_accuracy']:.2f}%")
    return text
