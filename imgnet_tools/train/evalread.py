"""Deterministic evaluation batches over a split's shards: every sample once, with its key.

What ``imgnet predict`` and the per-epoch validation of ``imgnet train`` read: PIL decodes each
``KEY.jpg``, resizes the short side to ``size / 0.875`` and takes the centre ``size`` square (the
standard ImageNet evaluation crop; at 224 that is resize 256, crop 224), no flip. DataLoader
workers split the shards (or, with fewer shards than workers, the samples) between them, as the
baseline loader does, so every sample is read exactly once. Keys are the pool manifest's keys
(``KEY.json``'s ``key``; the tar member name when a sample has no json).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from imgnet_tools.errors import InputError
from imgnet_tools.loader.augment import decode_rgb, normalize_batch
from imgnet_tools.loader.baseline import consumer_samples
from imgnet_tools.loader.labels import parse_cls_bytes
from imgnet_tools.loader.shardset import ShardSet

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

CROP_FRACTION = 0.875


def center_crop(img: "Image.Image", size: int) -> "np.ndarray":
    """Short side to ``round(size / 0.875)``, then the centre ``size`` x ``size`` (HWC uint8 array)."""
    import numpy as np
    from PIL import Image

    short = max(size, int(round(size / CROP_FRACTION)))
    scale = short / min(img.width, img.height)
    w, h = max(size, int(round(img.width * scale))), max(size, int(round(img.height * scale)))
    img = img.resize((w, h), Image.Resampling.BILINEAR)
    left, top = (w - size) // 2, (h - size) // 2
    return np.array(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def sample_key(sample: dict[str, object]) -> str:
    """The pool key of a shard sample (``KEY.json``'s ``key``, else the member name)."""
    meta = sample.get("json")
    if isinstance(meta, (bytes, bytearray)):
        try:
            key = json.loads(meta).get("key")
            if isinstance(key, str) and key:
                return key
        except (ValueError, AttributeError):
            pass
    return str(sample["__key__"])


class EvalDataset(IterableDataset):  # type: ignore[type-arg]
    """(key, HWC uint8 tensor, label) for every sample of ``shards``, split over the workers."""

    def __init__(self, shards: ShardSet, size: int) -> None:
        self.shards, self.size = shards, size

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor, int]]:
        info = get_worker_info()
        workers, wid = (info.num_workers, info.id) if info else (1, 0)
        for sample in consumer_samples(self.shards, wid, workers):
            img = center_crop(decode_rgb(sample["jpg"]), self.size)
            yield sample_key(sample), torch.from_numpy(img), parse_cls_bytes(sample["cls"])  # type: ignore[arg-type]


def eval_batches(shards: ShardSet, size: int, batch_size: int, workers: int, device: torch.device,
                 layout: str = "NCHW") -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:
    """(keys, normalised fp32 images on ``device``, labels) batches covering the split once."""
    import multiprocessing

    context = "fork" if workers and "fork" in multiprocessing.get_all_start_methods() else None
    loader = DataLoader(EvalDataset(shards, size), batch_size=batch_size, num_workers=workers,
                        pin_memory=device.type == "cuda", multiprocessing_context=context)
    try:
        for keys, images, labels in loader:
            images = images.to(device, non_blocking=True)
            yield list(keys), normalize_batch(images, layout, "fp32"), labels.to(device)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"reading {shards.root} failed ({first}): an image there cannot be decoded; run "
                         "`imgnet verify` on the manifest and shard it again.") from exc
