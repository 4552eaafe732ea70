"""Pick a loader by name without importing DALI (or torchvision, for nvjpeg) unless it is the one asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from imgnet_tools.loader.params import LoaderParams
from imgnet_tools.loader.shardset import ShardSet

if TYPE_CHECKING:  # pragma: no cover
    import torch

LOADERS = ("dali", "baseline", "nvjpeg")


def train_batches(name: str, shards: ShardSet, params: LoaderParams, rank: int, world: int,
                  device: "torch.device") -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
    """Endless normalised (images, labels) batches on ``device`` from loader ``name``."""
    if name == "dali":
        from imgnet_tools.loader import dali

        return dali.train_batches(shards, params, rank, world, device)
    if name == "baseline":
        from imgnet_tools.loader import baseline

        return baseline.train_batches(shards, params, rank, world, device)
    if name == "nvjpeg":
        from imgnet_tools.loader import nvjpeg

        return nvjpeg.train_batches(shards, params, rank, world, device)
    raise ValueError(f"unknown loader {name!r}; choose one of {', '.join(LOADERS)}")
