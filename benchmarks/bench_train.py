"""Training and inference on the CPU: our step and forward against a plain PyTorch loop on the same tensors.

The framework ceiling: what PyTorch itself does with the same model, the same batches and the same
threads, with nothing of ours around it. Measured, in one run, interleaved repeat by repeat:

* LeNet-5 training, batch 64 at 32x32, 10 classes: ours is the body of ``imgnet train``'s loop
  (:class:`imgnet_tools.train.step.TrainStep` with its learning-rate update, plus the per-epoch
  statistics it keeps: loss sum and top-5 guesses on the device); theirs is ``model(x)``,
  cross-entropy, ``zero_grad``, ``backward``, ``SGD.step`` with the same optimizer settings.
* AlexNet (2012) forward, batch 64 at 224x224, 1000 classes, eval mode, no gradients: ours is what
  ``imgnet predict`` does per batch (:meth:`TrainStep.logits`, softmax, top-5); theirs is ``model(x)``.
* For the record, the whole ``imgnet train`` of LeNet-5 on generated demo shards (webdataset + PIL
  loader in the loop, per-epoch validation excluded), against the same plain loop: this one is
  loader-bound on a small CPU, so its ratio is only recorded.

Setup is untimed; each measurement warms up first; the median of ``repeats`` runs is reported.
Threads, the same for both sides: LeNet-5 runs on one (its layers are too small for a thread pool to
pay off; on a shared 2-core machine two threads made both sides 4-7x slower and the ratio noise),
AlexNet on every core; ``IMGNET_BENCH_THREADS`` sets both.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

from benchmarks.common import Result

LENET_BATCH, LENET_STEPS = 64, 30
ALEX_BATCH, ALEX_STEPS, ALEX_SIZE = 64, 3, 224


def _threads(default: int) -> int:
    return int(os.environ.get("IMGNET_BENCH_THREADS", str(default)))


def _interleaved(ours: Callable[[], None], theirs: Callable[[], None], repeats: int) -> tuple[float, float]:
    """Median seconds of ``ours`` and ``theirs`` after one warm-up each, run by run in alternating
    order (ours first, then theirs first), so that a load change on a shared machine hits both."""
    ours()
    theirs()
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    for i in range(repeats):
        order = [("ours", ours), ("theirs", theirs)]
        for name, fn in order if i % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return statistics.median(times["ours"]), statistics.median(times["theirs"])


def _lenet(repeats: int) -> Result:
    import torch
    from torch import nn

    from imgnet_tools.bench.models import build_model
    from imgnet_tools.train.loop import _EpochStats
    from imgnet_tools.train.step import TrainStep

    torch.set_num_threads(_threads(1))
    torch.manual_seed(0)
    device = torch.device("cpu")
    batches = [(torch.randn(LENET_BATCH, 3, 32, 32), torch.randint(0, 10, (LENET_BATCH,))) for _ in range(LENET_STEPS)]
    ours_step = TrainStep(build_model("lenet5", 10), device, "off", False, False, 0.01)
    plain = build_model("lenet5", 10)
    opt = torch.optim.SGD(plain.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()

    def ours() -> None:
        stats = _EpochStats(device)
        for i, (x, y) in enumerate(batches):
            ours_step.set_lr(0.01 * (1 - i / LENET_STEPS))
            loss, logits = ours_step.step(x, y)
            stats.add(loss, logits, y)
        stats.summary()

    def theirs() -> None:
        plain.train()
        for x, y in batches:
            loss = loss_fn(plain(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    a, b = _interleaved(ours, theirs, repeats)
    images = LENET_BATCH * LENET_STEPS
    return Result("lenet5 train step, CPU, batch 64 @ 32px (img/s)", images / a, images / b, "img/s", ">= 0.9x", True,
                  {"batch": LENET_BATCH, "steps": LENET_STEPS, "threads": torch.get_num_threads()})


def _alexnet(repeats: int) -> Result:
    import torch

    from imgnet_tools.bench.models import build_model
    from imgnet_tools.train.step import TrainStep

    torch.set_num_threads(_threads(os.cpu_count() or 1))
    torch.manual_seed(0)
    device = torch.device("cpu")
    model = build_model("alexnet2012", 1000).eval()
    step = TrainStep(model, device, "off", False, False)
    step.module.eval()
    x = torch.randn(ALEX_BATCH, 3, ALEX_SIZE, ALEX_SIZE)

    def ours() -> None:
        with torch.no_grad():
            for _ in range(ALEX_STEPS):
                probs = torch.softmax(step.logits(x).float(), dim=1)
                probs.topk(5, dim=1)

    def theirs() -> None:
        with torch.no_grad():
            for _ in range(ALEX_STEPS):
                model(x)

    a, b = _interleaved(ours, theirs, repeats)
    images = ALEX_BATCH * ALEX_STEPS
    return Result("alexnet2012 forward, CPU, batch 64 @ 224px (img/s)", images / a, images / b, "img/s", ">= 0.9x", True,
                  {"batch": ALEX_BATCH, "steps": ALEX_STEPS, "image_size": ALEX_SIZE, "threads": torch.get_num_threads()})


def _full_train(repeats: int, plain_rate: float) -> Result:
    """The whole imgnet train (baseline loader in the loop) on demo shards, epochs' images/s."""
    from imgnet_tools.demo.data import DemoParams, make_demo
    from imgnet_tools.images.scan import ScanParams, scan
    from imgnet_tools.images.verify import VerifyParams, verify
    from imgnet_tools.shards.write import ShardParams, shard
    from imgnet_tools.train.loop import TrainParams, train

    with tempfile.TemporaryDirectory(prefix="imgnet-bench-train-") as tmp:
        root = Path(tmp)
        make_demo(DemoParams(root / "data", classes=10, train_per_class=64, val_per_class=2, size=64))
        scan(ScanParams(src=(str(root / "data"),), out=str(root / "work"), classes=str(root / "data" / "wnids.txt")))
        verify(VerifyParams(manifest=str(root / "work" / "manifest.parquet"), fix=str(root / "work" / "fixed")))
        shard(ShardParams(manifest=str(root / "work" / "manifest.parquet"), out=str(root / "shards"), size=128))
        workers = max(1, (os.cpu_count() or 2) // 2)
        result = train(TrainParams(shards=str(root / "shards"), out=str(root / "lenet.pt"), epochs=1 + repeats,
                                   batch_size=LENET_BATCH, val_split=None, workers=workers, threads=_threads(1)))
    rates = [e["images_per_s"] for e in result.history[1:]]  # the first epoch starts the workers: warm-up
    return Result("lenet5 imgnet train, whole loop with the baseline loader (img/s)", statistics.median(rates),
                  plain_rate, "img/s", "(recorded: loader-bound on a small CPU)", True,
                  {"batch": LENET_BATCH, "loader_workers": workers, "epochs_timed": len(rates)})


def run(repeats: int) -> list[Result]:
    lenet = _lenet(repeats)
    return [lenet, _alexnet(repeats), _full_train(repeats, lenet.theirs)]
