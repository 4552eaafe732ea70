"""``imgnet gpu-check``: the GPU figures in one short run, on a host with only PyTorch + torchvision.

What it does, step by step (each step is timed and recorded, a failed step does not stop the
others, and steps that would start after the time budget are skipped and say so):

1. ``environment``: versions, the device, which optional modules import (DALI, torchvision,
   webdataset; nltk and Ray are not needed and are only reported);
2. ``data``: seeded photo-like JPEGs (500x375) written by :mod:`.gpudata` and sharded by the real
   ``imgnet shard``;
3. ``loader:NAME``: each loader alone (``nvjpeg``, ``dali`` when importable, ``baseline``), images/s
   of augmented batches on the device; ``decode:nvjpeg``: torchvision's batched nvJPEG decode of
   bytes held in memory, the ceiling the nvjpeg loader is measured against;
4. ``model:VARIANT``: AlexNet (2012; ``model``) training steps on synthetic device data: fp32 NCHW, bf16 NCHW,
   bf16 channels-last, fp16 channels-last (gradient scaler), and bf16 channels-last under
   ``torch.compile``;
5. ``e2e:NAME``: each loader feeding the fastest bf16 channels-last model (compiled when that
   helped).

The goals of the issue are then checked (AlexNet bf16 model-only >= 38k img/s on one H100; the
nvjpeg loader >= 0.85x its decode ceiling; the GPU loader >= 3x the PIL baseline; end to end >=
0.9x min(loader, model)) and written, with every figure, to ``OUT/gpu_check.json`` (schema
``gpu_check``) and ``OUT/summary.txt``. Timing follows :mod:`.timing`: warm-up excluded, the device
synchronised, the median of the repeats.

``dry_run`` runs every step with tiny sizes on the CPU (what ``make test`` exercises): 24 small
images, batches of 4, two timed steps, one torch thread, LeNet-5 at 32 px in place of AlexNet
(``--model alexnet2012`` keeps AlexNet, at 64 px), and ``torch.compile(backend="eager")`` so that the
compile path is traced without a C++ toolchain. Without torchvision the dry run's nvjpeg steps
use the PIL decoder as a labelled stand-in. Nothing here imports nltk, Ray or (unless present) DALI.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.metadata as metadata
import json
import os
import platform
import statistics
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from imgnet_tools import __version__
from imgnet_tools.errors import InputError, OutputExistsError
from imgnet_tools.manifest.atomic import atomic_write_text
from imgnet_tools.manifest.schemas import format_version, validate_json

SCHEMA = "gpu_check"
# (name, amp, channels_last, compile)
VARIANTS = (("fp32-nchw", "off", False, False), ("bf16-nchw", "bf16", False, False),
            ("bf16-cl", "bf16", True, False), ("fp16-cl", "fp16", True, False), ("bf16-cl-compile", "bf16", True, True))
GOAL_MODEL_H100 = 38_000.0


@dataclass(frozen=True)
class GpuCheckParams:
    """``imgnet gpu-check --out DIR`` options (field names = CLI option names)."""

    out: str
    dry_run: bool = False
    images: int = 4096
    image_size: int = 224
    batch_size: int = 256
    steps: int = 30
    warmup: int = 5
    repeats: int = 3
    workers: int | None = None
    budget: float = 420.0
    compile: bool = True
    model: str | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        from imgnet_tools.bench.params import MIN_IMAGE_SIZE

        for name in ("images", "batch_size", "steps", "repeats"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1.")
        if self.model is not None and self.model not in MIN_IMAGE_SIZE:
            raise InputError(f"model must be one of {', '.join(MIN_IMAGE_SIZE)}, not {self.model!r}.")
        if self.image_size < MIN_IMAGE_SIZE[self.model or "alexnet2012"] or self.warmup < 0 or self.budget <= 0:
            raise InputError("image_size must be >= 63 for AlexNet (32 for LeNet-5), warmup >= 0 and budget > 0.")

    def effective(self) -> "GpuCheckParams":
        """The sizes actually used: the dry run's tiny ones, or these; ``model`` always set."""
        if not self.dry_run:
            return replace(self, model=self.model or "alexnet2012")
        model = self.model or "lenet5"
        return replace(self, images=24, image_size=32 if model == "lenet5" else 64, batch_size=4, steps=2, warmup=1,
                       repeats=1, workers=min(self.workers or 1, 2), model=model)


@dataclass
class StepRecord:
    """One step: ``ok``, ``failed`` (reason = the error) or ``skipped`` (reason says why)."""

    name: str
    status: str
    seconds: float
    reason: str = ""
    results: dict[str, Any] = field(default_factory=dict)


@dataclass
class GpuCheckResult:
    """The report document and where it was written."""

    report: dict[str, Any]
    json_path: str
    summary_path: str
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return self.report


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def importable(module: str) -> bool:
    """Whether ``module`` imports here (any failure counts as no: a broken install is no install)."""
    try:
        importlib.import_module(module)
        return True
    except Exception:  # noqa: BLE001 - optional dependencies fail in many ways (ImportError, OSError, CUDA)
        return False


class _Run:
    """The steps of one check: budget, records, and the objects later steps reuse."""

    def __init__(self, params: GpuCheckParams, out: Path, device: Any, log: Callable[[str], None]) -> None:
        self.p, self.out, self.device, self.log = params, out, device, log
        self.t0 = time.perf_counter()
        self.steps: list[StepRecord] = []
        self.shards: Any = None
        self.models: dict[str, Any] = {}
        self.rates: dict[str, float] = {}
        self.notes: dict[str, str] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def step(self, name: str, fn: Callable[[], dict[str, Any]], skip: str = "") -> dict[str, Any] | None:
        """Run ``fn`` as step ``name``; record ok / failed / skipped. Returns its results when ok."""
        if skip or self.elapsed() > self.p.budget:
            reason = skip or f"time budget of {self.p.budget:.0f} s spent before this step"
            self.steps.append(StepRecord(name, "skipped", 0.0, reason))
            self.log(f"[gpu-check] {name}: skipped ({reason})")
            return None
        t = time.perf_counter()
        try:
            results = fn()
        except Exception as exc:  # noqa: BLE001 - a failed step is a row of the report; the run goes on
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            with open(self.out / "gpu_check.log", "a", encoding="utf-8") as fh:
                fh.write(f"== {name}\n{traceback.format_exc()}\n")
            self.steps.append(StepRecord(name, "failed", round(time.perf_counter() - t, 3), f"{type(exc).__name__}: {first}"))
            self.log(f"[gpu-check] {name}: FAILED ({type(exc).__name__}: {first}); traceback in gpu_check.log")
            return None
        seconds = round(time.perf_counter() - t, 3)
        self.steps.append(StepRecord(name, "ok", seconds, "", results))
        rate = results.get("images_per_s")
        self.log(f"[gpu-check] {name}: ok in {seconds:.1f} s" + (f", {rate:,.0f} img/s" if rate else ""))
        return results

    # ------------------------------------------------------------------------------------------

    def timed(self, fn: Callable[[], object], per_call: int) -> dict[str, Any]:
        from imgnet_tools.bench.timing import timed_repeats

        times = timed_repeats(fn, self.p.steps, self.p.warmup, self.p.repeats, self.device)
        median = statistics.median(times)
        rate = per_call * self.p.steps / median
        return {"images_per_s": round(rate, 2), "step_ms": round(1000 * median / self.p.steps, 3),
                "repeats_s": [round(t, 5) for t in times]}

    def loader_format(self) -> tuple[str, str]:
        """(layout, dtype) the loaders emit: NHWC bf16 on a GPU (channels-last training), NCHW fp32 on the CPU."""
        return ("NHWC", "bf16") if self.device.type == "cuda" else ("NCHW", "fp32")


def _environment(run: _Run) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    props = torch.cuda.get_device_properties(0) if cuda else None
    optional = {m: importable(m) for m in ("torchvision", "nvidia.dali", "webdataset")}
    return {
        "imgnet": __version__, "python": platform.python_version(), "platform": platform.platform(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device": run.device.type, "device_name": torch.cuda.get_device_name(0) if cuda else platform.machine(),
        "device_count": torch.cuda.device_count() if cuda else 0,
        "device_memory_gib": round(props.total_memory / 2**30, 1) if props is not None else None,
        "cpus": os.cpu_count(),
        "torchvision": _version("torchvision") if optional["torchvision"] else None,
        "dali": next((v for v in map(_version, ("nvidia-dali-cuda130", "nvidia-dali-cuda120")) if v), None)
        if optional["nvidia.dali"] else None,
        "webdataset": _version("webdataset"), "pyarrow": _version("pyarrow"),
        "pillow": _version("pillow-simd") or _version("pillow"), "importable": optional,
        "install": os.environ.get("IMGNET_GPU_INSTALL", "as found"), "model": run.p.model,
    }


def _data(run: _Run) -> dict[str, Any]:
    from imgnet_tools.bench.gpudata import make_shards
    from imgnet_tools.loader.shardset import find_shards

    w, h = (96, 72) if run.p.dry_run else (500, 375)
    per_shard = 8 if run.p.dry_run else 256
    shard_dir, size = make_shards(run.out / "data", run.p.images, w, h, run.p.workers, per_shard)
    run.shards = find_shards(shard_dir)
    return {"images": run.p.images, "image_bytes": size, "mean_kb": round(size / run.p.images / 1024, 1),
            "width": w, "height": h, "shards": len(run.shards.tars), "dir": str(shard_dir)}


def _nvjpeg_decode(run: _Run) -> tuple[Any, str]:
    """The nvjpeg loader's decoder: torchvision's, or in a dry run without it the PIL stand-in."""
    from imgnet_tools.loader import nvjpeg

    if importable("torchvision"):
        return nvjpeg.torchvision_decode(), "torchvision.io.decode_jpeg"
    if run.p.dry_run:
        return nvjpeg.pil_decode, "PIL stand-in (torchvision missing; dry run only)"
    return nvjpeg.torchvision_decode(), ""  # raises the DependencyError that says what to install


def _batches(run: _Run, name: str) -> tuple[Any, str]:
    from imgnet_tools.loader import nvjpeg
    from imgnet_tools.loader.params import LoaderParams
    from imgnet_tools.loader.select import train_batches

    layout, dtype = run.loader_format()
    workers = run.p.workers if run.p.workers is not None else max(1, (os.cpu_count() or 2) - 1)
    lp = LoaderParams(batch_size=run.p.batch_size, image_size=run.p.image_size, layout=layout, dtype=dtype,
                      workers=workers, seed=0, shuffle_buffer=min(1024, run.p.images))
    if name == "nvjpeg":
        decode, how = _nvjpeg_decode(run)
        return nvjpeg.train_batches(run.shards, lp, 0, 1, run.device, decode=decode), how
    return train_batches(name, run.shards, lp, 0, 1, run.device), name


def _loader(run: _Run, name: str) -> dict[str, Any]:
    import gc

    batches, how = _batches(run, name)
    try:
        result = run.timed(lambda: next(batches), run.p.batch_size)
    finally:
        batches.close()
        gc.collect()
    run.rates[f"loader:{name}"] = result["images_per_s"]
    return {**result, "decoder": how, "workers": run.p.workers}


def _decode_ceiling(run: _Run) -> dict[str, Any]:
    from imgnet_tools.loader import nvjpeg

    decode, how = _nvjpeg_decode(run)
    tars = [str(t) for t in run.shards.tars]
    datas = [d for d, _ in nvjpeg._samples(tars, 0, 1, True)][: 4 * run.p.batch_size]
    it = nvjpeg.decode_only(datas, run.p.batch_size, run.device, decode)
    result = run.timed(lambda: next(it), run.p.batch_size)
    run.rates["decode:nvjpeg"] = result["images_per_s"]
    return {**result, "decoder": how, "distinct_images": len(datas)}


def _step_for(run: _Run, variant: tuple[str, str, bool, bool]) -> Any:
    import torch

    from imgnet_tools.bench.models import build_model
    from imgnet_tools.train.step import TrainStep

    name, amp, channels_last, compiled = variant
    if name not in run.models:
        torch.manual_seed(0)
        backend: bool | str = ("eager" if run.p.dry_run else "inductor") if compiled else False
        run.models[name] = TrainStep(build_model(str(run.p.model), 1000), run.device, amp, channels_last, backend)
    return run.models[name]


def _synthetic(run: _Run, variant: tuple[str, str, bool, bool]) -> tuple[Any, Any, str]:
    """A device batch shaped as the loaders give it: NHWC for channels-last variants (bf16 on a GPU)."""
    import torch

    b, s = run.p.batch_size, run.p.image_size
    _, amp, channels_last, _ = variant
    dtype = torch.float32 if amp == "off" or run.device.type == "cpu" else torch.bfloat16
    layout = "NHWC" if channels_last else "NCHW"
    shape = (b, s, s, 3) if channels_last else (b, 3, s, s)
    x = torch.randn(shape, device=run.device).to(dtype)
    return x, torch.randint(0, 1000, (b,), device=run.device), layout


def _model(run: _Run, variant: tuple[str, str, bool, bool]) -> dict[str, Any]:
    from imgnet_tools.bench.alexnet import training_flops_per_image
    from imgnet_tools.bench.timing import synchronize

    stepper = _step_for(run, variant)
    x, y, layout = _synthetic(run, variant)
    t = time.perf_counter()
    stepper.step(x, y, layout)  # the first step builds cuDNN plans (and compiles, when asked): timed apart
    synchronize(run.device)
    first = time.perf_counter() - t
    result = run.timed(lambda: stepper.step(x, y, layout), run.p.batch_size)
    flops = training_flops_per_image(stepper.module, run.p.image_size)
    run.rates[f"model:{variant[0]}"] = result["images_per_s"]
    return {**result, "first_step_s": round(first, 3), "amp": stepper.amp, "channels_last": stepper.channels_last,
            "compiled": variant[3], "tflops": round(flops * result["images_per_s"] / 1e12, 3),
            "gflop_per_image": round(flops / 1e9, 3)}


def _best_variant(run: _Run) -> tuple[str, str, bool, bool]:
    """The faster of bf16 channels-last eager and compiled (compile only where it helps)."""
    eager = run.rates.get("model:bf16-cl", 0.0)
    compiled = run.rates.get("model:bf16-cl-compile", 0.0)
    name = "bf16-cl-compile" if compiled > eager else "bf16-cl"
    return next(v for v in VARIANTS if v[0] == name)


def _e2e(run: _Run, name: str) -> dict[str, Any]:
    import gc

    variant = _best_variant(run)
    stepper = _step_for(run, variant)
    batches, how = _batches(run, name)
    layout, _ = run.loader_format()
    try:
        result = run.timed(lambda: stepper.step(*next(batches), layout=layout), run.p.batch_size)
    finally:
        batches.close()
        gc.collect()
    run.rates[f"e2e:{name}"] = result["images_per_s"]
    return {**result, "model": variant[0], "decoder": how}


def goals(rates: dict[str, float], device: str, device_name: str) -> list[dict[str, Any]]:
    """The issue's goals against the measured rates (``met`` is None when a figure is missing or on the CPU)."""
    def goal(name: str, value: float | None, target: float | None, note: str) -> dict[str, Any]:
        met = None if value is None or target is None or device != "cuda" else value >= target
        return {"name": name, "value": None if value is None else round(value, 3),
                "target": None if target is None else round(target, 3), "met": met, "note": note}

    model = rates.get("model:bf16-cl-compile", 0.0) or None
    model = max(filter(None, [model, rates.get("model:bf16-cl")]), default=None)
    gpu_loaders = {n: rates[f"loader:{n}"] for n in ("nvjpeg", "dali") if f"loader:{n}" in rates}
    best = max(gpu_loaders, key=lambda n: gpu_loaders[n], default=None)
    base = rates.get("loader:baseline")
    h100 = "H100" in device_name
    out = [goal("alexnet_bf16_model_only_img_s", model, GOAL_MODEL_H100 if h100 else None,
                "AlexNet (2012) bf16 training step on one H100 (about 20% of its roofline)"
                + ("" if h100 else f"; the 38k target is for an H100, this is {device_name}"))]
    ceiling = rates.get("decode:nvjpeg")
    nv = rates.get("loader:nvjpeg")
    out.append(goal("nvjpeg_loader_vs_decode_ceiling", nv / ceiling if nv and ceiling else None, 0.85,
                    "nvjpeg loader images/s over torchvision's decode-only images/s"))
    out.append(goal("gpu_loader_vs_pil_baseline", gpu_loaders[best] / base if best and base else None, 3.0,
                    f"best GPU loader ({best or 'none'}) over the PyTorch DataLoader + Pillow baseline, same cores"))
    for n in ("nvjpeg", "dali"):
        e2e, loader = rates.get(f"e2e:{n}"), rates.get(f"loader:{n}")
        bound = min(loader, model) if loader and model else None
        out.append(goal(f"e2e_{n}_vs_min_loader_model", e2e / bound if e2e and bound else None, 0.9,
                        f"end to end with {n} over min(loader-only, model-only)"))
    return out


def summary_text(doc: dict[str, Any]) -> str:
    """The short text summary (summary.txt)."""
    env = doc["environment"]
    lines = [f"imgnet gpu-check {'(dry run, CPU) ' if doc['dry_run'] else ''}on {env.get('device_name')} "
             f"({env.get('device')}), torch {env.get('torch')}, CUDA {env.get('cuda')}, torchvision {env.get('torchvision')}, "
             f"DALI {env.get('dali')}; {doc['elapsed_s']:.0f} s",
             f"{'step':<24}{'status':<9}{'images/s':>12}{'step ms':>10}  note"]
    for s in doc["steps"]:
        r = s["results"]
        rate = f"{r['images_per_s']:,.0f}" if "images_per_s" in r else ""
        ms = f"{r['step_ms']:.2f}" if "step_ms" in r else ""
        note = s["reason"] or r.get("decoder", "") or (f"{r['tflops']} TFLOP/s" if "tflops" in r else "")
        lines.append(f"{s['name']:<24}{s['status']:<9}{rate:>12}{ms:>10}  {note}")
    for g in doc["goals"]:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[g["met"]]
        value = "-" if g["value"] is None else f"{g['value']:,.3f}"
        target = "" if g["target"] is None else f" (goal >= {g['target']:,})"
        lines.append(f"goal {g['name']}: {value}{target}: {verdict}")
    return "\n".join(lines) + "\n"


def _device(params: GpuCheckParams) -> Any:
    import torch

    if params.dry_run or not torch.cuda.is_available():
        return torch.device("cpu")
    torch.backends.cudnn.benchmark = True
    return torch.device("cuda", 0)


def gpu_check(params: GpuCheckParams, progress: Callable[[int], None] | None = None,
              log: Callable[[str], None] | None = None) -> GpuCheckResult:
    """Run every step (see the module docstring); write ``OUT/gpu_check.json`` and ``OUT/summary.txt``."""
    out = Path(params.out)
    if (out / "gpu_check.json").exists() and not params.overwrite:
        raise OutputExistsError(f"{out}/gpu_check.json exists; pass --overwrite or another --out.")
    p = params.effective()
    device = _device(p)
    if p.dry_run:
        import torch

        torch.set_num_threads(1)  # a rehearsal: no intra-op thread pool spinning against the loaders
    if device.type != "cuda" and not p.dry_run:
        raise InputError("torch sees no CUDA GPU here; run on a GPU host, or pass --dry-run for the CPU rehearsal.")
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.log").write_text("", encoding="utf-8")
    run = _Run(p, out, device, log or (lambda _msg: None))
    env = run.step("environment", lambda: _environment(run)) or {}
    run.step("data", lambda: _data(run))
    no_data = "" if run.shards is not None else "no shards (the data step did not finish)"
    dali = "" if env.get("importable", {}).get("nvidia.dali") else "DALI is not importable here"
    run.step("loader:nvjpeg", lambda: _loader(run, "nvjpeg"), no_data)
    run.step("decode:nvjpeg", lambda: _decode_ceiling(run), no_data)
    run.step("loader:dali", lambda: _loader(run, "dali"), no_data or dali)
    run.step("loader:baseline", lambda: _loader(run, "baseline"), no_data)
    for variant in VARIANTS:
        skip = "torch.compile not asked for (--no-compile)" if variant[3] and not p.compile else ""
        run.step(f"model:{variant[0]}", lambda v=variant: _model(run, v), skip)  # type: ignore[misc]
    for name in ("nvjpeg", "dali", "baseline"):
        skip = no_data or (dali if name == "dali" else "")
        run.step(f"e2e:{name}", lambda n=name: _e2e(run, n), skip)  # type: ignore[misc]
        if progress is not None:
            progress(1)
    doc = {"format_version": format_version(SCHEMA), "created_by": f"imgnet {__version__}",
           "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "dry_run": p.dry_run, "params": asdict(p), "environment": env,
           "steps": [asdict(s) for s in run.steps], "rates": run.rates,
           "goals": goals(run.rates, device.type, str(env.get("device_name", ""))),
           "elapsed_s": round(run.elapsed(), 2)}
    validate_json(doc, SCHEMA, "gpu check report")
    text = summary_text(doc)
    atomic_write_text(out / "gpu_check.json", json.dumps(doc, indent=2) + "\n")
    atomic_write_text(out / "summary.txt", text)
    return GpuCheckResult(doc, str(out / "gpu_check.json"), str(out / "summary.txt"), text)
