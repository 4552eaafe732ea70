"""The DALI pipeline over our shards (the only module that imports nvidia.dali).

Training pipeline, per rank: ``fn.readers.webdataset`` over the split's tars with our ``wds2idx``
indexes, sharded with ``shard_id=rank`` / ``num_shards=world`` and ``pad_last_batch`` so every
rank sees the same number of batches; ``stick_to_shard`` keeps a rank on its own files (page
cache), ``random_shuffle`` with ``initial_fill`` and a seed. Decode with ``device="mixed"`` (nvJPEG,
``hw_decoder_load`` of the JPEGs to the hardware decoder) when a GPU is given, or on the CPU with
``device_id=None``; then ``fn.random_resized_crop``, and ``fn.crop_mirror_normalize`` for the flip,
normalisation, layout (CHW/HWC) and dtype (fp16/fp32; bf16 is cast in torch, DALI has no bf16).
Batches come out as torch tensors through ``DALIGenericIterator``.

The check pipeline reads in file order without shuffling and resizes each image to a fixed square
(linear, antialiased), so that its pixels can be compared with PIL's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import nvidia.dali.fn as fn
import nvidia.dali.types as types
from nvidia.dali import pipeline_def
from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

from imgnet_tools.errors import InputError
from imgnet_tools.loader.augment import AREA, ASPECT, MEAN, STD, torch_dtype
from imgnet_tools.loader.labels import parse_cls
from imgnet_tools.loader.params import LoaderParams
from imgnet_tools.loader.shardset import ShardSet

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from nvidia.dali.pipeline import Pipeline

READER = "Reader"
# Pre-allocation that avoids re-allocations for ImageNet-sized JPEGs (values from DALI's ResNet-50
# example): nvJPEG device and pinned host buffers.
DEVICE_MEMORY_PADDING = 211025920
HOST_MEMORY_PADDING = 140544512


def _read(shards: ShardSet, exts: list[str], rank: int, world: int, shuffle: bool, params: LoaderParams) -> Any:
    """The webdataset reader node: one output per extension, sharded per rank."""
    return fn.readers.webdataset(
        paths=[str(p) for p in shards.tars],
        index_paths=[str(p) for p in shards.indexes],
        ext=exts,
        missing_component_behavior="error",
        shard_id=rank,
        num_shards=world,
        pad_last_batch=True,
        stick_to_shard=True,
        random_shuffle=shuffle,
        initial_fill=params.shuffle_buffer,
        seed=params.seed + rank,
        dont_use_mmap=False,
        name=READER,
    )


def _decode(jpegs: Any, gpu: bool, params: LoaderParams) -> Any:
    if gpu:
        return fn.decoders.image(jpegs, device="mixed", output_type=types.DALIImageType.RGB,
                                 hw_decoder_load=params.hw_decoder_load,
                                 device_memory_padding=DEVICE_MEMORY_PADDING,
                                 host_memory_padding=HOST_MEMORY_PADDING)
    return fn.decoders.image(jpegs, device="cpu", output_type=types.DALIImageType.RGB)


def train_pipeline(shards: ShardSet, params: LoaderParams, rank: int = 0, world: int = 1,
                   device_id: int | None = None) -> "Pipeline":
    """Build (not yet run) the training pipeline; ``device_id=None`` runs it on the CPU only."""

    # device_id=None (CPU only) is valid; DALI's stubs only admit int.
    @pipeline_def(batch_size=params.batch_size, num_threads=max(1, params.workers),
                  device_id=device_id, seed=params.seed + rank, prefetch_queue_depth=2)  # type: ignore[arg-type]
    def pipe() -> tuple[Any, Any]:
        jpegs, cls = _read(shards, ["jpg", "cls"], rank, world, True, params)
        images = _decode(jpegs, device_id is not None, params)
        images = fn.random_resized_crop(images, size=[params.image_size, params.image_size],
                                        random_area=list(AREA), random_aspect_ratio=list(ASPECT),
                                        interp_type=types.DALIInterpType.INTERP_LINEAR, antialias=True)
        images = fn.crop_mirror_normalize(
            images,
            dtype=types.DALIDataType.FLOAT16 if params.dtype == "fp16" else types.DALIDataType.FLOAT,
            output_layout="CHW" if params.layout == "NCHW" else "HWC",
            mean=[m * 255 for m in MEAN], std=[s * 255 for s in STD],
            mirror=fn.random.coin_flip(probability=0.5),
        )
        return images, fn.pad(cls, fill_value=0)

    return pipe()


def check_pipeline(shards: ShardSet, size: int, batch_size: int, workers: int) -> "Pipeline":
    """CPU pipeline in file order: image resized to ``size`` square (uint8 HWC), cls and json bytes."""
    params = LoaderParams(batch_size=batch_size, image_size=size, workers=workers)

    @pipeline_def(batch_size=batch_size, num_threads=max(1, workers), device_id=None, seed=0)  # type: ignore[call-overload]
    def pipe() -> tuple[Any, Any, Any]:
        jpegs, cls, meta = _read(shards, ["jpg", "cls", "json"], 0, 1, False, params)
        images = _decode(jpegs, False, params)
        images = fn.resize(images, resize_x=size, resize_y=size, interp_type=types.DALIInterpType.INTERP_LINEAR, antialias=True)
        return images, fn.pad(cls, fill_value=0), fn.pad(meta, fill_value=0)

    return pipe()


def error_summary(exc: BaseException) -> str:
    """The line of a DALI error that says what is wrong (DALI prefixes it with a Python traceback)."""
    text = str(exc)
    _, found, rest = text.partition("encountered:")
    lines = [line.strip() for line in (rest if found else text).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def build(pipe: "Pipeline", shards: ShardSet) -> None:
    """Build ``pipe``; a reader that cannot open the shards is an InputError naming the cause."""
    try:
        pipe.build()
    except RuntimeError as exc:
        raise InputError(f"DALI cannot read the shards in {shards.root}: {error_summary(exc)}; rewrite them with "
                         f"`imgnet shard MANIFEST --out {shards.root} --overwrite`.") from exc


def epoch_size(pipe: "Pipeline", shards: ShardSet) -> int:
    """Samples the reader holds over all ranks (DALI's own count)."""
    build(pipe, shards)
    return int(pipe.epoch_size(READER))


def iterate_check(pipe: "Pipeline") -> Iterator[tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]]:
    """One pass in file order: (images uint8 NHWC, cls padded, json padded) per batch, padding cut."""
    it = DALIGenericIterator([pipe], ["images", "cls", "json"], reader_name=READER,
                             last_batch_policy=LastBatchPolicy.PARTIAL, auto_reset=False)
    for batch in it:
        yield batch[0]["images"], batch[0]["cls"], batch[0]["json"]


def train_batches(shards: ShardSet, params: LoaderParams, rank: int, world: int,
                  device: "torch.device") -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
    """Endless (images, labels) batches on ``device``; epochs roll over without a pause.

    Every batch is full (``pad_last_batch`` with ``LastBatchPolicy.FILL`` repeats a shard's last
    sample), so DDP ranks stay in step and a rank whose shard is smaller than a batch still works.
    """
    device_id = device.index if device.type == "cuda" else None
    if device.type == "cuda" and device_id is None:
        device_id = 0
    pipe = train_pipeline(shards, params, rank, world, device_id)
    build(pipe, shards)
    cast = params.dtype == "bf16"
    try:
        # The iterator's constructor already runs the first batches, so it sits inside the try.
        it = DALIGenericIterator([pipe], ["images", "cls"], reader_name=READER,
                                 last_batch_policy=LastBatchPolicy.FILL, auto_reset=True)
        while True:
            for batch in it:
                images, cls = batch[0]["images"], batch[0]["cls"]
                labels = parse_cls(cls).to(device, non_blocking=True)
                yield (images.to(torch_dtype("bf16")) if cast else images), labels
    except RuntimeError as exc:
        raise InputError(f"DALI failed reading {shards.root} ({error_summary(exc)}): an image there cannot be "
                         f"decoded; run `imgnet verify` on the manifest and shard it again.") from exc
