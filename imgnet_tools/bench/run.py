"""``imgnet bench``: the stage entry point (:class:`BenchParams`, :func:`bench`, :func:`outputs_complete`).

Everything that can be checked is checked here, before any process starts: the shards and their
indexes, the GPU count, the output path. Then one process per rank runs
:func:`imgnet_tools.bench.worker.run_rank` (``torch.multiprocessing`` spawn, a free local port for
the rendezvous) and the parent turns their raw timings into the report, written atomically.
"""

from __future__ import annotations

import datetime
import importlib.metadata as metadata
import json
import os
import platform
import socket
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from imgnet_tools import __version__
from imgnet_tools.bench.params import BenchParams
from imgnet_tools.execute.params import available_cores
from imgnet_tools.errors import ImgnetError, InputError, OutputExistsError, SchemaError
from imgnet_tools.loader.shardset import ShardSet, find_shards
from imgnet_tools.manifest.atomic import atomic_write_text

__all__ = ["BenchParams", "BenchResult", "bench", "outputs_complete"]


@dataclass
class BenchResult:
    """The report document (schema ``bench_report``) and where it was written, if anywhere."""

    report: dict[str, Any]
    out: str | None

    def to_dict(self) -> dict[str, Any]:
        """The report itself (what ``--json`` prints)."""
        return self.report


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _versions() -> dict[str, Any]:
    import torch

    cudnn = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    dali = next((v for v in (_version(d) for d in ("nvidia-dali-cuda130", "nvidia-dali-cuda120", "nvidia-dali-cuda110")) if v), None)
    return {"imgnet": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": cudnn, "dali": dali, "webdataset": _version("webdataset"),
            "pillow": _version("pillow-simd") or _version("pillow")}


def check_devices(params: BenchParams) -> None:
    """Refuse more GPUs than are visible, naming what is there and what to pass instead."""
    if params.gpus == 0:
        return
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if params.gpus > visible:
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" (CUDA_VISIBLE_DEVICES={env})" if env is not None else ""
        instead = f"--gpus {visible}, or " if visible else ""
        raise InputError(f"asked for {params.gpus} GPU(s) but {visible} visible{where}; pass {instead}--gpus 0 "
                         f"--procs P to run the same code on the CPU (gloo).")


def _check_out(params: BenchParams) -> None:
    if params.out and Path(params.out).exists() and not params.overwrite:
        raise OutputExistsError(f"{params.out} already exists; pass --overwrite to replace it.")


def _spawn(params: BenchParams, workers: int, threads: int) -> list[dict[str, Any]]:
    """Run every rank and return their raw records; a failed rank is a run-level error."""
    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException

    from imgnet_tools.bench.worker import run_rank

    with tempfile.TemporaryDirectory(prefix="imgnet-bench-") as scratch:
        try:
            mp.start_processes(run_rank, args=(params, _free_port(), scratch, workers, threads),
                               nprocs=params.world, join=True, start_method="spawn")
        except ProcessException as exc:
            known = sorted(Path(scratch).glob("rank-*.error"))
            if known:
                raise ImgnetError(known[0].read_text()) from exc
            tail = " | ".join(str(exc).strip().splitlines()[-3:])
            raise ImgnetError(f"bench rank {exc.error_index} failed: {tail}") from exc
        return [json.loads(p.read_text()) for p in sorted(Path(scratch).glob("rank-*.json"))]


def _context(params: BenchParams, shards: ShardSet, workers: int, threads: int, started: float) -> dict[str, Any]:
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - started, 2),
        "params": {**asdict(params), "workers": workers, "threads": threads},
        "dataset": {"shards": str(shards.root), "split": shards.split, "shard_files": len(shards.tars),
                    "samples": shards.samples, "num_classes": shards.num_classes},
        "host": {"hostname": platform.node(), "cpus": available_cores(), "platform": platform.platform()},
        "versions": _versions(),
    }


def bench(params: BenchParams, progress: Callable[[int], None] | None = None) -> BenchResult:
    """Time the loader, the model and both together as asked; write ``params.out`` if set.

    ``progress`` is called with 1 when the ranks have finished (they run in other processes).
    """
    from imgnet_tools.bench.report import build_report

    started = time.perf_counter()
    shards = find_shards(params.shards, params.split)
    check_devices(params)
    _check_out(params)
    workers = params.workers if params.workers is not None else max(1, available_cores() // params.world)
    threads = params.threads or max(1, available_cores() // params.world)
    ranks = _spawn(params, workers, threads)
    if progress is not None:
        progress(1)
    report = build_report(params, ranks, _context(params, shards, workers, threads, started))
    if params.out:
        atomic_write_text(params.out, json.dumps(report, indent=2) + "\n")
    return BenchResult(report, params.out)


def outputs_complete(params: BenchParams) -> bool:
    """True when ``params.out`` holds a valid report of a run with these same parameters."""
    from imgnet_tools.manifest.schemas import validate_json

    if not params.out or not Path(params.out).is_file():
        return False
    try:
        doc = json.loads(Path(params.out).read_text(encoding="utf-8"))
        validate_json(doc, "bench_report", params.out)
    except (ValueError, SchemaError):
        return False
    asked = {k: v for k, v in asdict(params).items() if k != "overwrite"}
    return all(doc["params"].get(k) == v for k, v in asked.items() if v is not None)
