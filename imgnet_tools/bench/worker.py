"""What one rank does: set up DDP, build the model and loaders, time every asked-for mode.

Runs in a process started by :mod:`imgnet_tools.bench.run` (one per GPU, or ``procs`` on the CPU).
The training step is the real one: forward, cross-entropy, backward (DDP all-reduces the gradients),
SGD step with momentum and weight decay as in the paper; on a GPU under bf16 autocast with
channels_last activations, optionally through ``torch.compile``. Each rank writes its raw timings
to ``rank-N.json`` in the run's scratch directory; the parent turns them into the report.
"""

from __future__ import annotations

import gc
import json
import os
import platform
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn

from imgnet_tools.bench.alexnet import count_parameters, training_flops_per_image
from imgnet_tools.bench.models import build_model
from imgnet_tools.bench.params import BenchParams
from imgnet_tools.bench.timing import synchronize, timed_repeats
from imgnet_tools.errors import ImgnetError
from imgnet_tools.loader.params import LoaderParams
from imgnet_tools.loader.shardset import ShardSet, find_shards

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


def loader_params(params: BenchParams, workers: int) -> LoaderParams:
    """The loader settings a bench run implies."""
    return LoaderParams(batch_size=params.batch_size, image_size=params.image_size, layout=params.layout,
                        dtype=params.dtype, workers=workers, seed=params.seed, shuffle_buffer=params.shuffle_buffer,
                        hw_decoder_load=params.hw_decoder_load, split=params.split)


def _as_model_input(x: torch.Tensor, layout: str, device: torch.device) -> torch.Tensor:
    """NCHW logical view of a loader batch; channels_last memory on a GPU (NHWC needs no copy)."""
    if layout == "NHWC":
        x = x.permute(0, 3, 1, 2)
    if device.type == "cuda":
        return x.contiguous(memory_format=torch.channels_last)
    # The CPU trains in fp32 (no autocast there): fp16/bf16 batches are widened.
    return x.float()


class Trainer:
    """The DDP-wrapped model, its optimizer, and one training step."""

    def __init__(self, params: BenchParams, num_classes: int, device: torch.device) -> None:
        from torch.nn.parallel import DistributedDataParallel

        torch.manual_seed(params.seed)
        self.device, self.layout = device, params.layout
        base = build_model(params.model, num_classes).to(device)
        self.parameters = count_parameters(base)
        self.flops = training_flops_per_image(base, params.image_size)
        if device.type == "cuda":
            base = base.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        ids = [device.index] if device.type == "cuda" else None
        self.ddp = DistributedDataParallel(base, device_ids=ids)
        self.model: Callable[[torch.Tensor], torch.Tensor] = torch.compile(self.ddp) if params.compile else self.ddp
        self.opt = torch.optim.SGD(self.ddp.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        self.loss = nn.CrossEntropyLoss()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Forward, loss, backward (gradient all-reduce), SGD step."""
        x = _as_model_input(x, self.layout, self.device)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            loss = self.loss(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def _synthetic(params: BenchParams, num_classes: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch made on the device, shaped and typed like the loader's."""
    from imgnet_tools.loader.augment import torch_dtype

    s, b = params.image_size, params.batch_size
    shape = (b, 3, s, s) if params.layout == "NCHW" else (b, s, s, 3)
    x = torch.randn(shape, device=device).to(torch_dtype(params.dtype))
    return x, torch.randint(0, num_classes, (b,), device=device)


def _allreduce_ms(numel: int, device: torch.device, runs: int) -> list[float]:
    """Milliseconds of one all-reduce of ``numel`` fp32 values (all gradients), per run."""
    buf = torch.zeros(numel, device=device)
    times = timed_repeats(lambda: dist.all_reduce(buf), 1, 1, runs, device, dist.barrier)
    return [t * 1000.0 for t in times]


def _device(params: BenchParams, rank: int) -> torch.device:
    if params.gpus > 0:
        torch.cuda.set_device(rank)
        return torch.device("cuda", rank)
    return torch.device("cpu")


def _environment(device: torch.device) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {"device_type": device.type, "device_name": name}


def run_rank(rank: int, params: BenchParams, port: int, scratch: str, workers: int, threads: int) -> None:
    """Entry point of one spawned rank (``torch.multiprocessing`` calls it with the rank first)."""
    torch.set_num_threads(threads)
    device = _device(params, rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    # device_id binds NCCL's communicator (and barrier) to this rank's GPU up front.
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=params.world,
                            device_id=device if device.type == "cuda" else None)
    try:
        record = _measure(rank, params, device, workers)
        record.update(_environment(device), rank=rank, backend=backend, pid=os.getpid())
        Path(scratch, f"rank-{rank}.json").write_text(json.dumps(record))
    except ImgnetError as exc:
        # The parent re-raises this message as is; the traceback is only for bugs.
        Path(scratch, f"rank-{rank}.error").write_text(str(exc))
        raise
    finally:
        dist.destroy_process_group()


def _timed(params: BenchParams, device: torch.device, step: Callable[[], object]) -> list[float]:
    return timed_repeats(step, params.steps, params.warmup, params.repeats, device, dist.barrier)


def _time_model(params: BenchParams, trainer: Trainer, num_classes: int, device: torch.device) -> list[float]:
    """Training steps on one synthetic batch that lives on the device: the model's own ceiling."""
    x, y = _synthetic(params, num_classes, device)
    return _timed(params, device, lambda: trainer.step(x, y))


def _time_loader(name: str, params: BenchParams, shards: ShardSet, workers: int, rank: int, device: torch.device,
                 trainer: Trainer | None) -> list[float]:
    """Batches of loader ``name`` on the device: alone, or each fed to a training step."""
    from imgnet_tools.loader.select import train_batches

    batches: Batches = train_batches(name, shards, loader_params(params, workers), rank, params.world, device)
    if trainer is None:
        return _timed(params, device, lambda: next(batches))
    return _timed(params, device, lambda: trainer.step(*next(batches)))


def _measure(rank: int, params: BenchParams, device: torch.device, workers: int) -> dict[str, Any]:
    """Raw timings of every (mode, loader) this run asks for, in seconds per repeat.

    The DDP model is built only when a mode trains; a loader-only run reports the model's size
    but times no all-reduce.
    """
    shards = find_shards(params.shards, params.split)
    num_classes = max(1000, shards.num_classes or 0)
    trains = any(m in ("model", "e2e") for m in params.modes)
    trainer = Trainer(params, num_classes, device) if trains else None
    timings: dict[str, list[float]] = {}
    for mode in params.modes:
        if mode == "model" and trainer is not None:
            timings["model"] = _time_model(params, trainer, num_classes, device)
            continue
        for name in params.loaders:
            key = f"loader:{name}" if mode == "loader" else f"e2e:{name}"
            timings[key] = _time_loader(name, params, shards, workers, rank, device, None if mode == "loader" else trainer)
            gc.collect()  # the finished loader's threads / worker processes go before the next one starts
    synchronize(device)
    if trainer is None:
        base = build_model(params.model, num_classes)
        size, flops = count_parameters(base), training_flops_per_image(base, params.image_size)
    else:
        size, flops = trainer.parameters, trainer.flops
    return {"timings": timings, "allreduce_ms": _allreduce_ms(size, device, 3) if trainer else None,
            "parameters": size, "train_flops_per_image": flops, "num_classes": num_classes}
