"""The baseline loader: webdataset + PIL + a torch DataLoader with N workers, same augmentation.

Reading is split over every consumer (``world`` ranks x ``workers`` DataLoader workers): by whole
shards when there are at least as many shards as consumers (each file read once), otherwise by
sample index within every shard (small sets, tests). Each consumer shuffles through a buffer of
``shuffle_buffer`` samples seeded by (seed, rank, worker, epoch). PIL decodes, crops and flips in
the workers; the uint8 batch is normalised on the device by :func:`augment.normalize_batch`.
"""

from __future__ import annotations

import random
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from imgnet_tools.errors import InputError
from imgnet_tools.loader.augment import decode_rgb, normalize_batch, random_resized_crop_flip
from imgnet_tools.loader.labels import parse_cls_bytes
from imgnet_tools.loader.params import LoaderParams
from imgnet_tools.loader.shardset import ShardSet

Sample = dict[str, Any]


def _identity(src: Any) -> Any:
    return src


def read_samples(tars: list[str]) -> Iterator[Sample]:
    """Raw samples (``__key__``, ``jpg``, ``cls``, ``json`` bytes) of ``tars`` in file order."""
    import webdataset as wds  # type: ignore[import-untyped]

    dataset = wds.WebDataset(tars, shardshuffle=False, nodesplitter=_identity, workersplitter=_identity,
                             empty_check=False)
    yield from dataset


def consumer_samples(shards: ShardSet, me: int, consumers: int) -> Iterator[Sample]:
    """The samples consumer ``me`` of ``consumers`` reads: whole shards if enough, else every n-th."""
    tars = [str(t) for t in shards.tars]
    if len(tars) >= consumers:
        yield from read_samples(tars[me::consumers])
        return
    for i, sample in enumerate(read_samples(tars)):
        if i % consumers == me:
            yield sample


def shuffled(samples: Iterator[Sample], buffer: int, rng: random.Random) -> Iterator[Sample]:
    """Samples in a random order drawn through a buffer of ``buffer`` items."""
    pool: list[Sample] = []
    for sample in samples:
        pool.append(sample)
        if len(pool) >= buffer:
            yield pool.pop(rng.randrange(len(pool)))
    rng.shuffle(pool)
    yield from pool


class ShardDataset(IterableDataset):  # type: ignore[type-arg]
    """Endless augmented (HWC uint8 tensor, label) pairs for one rank, split over its workers."""

    def __init__(self, shards: ShardSet, params: LoaderParams, rank: int, world: int) -> None:
        self.shards, self.params, self.rank, self.world = shards, params, rank, world

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        info = get_worker_info()
        workers, wid = (info.num_workers, info.id) if info else (1, 0)
        me, consumers = self.rank * workers + wid, self.world * workers
        epoch, seen = 0, 1
        while seen:  # a consumer left without samples stops instead of spinning
            rng = random.Random(f"{self.params.seed}-{self.rank}-{wid}-{epoch}")
            seen = 0
            for sample in shuffled(consumer_samples(self.shards, me, consumers), self.params.shuffle_buffer, rng):
                img = random_resized_crop_flip(decode_rgb(sample["jpg"]), self.params.image_size, rng)
                seen += 1
                yield torch.from_numpy(img), parse_cls_bytes(sample["cls"])
            epoch += 1


def train_batches(shards: ShardSet, params: LoaderParams, rank: int, world: int,
                  device: "torch.device") -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
    """Endless (images, labels) batches on ``device``, normalised like DALI's."""
    import multiprocessing

    workers = params.workers
    # fork, PyTorch's usual choice on Linux: workers start at once and share the parent's imports.
    context = "fork" if workers and "fork" in multiprocessing.get_all_start_methods() else None
    loader = DataLoader(ShardDataset(shards, params, rank, world), batch_size=params.batch_size,
                        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                        prefetch_factor=4 if workers else None, multiprocessing_context=context)
    try:
        for images, labels in loader:
            images = images.to(device, non_blocking=True)
            yield normalize_batch(images, params.layout, params.dtype), labels.to(device, non_blocking=True)
        raise InputError(f"no samples of {shards.root} reached rank {rank}: {shards.samples} samples for {world} "
                         f"rank(s) x {max(1, workers)} worker(s); pass fewer --workers or --procs.")
    except (OSError, ValueError) as exc:  # PIL's decode errors, re-raised here by the DataLoader
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"the baseline loader failed reading {shards.root} ({first}): an image there cannot be "
                         f"decoded; run `imgnet verify` on the manifest and shard it again.") from exc

