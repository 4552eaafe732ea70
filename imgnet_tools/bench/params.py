"""Parameters of ``imgnet bench`` (field names are the CLI option names, dashes as underscores)."""

from __future__ import annotations

from dataclasses import dataclass

from imgnet_tools.errors import InputError

MODES = ("loader", "model", "e2e", "all")
LOADER_CHOICES = ("dali", "baseline", "nvjpeg", "both", "all")
MODEL_CHOICES = ("alexnet2012", "alexnet", "lenet5")
# The smallest input each model accepts: AlexNet's three max-pools need 63 px, LeNet-5's two
# 5x5 convolutions and two poolings 32 px (its native size).
MIN_IMAGE_SIZE = {"alexnet2012": 63, "alexnet": 63, "lenet5": 32}


@dataclass(frozen=True)
class BenchParams:
    """One benchmark run.

    ``gpus`` > 0 runs one process per GPU with NCCL; ``gpus == 0`` runs ``procs`` CPU processes with
    gloo (how CI exercises DDP). ``steps`` batches are timed per repeat after ``warmup`` untimed
    ones; the report gives the median of ``repeats``. ``workers`` (DALI threads and DataLoader
    workers per process) and ``threads`` (torch CPU threads per process) default to this machine's
    cores divided by the processes. ``image_size`` below 224 is the reduced-resolution setting for
    CPU runs and CI (the adaptive pool keeps AlexNet's shapes valid; FLOPs shrink accordingly).
    """

    shards: str
    gpus: int = 1
    procs: int = 1
    mode: str = "all"
    model: str = "alexnet2012"
    loader: str = "both"
    batch_size: int = 256
    image_size: int = 224
    steps: int = 50
    warmup: int = 10
    repeats: int = 3
    workers: int | None = None
    threads: int | None = None
    dtype: str = "fp32"
    layout: str = "NCHW"
    compile: bool = False
    hw_decoder_load: float = 0.65
    shuffle_buffer: int = 1024
    seed: int = 0
    split: str = "train"
    out: str | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        choices = {"mode": MODES, "loader": LOADER_CHOICES, "model": MODEL_CHOICES,
                   "dtype": ("fp32", "fp16", "bf16"), "layout": ("NCHW", "NHWC")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}.")
        if self.gpus < 0 or self.procs < 1:
            raise InputError("gpus must be >= 0 and procs >= 1.")
        if self.gpus > 0 and self.procs != 1:
            raise InputError("procs is for CPU runs (gpus 0); with GPUs there is one process per GPU.")
        for name in ("batch_size", "steps", "repeats", "shuffle_buffer"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1.")
        if self.warmup < 0:
            raise InputError("warmup must be >= 0.")
        if self.image_size < MIN_IMAGE_SIZE[self.model]:
            raise InputError(f"image_size must be >= {MIN_IMAGE_SIZE[self.model]} for {self.model} (the smallest input "
                             f"its convolutions and pools accept); AlexNet needs 63, LeNet-5 32.")
        if (self.workers is not None and self.workers < 0) or (self.threads is not None and self.threads < 1):
            raise InputError("workers must be >= 0 and threads >= 1.")
        if not 0.0 <= self.hw_decoder_load <= 1.0:
            raise InputError("hw_decoder_load must be between 0 and 1.")

    @property
    def world(self) -> int:
        """Number of processes (ranks)."""
        return self.gpus if self.gpus > 0 else self.procs

    @property
    def loaders(self) -> tuple[str, ...]:
        """Loaders to time, in report order."""
        if self.loader == "both":
            return ("dali", "baseline")
        if self.loader == "all":
            return ("dali", "nvjpeg", "baseline")
        return (self.loader,)

    @property
    def modes(self) -> tuple[str, ...]:
        """Modes to run, in report order."""
        return ("loader", "model", "e2e") if self.mode == "all" else (self.mode,)
