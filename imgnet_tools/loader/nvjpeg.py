"""The nvJPEG loader: shards read on the host, JPEGs decoded in batches on the GPU by torchvision.

Needs nothing beyond PyTorch and torchvision (no DALI, no webdataset): a reader thread streams each
consumer's share of the tars with Python's ``tarfile`` (rank ``r`` of ``world`` takes every
``world``-th shard, or every ``world``-th sample when there are fewer shards than ranks), shuffles
through a buffer of ``shuffle_buffer`` samples seeded by (seed, rank, epoch), and queues batches of
raw bytes; the caller's thread hands each batch to ``torchvision.io.decode_jpeg(list, device=...)``
(one batched nvJPEG call on a GPU; libjpeg-turbo on the CPU) and runs the augmentation of
:mod:`imgnet_tools.loader.tensor_augment` on the decoded tensors where they are. Epochs roll over
without a pause and every batch is full.

It is a fallback where DALI is missing and the peer DALI is measured against. torchvision is
imported only when the loader starts; without it the error says what to install. ``decode`` can be
replaced (the tests and the CPU dry run pass :func:`pil_decode`, a real decoder) to exercise
everything else where torchvision is absent.
"""

from __future__ import annotations

import queue
import random
import tarfile
import threading
from typing import Any, Callable, Iterator, Sequence

import torch

from imgnet_tools.errors import DependencyError, InputError
from imgnet_tools.loader.labels import parse_cls_bytes
from imgnet_tools.loader.params import LoaderParams
from imgnet_tools.loader.shardset import ShardSet
from imgnet_tools.loader.tensor_augment import augment

Decode = Callable[[Sequence[bytes], torch.device], list[torch.Tensor]]
PREFETCH = 4  # batches of raw bytes queued ahead of the decoder
_DONE = object()


def torchvision_decode() -> Decode:
    """torchvision's batched ``decode_jpeg`` (nvJPEG on a CUDA device), RGB out."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError as exc:
        raise DependencyError(
            f"the nvjpeg loader needs torchvision ({exc}); install the torchvision build that matches this torch "
            f"({torch.__version__}), or use --loader dali or --loader baseline.") from exc

    batched = [True]

    def decode(datas: Sequence[bytes], device: torch.device) -> list[torch.Tensor]:
        tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
        if batched[0]:
            try:
                out = decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device)
                return list(out) if isinstance(out, (list, tuple)) else [out]
            except TypeError:  # torchvision < 0.19 decodes one tensor per call
                batched[0] = False
        return [decode_jpeg(t, mode=ImageReadMode.RGB, device=device) for t in tensors]

    return decode


def pil_decode(datas: Sequence[bytes], device: torch.device) -> list[torch.Tensor]:
    """PIL decode to CHW uint8 tensors on ``device`` (the stand-in where torchvision is missing)."""
    import numpy as np

    from imgnet_tools.loader.augment import decode_rgb

    return [torch.from_numpy(np.array(decode_rgb(d), dtype=np.uint8)).permute(2, 0, 1).to(device) for d in datas]


def _samples(tars: Sequence[str], me: int, consumers: int, by_shard: bool) -> Iterator[tuple[bytes, int]]:
    """(jpg bytes, label) of this consumer's share, in file order."""
    index = 0
    for path in tars:
        with tarfile.open(path, mode="r:") as archive:
            current: dict[str, bytes] = {}
            key = None
            for info in archive:
                stem, _, ext = info.name.partition(".")
                if stem != key and key is not None and current:
                    if by_shard or index % consumers == me:
                        yield _pair(current, path, key)
                    index += 1
                    current = {}
                key = stem
                fh = archive.extractfile(info)
                current[ext] = fh.read() if fh is not None else b""
            if key is not None and current:
                if by_shard or index % consumers == me:
                    yield _pair(current, path, key)
                index += 1


def _pair(members: dict[str, bytes], path: str, key: str) -> tuple[bytes, int]:
    if "jpg" not in members or "cls" not in members:
        raise InputError(f"{path}: sample {key} lacks jpg/cls; rewrite the shards with `imgnet shard ... --overwrite`.")
    return members["jpg"], parse_cls_bytes(members["cls"])


def _share(shards: ShardSet, rank: int, world: int) -> tuple[list[str], bool]:
    tars = [str(t) for t in shards.tars]
    if len(tars) >= world:
        return tars[rank::world], True
    return tars, False


def _shuffled(samples: Iterator[tuple[bytes, int]], buffer: int, rng: random.Random) -> Iterator[tuple[bytes, int]]:
    pool: list[tuple[bytes, int]] = []
    for sample in samples:
        pool.append(sample)
        if len(pool) >= buffer:
            yield pool.pop(rng.randrange(len(pool)))
    rng.shuffle(pool)
    yield from pool


class _Reader(threading.Thread):
    """Fills a queue with full batches of (jpg bytes list, labels list), epoch after epoch."""

    def __init__(self, shards: ShardSet, params: LoaderParams, rank: int, world: int) -> None:
        super().__init__(daemon=True, name=f"nvjpeg-reader-{rank}")
        self.tars, self.by_shard = _share(shards, rank, world)
        self.params, self.rank, self.world = params, rank, world
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=PREFETCH)
        self.stop = threading.Event()

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            epoch, datas, labels = 0, [], []
            while not self.stop.is_set():
                rng = random.Random(f"{self.params.seed}-{self.rank}-{epoch}")
                seen = 0
                for data, label in _shuffled(_samples(self.tars, self.rank, self.world, self.by_shard),
                                             self.params.shuffle_buffer, rng):
                    seen += 1
                    datas.append(data)
                    labels.append(label)
                    if len(datas) == self.params.batch_size:
                        if not self._put((datas, labels)):
                            return
                        datas, labels = [], []
                if not seen:
                    self._put(InputError(f"no samples reached rank {self.rank} of {self.world}; pass fewer ranks."))
                    return
                epoch += 1
        except (OSError, tarfile.TarError, ValueError, InputError) as exc:
            self._put(exc if isinstance(exc, InputError) else InputError(
                f"the nvjpeg loader cannot read the shards ({exc}); check them with `imgnet shards check`."))


def train_batches(shards: ShardSet, params: LoaderParams, rank: int, world: int, device: torch.device,
                  decode: Decode | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (images, labels) batches on ``device``, augmented and normalised like the other loaders."""
    decode = decode or torchvision_decode()
    reader = _Reader(shards, params, rank, world)
    reader.start()
    rng = random.Random(f"{params.seed}-{rank}-augment")
    try:
        while True:
            item = reader.queue.get()
            if isinstance(item, Exception):
                raise item
            datas, labels = item
            try:
                images = decode(datas, device)
            except RuntimeError as exc:
                raise InputError(f"nvJPEG could not decode a JPEG of {shards.root} ({str(exc).splitlines()[0][:200]}); "
                                 "run `imgnet verify` on the manifest and shard it again.") from exc
            batch = augment(images, params.image_size, rng, params.layout, params.dtype)
            yield batch, torch.tensor(labels, dtype=torch.int64).to(device, non_blocking=True)
    finally:
        reader.stop.set()


def decode_only(datas: Sequence[bytes], batch_size: int, device: torch.device,
                decode: Decode | None = None) -> Iterator[int]:
    """Decode ``datas`` in batches, endlessly, doing nothing else: the decoder's own ceiling.

    Yields the images decoded per batch (the caller times it); bytes are held in memory, so this
    measures decode alone, without reading, augmentation or copies.
    """
    decode = decode or torchvision_decode()
    i = 0
    while True:
        chunk = [datas[(i + j) % len(datas)] for j in range(batch_size)]
        i = (i + batch_size) % len(datas)
        decode(chunk, device)
        yield len(chunk)
