"""``imgnet loader check``: DALI's decoded samples against the baseline reader, on the same shards.

Both sides read the split in file order without augmentation and resize every image to the same
``size`` square (linear, antialiased): DALI with its CPU decoder and ``fn.resize``, the baseline with
webdataset + PIL. Samples must be the same (``KEY.json`` bytes equal), labels equal, and the mean
absolute pixel difference of every image within ``tolerance`` (JPEG decoders and resamplers differ
by a few levels, not more). The result also reports the epoch length as DALI's reader counts it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

from imgnet_tools.errors import InputError
from imgnet_tools.loader.shardset import ShardSet, find_shards
from imgnet_tools.manifest.schemas import format_version

SCHEMA = "loader_check"


@dataclass(frozen=True)
class CheckParams:
    """What to compare: a shard directory's split, at ``size`` pixels, at most ``samples`` samples."""

    shards: str
    split: str = "train"
    size: int = 64
    samples: int | None = None
    tolerance: float = 4.0
    workers: int = 2
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.size < 8 or self.workers < 1 or self.batch_size < 1 or self.tolerance < 0:
            raise ValueError("size >= 8, workers >= 1, batch_size >= 1 and tolerance >= 0 are required")
        if self.samples is not None and self.samples < 1:
            raise ValueError("samples must be at least 1")


@dataclass
class CheckResult:
    """Counts and pixel differences; ``ok`` when samples, labels and pixels all agree."""

    shards: str
    split: str
    shard_files: int
    epoch_samples: int
    dali_epoch_size: int
    compared: int
    sample_mismatches: int
    label_mismatches: int
    mean_abs_diff: float
    worst_abs_diff: float
    worst_key: str | None
    tolerance: float
    size: int
    ok: bool
    first_problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (schema ``loader_check``)."""
        return {"format_version": format_version(SCHEMA), **asdict(self)}


def _dali_samples(shards: ShardSet, params: CheckParams) -> tuple[int, Iterator[tuple[Any, int, bytes]]]:
    """DALI's epoch size and its (HWC uint8 array, label, json bytes) samples in file order."""
    from imgnet_tools.loader import dali
    from imgnet_tools.loader.labels import parse_cls

    pipe = dali.check_pipeline(shards, params.size, params.batch_size, params.workers)
    size = dali.epoch_size(pipe, shards)

    def gen() -> Iterator[tuple[Any, int, bytes]]:
        try:
            for images, cls, meta in dali.iterate_check(pipe):
                for img, label, js in zip(images.numpy(), parse_cls(cls).tolist(), meta.numpy(), strict=True):
                    yield img, int(label), bytes(js).rstrip(b"\0")
        except RuntimeError as exc:
            raise InputError(f"DALI failed reading {shards.root} ({dali.error_summary(exc)}): an image there "
                             f"cannot be decoded; run `imgnet verify` on the manifest and shard it again.") from exc

    return size, gen()


def _baseline_samples(shards: ShardSet, size: int) -> Iterator[tuple[Any, int, bytes, str]]:
    """The baseline reader's (HWC uint8 array, label, json bytes, key) in file order."""
    from imgnet_tools.loader.augment import decode_rgb, resize_exact
    from imgnet_tools.loader.baseline import read_samples
    from imgnet_tools.loader.labels import parse_cls_bytes

    for sample in read_samples([str(t) for t in shards.tars]):
        img = resize_exact(decode_rgb(sample["jpg"]), size)
        yield img, parse_cls_bytes(sample["cls"]), bytes(sample.get("json", b"")), str(sample["__key__"])


@dataclass
class _Tally:
    """Running comparison state."""

    diffs: list[float] = field(default_factory=list)
    worst: float = 0.0
    worst_key: str | None = None
    bad_samples: int = 0
    bad_labels: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, dali: tuple[Any, int, bytes], base: tuple[Any, int, bytes, str]) -> None:
        import numpy as np

        (d_img, d_label, d_json), (b_img, b_label, b_json, key) = dali, base
        if d_json != b_json:
            self.bad_samples += 1
            self.problems.append(f"{key}: DALI read a different sample here")
        if d_label != b_label:
            self.bad_labels += 1
            self.problems.append(f"{key}: label {d_label} (DALI) != {b_label} (baseline)")
        diff = float(np.abs(d_img.astype(np.int16) - b_img.astype(np.int16)).mean())
        self.diffs.append(diff)
        if diff >= self.worst:
            self.worst, self.worst_key = diff, key


def check(params: CheckParams, progress: Callable[[int], None] | None = None) -> CheckResult:
    """Compare DALI with the baseline reader sample by sample; run-level problems raise InputError."""
    shards = find_shards(params.shards, params.split)
    dali_size, dali_iter = _dali_samples(shards, params)
    limit = min(shards.samples, params.samples or shards.samples)
    tally = _Tally()
    for dali_sample, base_sample in zip(dali_iter, _baseline_samples(shards, params.size), strict=False):
        tally.add(dali_sample, base_sample)
        if progress is not None:
            progress(1)
        if len(tally.diffs) >= limit:
            break
    if tally.worst > params.tolerance:
        tally.problems.append(f"{tally.worst_key}: mean absolute pixel difference {tally.worst:.2f} > "
                              f"tolerance {params.tolerance}")
    if len(tally.diffs) != limit or dali_size != shards.samples:
        tally.problems.append(f"DALI gave {dali_size} samples per epoch, {len(tally.diffs)} compared; "
                              f"the indexes list {shards.samples}")
    mean = sum(tally.diffs) / len(tally.diffs) if tally.diffs else 0.0
    return CheckResult(
        shards=str(shards.root), split=shards.split, shard_files=len(shards.tars), epoch_samples=shards.samples,
        dali_epoch_size=dali_size, compared=len(tally.diffs), sample_mismatches=tally.bad_samples,
        label_mismatches=tally.bad_labels, mean_abs_diff=round(mean, 4), worst_abs_diff=round(tally.worst, 4),
        worst_key=tally.worst_key, tolerance=params.tolerance, size=params.size, ok=not tally.problems,
        first_problems=tally.problems[:10],
    )
