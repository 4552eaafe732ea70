"""Loaders over shards written by the real `imgnet shard`: DALI (CPU) against the baseline reader."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.shardgen import real_shards, write_shards

from imgnet_tools.loader import baseline, dali
from imgnet_tools.loader.augment import ASPECT, crop_box, normalize_batch
from imgnet_tools.loader.check import CheckParams, check
from imgnet_tools.loader.labels import parse_cls, parse_cls_bytes
from imgnet_tools.loader.params import LoaderParams
from imgnet_tools.loader.shardset import find_shards
from imgnet_tools.manifest.schemas import validate_json

SAMPLES, CLASSES = 12, 3


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_shards(tmp_path_factory.mktemp("loader"), samples=SAMPLES, per_shard=4, classes=CLASSES)


def _all_labels() -> Counter[int]:
    return Counter(i % CLASSES for i in range(SAMPLES))


def test_shardset_counts_the_epoch_from_the_indexes(shards_dir: Path) -> None:
    shards = find_shards(shards_dir)
    assert shards.samples == SAMPLES and len(shards.tars) == 3 and shards.num_classes == CLASSES
    assert [p.suffix for p in shards.indexes] == [".idx"] * 3


def test_dali_matches_the_baseline_reader(shards_dir: Path) -> None:
    result = check(CheckParams(shards=str(shards_dir), size=48, batch_size=5, workers=1))
    doc = result.to_dict()
    validate_json(doc, "loader_check", "check result")
    assert result.ok, result.first_problems
    assert (result.compared, result.epoch_samples, result.dali_epoch_size) == (SAMPLES, SAMPLES, SAMPLES)
    assert result.sample_mismatches == result.label_mismatches == 0
    assert result.worst_abs_diff <= result.tolerance


def test_check_reports_pixel_differences_beyond_tolerance(shards_dir: Path) -> None:
    """A zero tolerance must fail: the two decoders/resamplers are close, not bit-identical."""
    result = check(CheckParams(shards=str(shards_dir), size=48, samples=4, tolerance=0.0, workers=1))
    assert not result.ok and result.compared == 4
    assert result.worst_abs_diff > 0 and "tolerance" in result.first_problems[-1]


def _first_batch(name: str, shards_dir: Path, params: LoaderParams, rank: int = 0, world: int = 1):
    batches = (dali if name == "dali" else baseline).train_batches(
        find_shards(shards_dir), params, rank, world, torch.device("cpu"))
    return next(batches)


@pytest.mark.parametrize("name", ["dali", "baseline"])
@pytest.mark.parametrize("layout,dtype", [("NCHW", "fp32"), ("NHWC", "fp16"), ("NCHW", "bf16")])
def test_train_batches_shape_dtype_and_normalisation(shards_dir: Path, name: str, layout: str, dtype: str) -> None:
    params = LoaderParams(batch_size=SAMPLES, image_size=32, layout=layout, dtype=dtype, workers=0 if name == "baseline" else 1)
    images, labels = _first_batch(name, shards_dir, params)
    shape = (SAMPLES, 3, 32, 32) if layout == "NCHW" else (SAMPLES, 32, 32, 3)
    want = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    assert images.shape == shape and images.dtype == want and labels.dtype == torch.int64
    # One batch of the whole epoch holds every label once; normalised pixels lie in ImageNet's range.
    assert Counter(labels.tolist()) == _all_labels()
    values = images.float()
    assert -2.2 <= float(values.min()) and float(values.max()) <= 2.7 and float(values.std()) > 0.1


def test_dali_shards_equal_batches_over_ranks(shards_dir: Path) -> None:
    """Two ranks each read half the samples (shard_id/num_shards); together, every label once."""
    params = LoaderParams(batch_size=SAMPLES // 2, image_size=32, workers=1)
    labels = [_first_batch("dali", shards_dir, params, rank, 2)[1] for rank in (0, 1)]
    assert [len(x) for x in labels] == [SAMPLES // 2] * 2
    assert Counter(labels[0].tolist() + labels[1].tolist()) == _all_labels()


def test_dali_shuffle_is_seeded(shards_dir: Path) -> None:
    def labels(seed: int) -> list[int]:
        return _first_batch("dali", shards_dir, LoaderParams(batch_size=6, image_size=32, workers=1, seed=seed,
                                                             shuffle_buffer=12))[1].tolist()

    assert labels(3) == labels(3)


@pytest.mark.parametrize("consumers", [2, 5])
def test_baseline_consumers_split_the_samples_exactly(shards_dir: Path, consumers: int) -> None:
    """By whole shards (2 consumers, 3 shards) or by sample index (5 consumers): disjoint, complete."""
    shards = find_shards(shards_dir)
    keys = [[s["__key__"] for s in baseline.consumer_samples(shards, me, consumers)] for me in range(consumers)]
    flat = [k for part in keys for k in part]
    assert len(flat) == len(set(flat)) == SAMPLES


def test_baseline_shuffle_keeps_every_sample() -> None:
    items = [{"i": i} for i in range(50)]
    out = list(baseline.shuffled(iter(items), 8, random.Random(1)))
    assert sorted(x["i"] for x in out) == list(range(50)) and out != items


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4000), st.integers(1, 4000), st.integers(0, 2**32))
def test_crop_box_stays_inside_the_image(width: int, height: int, seed: int) -> None:
    left, top, w, h = crop_box(width, height, random.Random(seed))
    assert 0 <= left and 0 <= top and 0 < w and 0 < h and left + w <= width and top + h <= height
    # The aspect ratio is within 3/4..4/3 up to the rounding of w and h to whole pixels.
    assert (w + 0.5) / max(h - 0.5, 0.5) >= ASPECT[0] and (w - 0.5) / (h + 0.5) <= ASPECT[1]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 99999), min_size=1, max_size=20))
def test_cls_bytes_parse_the_same_in_torch_and_python(labels: list[int]) -> None:
    raw = [str(x).encode() for x in labels]
    width = max(len(r) for r in raw)
    padded = torch.tensor([list(r) + [0] * (width - len(r)) for r in raw], dtype=torch.uint8)
    assert parse_cls(padded).tolist() == [parse_cls_bytes(r) for r in raw] == labels


def test_normalize_batch_layouts_agree() -> None:
    batch = torch.randint(0, 256, (2, 5, 7, 3), dtype=torch.uint8)
    nchw, nhwc = normalize_batch(batch, "NCHW", "fp32"), normalize_batch(batch, "NHWC", "fp32")
    assert nchw.shape == (2, 3, 5, 7) and torch.equal(nchw.permute(0, 2, 3, 1), nhwc)
    assert abs(float(nhwc[0, 0, 0, 0]) - (int(batch[0, 0, 0, 0]) / 255 - 0.485) / 0.229) < 1e-5


def test_one_sample_and_an_empty_shard(tmp_path: Path) -> None:
    """Corner cases: a one-sample set, and an empty shard beside it, which the loaders skip."""
    out = write_shards(tmp_path / "one", samples=1, per_shard=1)
    (out / "train-000001.tar").write_bytes(b"\0" * 1024)
    (out / "train-000001.idx").write_text("v1.2 0\n")
    shards = find_shards(out)
    assert shards.samples == 1 and len(shards.tars) == 1
    result = check(CheckParams(shards=str(out), size=32, workers=1))
    assert result.ok and result.compared == result.dali_epoch_size == 1


def test_loader_check_cli(invoke, shards_dir: Path) -> None:
    result = invoke("loader", "check", shards_dir, "--size", "32", "--workers", "1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate_json(doc, "loader_check", "stdout")
    assert doc["ok"] and doc["compared"] == SAMPLES
    text = invoke("loader", "check", shards_dir, "--samples", "3", "--workers", "1")
    assert text.exit_code == 0 and text.stdout.startswith("ok: 3 samples compared")
    strict = invoke("loader", "check", shards_dir, "--samples", "3", "--tolerance", "0")
    assert strict.exit_code == 1 and strict.stdout.startswith("MISMATCH")


@pytest.mark.gpu
def test_dali_mixed_decode_on_gpu_matches_labels(shards_dir: Path) -> None:
    params = LoaderParams(batch_size=SAMPLES, image_size=64, layout="NHWC", dtype="fp16", workers=2)
    images, labels = next(dali.train_batches(find_shards(shards_dir), params, 0, 1, torch.device("cuda", 0)))
    assert images.is_cuda and images.shape == (SAMPLES, 64, 64, 3) and images.dtype == torch.float16
    assert Counter(labels.tolist()) == _all_labels()
