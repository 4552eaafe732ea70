"""``imgnet train SHARDS --out CKPT``: the stage entry point (:class:`TrainParams`, :func:`train`).

Trains ``lenet5``, ``alexnet2012`` or ``alexnet`` (:mod:`imgnet_tools.bench.models`) on a split's
shards through one of the training loaders (``baseline``: webdataset + PIL + DataLoader; ``dali``:
CPU or nvJPEG "mixed" decode; ``nvjpeg``: torchvision's GPU decode), on the CPU or a GPU, with the
step of :mod:`.step` and a cosine (or constant) learning-rate schedule over all planned steps.

Each epoch ends with a validation pass over ``val_split`` when the shard directory has it
(:func:`imgnet_tools.train.predict.run_model`), and its figures (loss, top-1 and top-5 accuracy of
the training batches and of validation, images/s, learning rate) are appended to the history.
Accuracy comes from :mod:`imgnet_tools.evaluate.metrics`, as everywhere else.

Checkpoints (:mod:`.checkpoint`) are written atomically after every epoch, every ``save_every``
steps if asked, and when the run is interrupted (Ctrl-C); beside the checkpoint, ``CKPT`` with the
suffix ``.train.json`` records the run (``schemas/train_record.schema.json``) for people and for
``imgnet report``'s training curve. Running the same command again resumes where the checkpoint
stands (weights, optimizer, scaler, random generators, epoch and step); a larger ``--epochs``
extends a finished run. The loaders' shuffle is reseeded from (seed, epoch, step) on resume, so a
resumed run sees a different, equally random, order than an uninterrupted one would have.
Changing what the checkpoint was trained with (model, classes, image size, batch size, optimizer
settings, seed) needs ``--overwrite``.
"""

from __future__ import annotations

import datetime
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from imgnet_tools import __version__
from imgnet_tools.errors import ImgnetError, InputError, OutputExistsError
from imgnet_tools.manifest.atomic import atomic_write_text
from imgnet_tools.manifest.schemas import format_version, read_valid_json, validate_json

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from imgnet_tools.loader.shardset import ShardSet
    from imgnet_tools.train.step import TrainStep

LOADERS = ("baseline", "dali", "nvjpeg")
SCHEDULES = ("cosine", "constant")
RECORD = "train_record"
# What a checkpoint must agree on to be resumed (the rest may change between sessions).
RESUME_KEYS = ("model", "batch_size", "image_size", "lr", "momentum", "weight_decay", "schedule", "split", "seed",
               "shuffle_buffer")


class TrainInterrupted(ImgnetError):
    """Ctrl-C during training: the checkpoint was saved; the same command resumes."""

    exit_code = 130


@dataclass(frozen=True)
class TrainParams:
    """``imgnet train SHARDS --out CKPT`` options (field names = CLI option names).

    ``image_size`` None means the model's own (32 for LeNet-5, 224 for AlexNet). ``workers`` None
    means every core on a GPU and half of them on the CPU; ``threads`` None means, on the CPU, the
    cores the workers leave (torch's default otherwise). ``val_split``
    None skips validation; a split the shard directory lacks is skipped too (and recorded).
    """

    shards: str
    out: str
    model: str = "lenet5"
    epochs: int = 10
    loader: str = "baseline"
    batch_size: int = 64
    image_size: int | None = None
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    split: str = "train"
    val_split: str | None = "val"
    device: str = "auto"
    amp: str = "auto"
    compile: bool = False
    workers: int | None = None
    threads: int | None = None
    seed: int = 0
    save_every: int = 0
    shuffle_buffer: int = 1024
    overwrite: bool = False

    def __post_init__(self) -> None:
        from imgnet_tools.bench.params import MIN_IMAGE_SIZE, MODEL_CHOICES

        choices = {"model": MODEL_CHOICES, "loader": LOADERS, "schedule": SCHEDULES,
                   "amp": ("auto", "off", "bf16", "fp16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}.")
        for name in ("epochs", "batch_size", "shuffle_buffer"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1.")
        if self.image_size is not None and self.image_size < MIN_IMAGE_SIZE[self.model]:
            raise InputError(f"image_size must be >= {MIN_IMAGE_SIZE[self.model]} for {self.model}.")
        if self.lr <= 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise InputError("lr must be > 0, momentum in [0, 1) and weight_decay >= 0.")
        if self.save_every < 0 or (self.workers is not None and self.workers < 0) or (self.threads is not None and self.threads < 1):
            raise InputError("save_every and workers must be >= 0, threads >= 1.")

    @property
    def size(self) -> int:
        """The crop size actually used."""
        from imgnet_tools.bench.models import NATIVE_SIZE

        return self.image_size or NATIVE_SIZE[self.model]


@dataclass
class TrainResult:
    """Where the checkpoint and the record are, and what this session did."""

    checkpoint: str
    record: str
    status: str
    epochs_done: int
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_path(out: str | Path) -> Path:
    """The run record beside a checkpoint: ``lenet.pt`` -> ``lenet.train.json``."""
    out = Path(out)
    return out.with_name(out.stem + ".train.json") if out.suffix else out.with_name(out.name + ".train.json")


def _classes(shards: "ShardSet") -> list[dict[str, Any]]:
    path = shards.root / "dataset.json"
    try:
        classes = json.loads(path.read_text(encoding="utf-8")).get("classes")
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(f"{path} is missing or unreadable ({exc}); training needs the class list `imgnet shard` "
                         "writes there.") from exc
    if not isinstance(classes, list) or not classes:
        raise InputError(f"{path} lists no classes; shard a labelled manifest.")
    return [{"index": int(c["index"]), "wnid": c.get("wnid"), "name": c.get("name")} for c in classes]


def _identity(params: TrainParams, classes: list[dict[str, Any]]) -> dict[str, Any]:
    doc = {k: getattr(params, k) for k in RESUME_KEYS}
    doc["image_size"] = params.size
    doc["classes"] = [c["wnid"] or c["index"] for c in classes]
    return doc  # not the shards' path: a run may resume where the same shards are mounted elsewhere


def _fresh_meta(params: TrainParams, classes: list[dict[str, Any]], parameters: int) -> dict[str, Any]:
    from imgnet_tools.loader.augment import MEAN, STD

    return {"format_version": format_version("checkpoint"), "created_by": f"imgnet {__version__}",
            "model": {"name": params.model, "num_classes": len(classes), "image_size": params.size,
                      "parameters": parameters},
            "classes": classes, "normalize": {"mean": list(MEAN), "std": list(STD)},
            "identity": _identity(params, classes), "params": _params_doc(params),
            "epoch": 0, "step": 0, "history": []}


def _params_doc(params: TrainParams) -> dict[str, Any]:
    return {k: v for k, v in asdict(params).items() if k != "overwrite"}


def _resume(params: TrainParams, classes: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The checkpoint to continue from, None to start fresh; refuses a different run without --overwrite."""
    from imgnet_tools.train.checkpoint import load

    out = Path(params.out)
    if not out.exists() or params.overwrite:
        return None
    try:
        meta, state = load(out)
    except InputError as exc:
        raise OutputExistsError(f"{out} exists but cannot be resumed ({exc}); pass --overwrite to start over.") from exc
    wanted = _identity(params, classes)
    changed = sorted(k for k in wanted if meta["identity"].get(k) != wanted[k])
    if changed:
        raise OutputExistsError(f"{out} was trained with other {', '.join(changed)}; pass --overwrite to start over, "
                                "or another --out.")
    return meta, state


def _lr(params: TrainParams, step: int, total: int) -> float:
    if params.schedule == "constant" or total <= 1:
        return params.lr
    return params.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


def _loader_seed(seed: int, epoch: int, step: int) -> int:
    return seed * 1_000_003 + epoch * 10_007 + step


class _EpochStats:
    """Training loss and top-k guesses of one epoch, kept on the device until the epoch ends."""

    def __init__(self, device: "torch.device") -> None:
        import torch

        self.loss = torch.zeros((), device=device)
        self.guesses: list["torch.Tensor"] = []
        self.labels: list["torch.Tensor"] = []
        self.steps = self.images = 0

    def add(self, loss: "torch.Tensor", logits: "torch.Tensor", labels: "torch.Tensor") -> None:
        from imgnet_tools.evaluate.metrics import TOP_K

        self.loss += loss * labels.shape[0]
        self.guesses.append(logits.topk(min(TOP_K, logits.shape[1]), dim=1).indices)
        self.labels.append(labels)
        self.steps += 1
        self.images += int(labels.shape[0])

    def summary(self) -> dict[str, Any]:
        import numpy as np
        import torch

        from imgnet_tools.evaluate.metrics import NO_GUESS, TOP_K, topk_accuracy

        if not self.steps:
            return {"steps": 0, "images": 0, "loss": None, "train_top1": None, "train_top5": None}
        g = torch.cat(self.guesses).cpu().numpy().astype(np.int64)
        if g.shape[1] < TOP_K:
            g = np.concatenate([g, np.full((g.shape[0], TOP_K - g.shape[1]), NO_GUESS, dtype=np.int64)], axis=1)
        acc = topk_accuracy(torch.cat(self.labels).cpu().numpy().astype(np.int64), g)
        return {"steps": self.steps, "images": self.images, "loss": round(float(self.loss) / self.images, 6),
                "train_top1": round(acc[1], 6), "train_top5": round(acc[TOP_K], 6)}


def _validate(stepper: "TrainStep", val: "ShardSet | None", params: TrainParams, workers: int) -> dict[str, Any]:
    from imgnet_tools.evaluate.metrics import score
    from imgnet_tools.train.predict import run_model

    if val is None:
        return {"val_images": 0, "val_loss": None, "val_top1": None, "val_top5": None}
    stepper.module.eval()
    out = run_model(stepper.logits, val, params.size, params.batch_size, workers, stepper.device)
    truth, guesses = out.scored()
    s = score(truth, guesses)
    return {"val_images": s.images, "val_loss": None if out.loss is None else round(out.loss, 6),
            "val_top1": round(s.top1, 6) if s.images else None, "val_top5": round(s.top5, 6) if s.images else None}


def _val_shards(params: TrainParams) -> "ShardSet | None":
    from imgnet_tools.loader.shardset import find_shards

    if not params.val_split:
        return None
    try:
        return find_shards(params.shards, params.val_split)
    except InputError:
        return None  # no such split: validation is skipped, and the record says val_images 0


def _write_record(params: TrainParams, meta: dict[str, Any], status: str, device: "torch.device") -> None:
    doc = {"format_version": format_version(RECORD), "checkpoint": str(Path(params.out).resolve()), "status": status,
           "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "device": device.type, "meta": meta}
    validate_json(doc, RECORD, "train record")
    atomic_write_text(record_path(params.out), json.dumps(doc, indent=2) + "\n")


def _save(params: TrainParams, meta: dict[str, Any], stepper: "TrainStep", status: str) -> None:
    from imgnet_tools.train.checkpoint import rng_state, save

    meta["params"] = _params_doc(params)
    save(params.out, meta, {**stepper.state(), "rng": rng_state()})
    _write_record(params, meta, status, stepper.device)


def steps_to_run(params: TrainParams) -> int:
    """How many training steps a call of :func:`train` would take from where the checkpoint stands."""
    from imgnet_tools.loader.shardset import find_shards

    shards = find_shards(params.shards, params.split)
    per_epoch = max(1, math.ceil(shards.samples / params.batch_size))
    done = 0
    record = record_path(params.out)
    if Path(params.out).is_file() and record.is_file() and not params.overwrite:
        try:
            meta = json.loads(record.read_text(encoding="utf-8"))["meta"]
            done = int(meta["epoch"]) * per_epoch + int(meta["step"])
        except (OSError, ValueError, KeyError, TypeError):
            done = 0
    return max(0, params.epochs * per_epoch - done)


def _setup(params: TrainParams) -> tuple["ShardSet", list[dict[str, Any]], "torch.device", int]:
    import torch

    from imgnet_tools.execute.params import available_cores
    from imgnet_tools.loader.shardset import find_shards
    from imgnet_tools.train.step import resolve_device

    shards = find_shards(params.shards, params.split)
    classes = _classes(shards)
    device = resolve_device(params.device)
    cores = available_cores()
    workers = params.workers if params.workers is not None else (cores if device.type == "cuda" else max(1, cores // 2))
    if params.threads:
        torch.set_num_threads(params.threads)
    elif device.type == "cpu":
        # The loader's workers have their cores; torch's pool gets the rest (oversubscribing a small
        # CPU with both makes every small kernel wait on spinning threads).
        torch.set_num_threads(max(1, cores - workers))
    return shards, classes, device, workers


def _batches(params: TrainParams, shards: "ShardSet", workers: int, device: "torch.device", epoch: int,
             step: int) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
    from imgnet_tools.loader.params import LoaderParams
    from imgnet_tools.loader.select import train_batches

    lp = LoaderParams(batch_size=params.batch_size, image_size=params.size, layout="NCHW", dtype="fp32", workers=workers,
                      seed=_loader_seed(params.seed, epoch, step), shuffle_buffer=params.shuffle_buffer, split=params.split)
    return train_batches(params.loader, shards, lp, 0, 1, device)


def train(params: TrainParams, progress: Callable[[int], None] | None = None,
          on_epoch: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train (or resume) up to ``params.epochs``; ``progress`` gets 1 per step, ``on_epoch`` each epoch's figures."""
    import torch

    from imgnet_tools.bench.alexnet import count_parameters
    from imgnet_tools.bench.models import build_model
    from imgnet_tools.bench.timing import synchronize
    from imgnet_tools.train.checkpoint import restore_rng
    from imgnet_tools.train.step import TrainStep

    shards, classes, device, workers = _setup(params)
    resumed = _resume(params, classes)
    torch.manual_seed(params.seed)
    random.seed(params.seed)
    model = build_model(params.model, len(classes))
    stepper = TrainStep(model, device, params.amp, None, params.compile, params.lr, params.momentum, params.weight_decay)
    meta = _fresh_meta(params, classes, count_parameters(model))
    if resumed is not None:
        meta, state = resumed
        stepper.load(state)
        restore_rng(state["rng"])
    per_epoch = max(1, math.ceil(shards.samples / params.batch_size))
    total = params.epochs * per_epoch
    epoch, step, ran = int(meta["epoch"]), int(meta["step"]), 0
    if epoch >= params.epochs:
        _write_record(params, meta, "complete", device)
        return TrainResult(params.out, str(record_path(params.out)), "complete", epoch, 0, meta["history"])
    val = _val_shards(params)
    batches = _batches(params, shards, workers, device, epoch, step)
    try:
        while epoch < params.epochs:
            stats, t0 = _EpochStats(device), time.perf_counter()
            lr = _lr(params, epoch * per_epoch + step, total)
            while step < per_epoch:
                x, y = next(batches)
                lr = _lr(params, epoch * per_epoch + step, total)
                stepper.set_lr(lr)
                loss, logits = stepper.step(x, y)
                stats.add(loss, logits, y)
                step += 1
                meta["epoch"], meta["step"] = epoch, step
                if progress is not None:
                    progress(1)
                if params.save_every and step % params.save_every == 0 and step < per_epoch:
                    _save(params, meta, stepper, "running")
            synchronize(device)
            seconds = time.perf_counter() - t0
            entry = {"epoch": epoch + 1, **stats.summary(), "seconds": round(seconds, 3),
                     "images_per_s": round(stats.images / seconds, 2) if seconds > 0 else None, "lr": lr,
                     **_validate(stepper, val, params, workers)}
            epoch, step, ran = epoch + 1, 0, ran + 1
            meta["history"].append(entry)
            meta["epoch"], meta["step"] = epoch, step
            _save(params, meta, stepper, "complete" if epoch >= params.epochs else "running")
            if on_epoch is not None:
                on_epoch(entry)
    except KeyboardInterrupt:
        _save(params, meta, stepper, "interrupted")
        raise TrainInterrupted(f"interrupted in epoch {epoch + 1} at step {step}: checkpoint saved to {params.out}; "
                               "run the same command to resume.") from None
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    return TrainResult(params.out, str(record_path(params.out)), "complete", epoch, ran, meta["history"])


def outputs_complete(params: TrainParams) -> bool:
    """True when the checkpoint exists and its record says these parameters finished ``epochs`` epochs."""
    record = record_path(params.out)
    if params.overwrite or not Path(params.out).is_file() or not record.is_file():
        return False
    doc = read_valid_json(record, RECORD)
    if doc is None:
        return False
    meta = doc["meta"]
    same = all(meta["identity"].get(k) == getattr(params, k) for k in RESUME_KEYS if k != "image_size")
    return same and meta["identity"]["image_size"] == params.size and int(meta["epoch"]) >= params.epochs
