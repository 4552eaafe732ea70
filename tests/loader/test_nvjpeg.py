"""The nvJPEG loader's CPU-testable parts: the tensor augmentation on PIL-decoded tensors, the reader,
batching and per-rank sharding with a real (PIL) decoder, and the error without torchvision."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgnet_tools.errors import DependencyError
from imgnet_tools.loader import nvjpeg, tensor_augment
from imgnet_tools.loader.augment import crop_box, normalize_batch
from imgnet_tools.loader.params import LoaderParams
from imgnet_tools.loader.shardset import find_shards
from tests.shardgen import jpeg_bytes, real_shards

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_shards(tmp_path_factory.mktemp("nvjpeg"), samples=14, per_shard=4, classes=3)


def _pil(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def _chw(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)


def test_tensor_crop_resize_matches_pil_on_the_same_box() -> None:
    """Same box, bilinear antialiased resize: the torch path and PIL's agree within a few levels."""
    img = _pil(jpeg_bytes(random.Random(3), 120, 90))
    for seed in range(5):
        left, top, w, h = crop_box(img.width, img.height, random.Random(seed))
        ours = tensor_augment.resized_crops([_chw(img)], [(left, top, w, h)], 32)[0]
        ref = np.array(img.resize((32, 32), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h)), dtype=np.float32)
        diff = np.abs(ours.permute(1, 2, 0).numpy() - ref)
        assert diff.mean() < 2.5, (seed, diff.mean())


def test_boxes_follow_the_shared_rule_and_flip_and_normalise_match_the_other_loaders() -> None:
    shapes = [(90, 120), (40, 200), (300, 30)]
    boxes = tensor_augment.draw_boxes(shapes, random.Random(7))
    rng = random.Random(7)
    assert boxes == [crop_box(w, h, rng) for h, w in shapes]
    for (h, w), (left, top, bw, bh) in zip(shapes, boxes):
        assert 0 <= left and left + bw <= w and 0 <= top and top + bh <= h
    batch = torch.arange(2 * 3 * 2 * 4, dtype=torch.float32).view(2, 3, 2, 4)
    flipped = tensor_augment.flip(batch, torch.tensor([True, False]))
    assert torch.equal(flipped[0], batch[0].flip(2)) and torch.equal(flipped[1], batch[1])
    uint8 = torch.randint(0, 256, (2, 5, 6, 3), dtype=torch.uint8)  # NHWC, as the baseline's workers give
    for layout in ("NCHW", "NHWC"):
        for dtype in ("fp32", "bf16"):
            ref = normalize_batch(uint8, layout, dtype)
            ours = tensor_augment.normalize(uint8.permute(0, 3, 1, 2).float(), layout, dtype)
            assert ours.dtype == ref.dtype and ours.shape == ref.shape
            assert torch.allclose(ours.float(), ref.float(), atol=1e-2)


def test_augment_gives_a_normalised_batch_of_the_asked_size() -> None:
    images = [_chw(_pil(jpeg_bytes(random.Random(i), 50 + 10 * i, 40 + 7 * i))) for i in range(4)]
    out = tensor_augment.augment(images, 24, random.Random(0), "NHWC", "fp16")
    assert out.shape == (4, 24, 24, 3) and out.dtype == torch.float16
    assert -3.0 < float(out.float().min()) and float(out.float().max()) < 3.0


def test_loader_batches_with_a_real_decoder(shards: Path) -> None:
    params = LoaderParams(batch_size=5, image_size=32, layout="NCHW", dtype="fp32", seed=1, shuffle_buffer=4)
    it = nvjpeg.train_batches(find_shards(shards), params, 0, 1, torch.device("cpu"), decode=nvjpeg.pil_decode)
    seen = []
    for _ in range(6):  # 30 samples: more than the 14 of one epoch, so epochs roll over
        x, y = next(it)
        assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (5,)
        seen += y.tolist()
    it.close()
    assert set(seen) == {0, 1, 2}


def test_ranks_split_the_samples_exactly(shards: Path) -> None:
    """Per-rank shares partition the split, by shard (4 shards, 2 ranks) and by sample (5 ranks)."""
    shard_set = find_shards(shards)
    everything = sorted(hashlib.sha256(d).hexdigest() for d, _ in nvjpeg._samples([str(t) for t in shard_set.tars], 0, 1, True))
    assert len(everything) == 14
    for world in (2, 5):
        parts = []
        for rank in range(world):
            tars, by_shard = nvjpeg._share(shard_set, rank, world)
            parts += [hashlib.sha256(d).hexdigest() for d, _ in nvjpeg._samples(tars, rank, world, by_shard)]
        assert sorted(parts) == everything


def test_a_broken_jpeg_is_a_clear_error(tmp_path: Path) -> None:
    from imgnet_tools.errors import InputError

    def failing(datas: object, device: torch.device) -> list[torch.Tensor]:
        raise RuntimeError("nvjpeg error: bad huffman table")

    shard_dir = real_shards(tmp_path, samples=4, per_shard=4)
    it = nvjpeg.train_batches(find_shards(shard_dir), LoaderParams(batch_size=2, image_size=16), 0, 1,
                              torch.device("cpu"), decode=failing)
    with pytest.raises(InputError, match="imgnet verify"):
        next(it)


@pytest.mark.skipif(HAS_TORCHVISION, reason="torchvision is installed here; the missing-dependency path cannot run")
def test_without_torchvision_the_error_says_what_to_install(shards: Path, invoke, tmp_path: Path) -> None:
    with pytest.raises(DependencyError, match="torchvision"):
        nvjpeg.torchvision_decode()
    result = invoke("train", shards, "--out", tmp_path / "x.pt", "--loader", "nvjpeg", "--epochs", "1", "--workers", "0")
    assert result.exit_code == 1 and "needs torchvision" in result.output


@pytest.mark.skipif(not HAS_TORCHVISION, reason="needs torchvision (not installable on this machine's torch)")
def test_torchvision_cpu_decode_agrees_with_pil(shards: Path) -> None:
    data = jpeg_bytes(random.Random(5), 64, 48)
    ours = nvjpeg.torchvision_decode()([data], torch.device("cpu"))[0]
    ref = nvjpeg.pil_decode([data], torch.device("cpu"))[0]
    assert ours.shape == ref.shape and float((ours.float() - ref.float()).abs().mean()) < 2.0


@pytest.mark.gpu
def test_nvjpeg_on_the_gpu(shards: Path) -> None:
    params = LoaderParams(batch_size=4, image_size=32, dtype="bf16", layout="NHWC")
    x, y = next(nvjpeg.train_batches(find_shards(shards), params, 0, 1, torch.device("cuda", 0)))
    assert x.is_cuda and x.shape == (4, 32, 32, 3) and x.dtype == torch.bfloat16 and y.is_cuda
