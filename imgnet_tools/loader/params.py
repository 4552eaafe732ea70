"""Loader parameters shared by the DALI and baseline loaders (same names as the CLI options)."""

from __future__ import annotations

from dataclasses import dataclass

LAYOUTS = ("NCHW", "NHWC")
DTYPES = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class LoaderParams:
    """How to read and augment training batches.

    ``workers`` is DALI's CPU thread count and the baseline DataLoader's worker processes (0 reads
    in the calling process). ``shuffle_buffer`` is DALI's ``initial_fill`` and the size of the
    baseline's shuffle buffer. ``hw_decoder_load`` is the share of JPEGs nvJPEG sends to the A100/H100
    hardware decoder (GPU only).
    """

    batch_size: int = 256
    image_size: int = 224
    layout: str = "NCHW"
    dtype: str = "fp32"
    workers: int = 4
    seed: int = 0
    shuffle_buffer: int = 1024
    hw_decoder_load: float = 0.65
    split: str = "train"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {self.layout!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, not {self.dtype!r}")
        if self.batch_size < 1 or self.image_size < 8 or self.workers < 0 or self.shuffle_buffer < 1:
            raise ValueError("batch_size >= 1, image_size >= 8, workers >= 0 and shuffle_buffer >= 1 are required")
        if not 0.0 <= self.hw_decoder_load <= 1.0:
            raise ValueError("hw_decoder_load must be between 0 and 1")
