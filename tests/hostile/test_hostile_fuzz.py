"""Mutation fuzzing over real seed files (tests/fuzzing.py): a bounded, derandomized run in CI.

Two layers, a few thousand cases in all, well under two minutes on two cores:

* per file (hypothesis, derandomized: the same cases on every run): a mutated JPEG/PNG/BMP/GIF/
  TIFF/WebP goes through verify's per-file check (with --fix), dedup's hashing and shard's
  --resize-short, in this process: nothing raises, every verdict is from the vocabulary and
  fits the manifest, and whatever verify calls usable hashes and resizes;
* per stage (a fixed ``random`` seed): folders of mutated files through the real stages on the
  local process pool (scan -> verify --fix -> dedup -> shard --resize-short): each finishes,
  writes a manifest that reads back whole, every row has a status and a reason from the
  vocabulary, and no usable row fails at shard time.

The long run is ``scripts/fuzz.sh`` (figures in BENCHMARKS.md, RELIABILITY).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgnet_tools.dedup.run import DedupParams, dedup
from imgnet_tools.images.check import REASON_ORDER
from imgnet_tools.images.scan import ScanParams, scan
from imgnet_tools.images.verify import VerifyParams, verify
from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.manifest.stream import table_info
from imgnet_tools.shards.write import ShardParams, shard
from tests import fuzzing
from tests.conftest import require

NAMES = sorted(fuzzing.seeds())
FAST = dict(derandomize=True, database=None, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

op = st.builds(
    fuzzing.Op,
    kind=st.sampled_from(fuzzing.OPS),
    at=st.floats(0.0, 1.0),
    value=st.one_of(st.sampled_from(fuzzing.BOUNDARY), st.integers(0, 2**32 - 1)),
    width=st.sampled_from((1, 2, 4)),
    order=st.sampled_from("<>"),
    other=st.sampled_from(NAMES),
    span=st.floats(0.0, 1.0),
)
header_op = st.builds(fuzzing.Op, kind=st.just("field"), at=st.floats(0.0, 1.0), value=st.sampled_from(fuzzing.BOUNDARY),
                      width=st.sampled_from((1, 2, 4)), order=st.sampled_from("<>"))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "fixed").mkdir()
    return folder


def _holds(scratch: Path, seed: str, ops: list[fuzzing.Op]) -> None:
    path = fuzzing.write_case(scratch, 0, seed, fuzzing.mutate(fuzzing.seeds()[seed], ops))
    problems = fuzzing.check_file(path, scratch / "fixed")
    assert not problems, f"{seed} with {fuzzing.describe(ops)}: {problems}"


@settings(max_examples=3000, **FAST)
@given(seed=st.sampled_from(NAMES), ops=st.lists(op, min_size=1, max_size=4))
def test_mutated_files_keep_the_per_file_property(scratch: Path, seed: str, ops: list[fuzzing.Op]) -> None:
    _holds(scratch, seed, ops)


@settings(max_examples=1500, **FAST)
@given(seed=st.sampled_from(NAMES), ops=st.lists(header_op, min_size=1, max_size=3))
def test_header_fields_at_boundary_values_keep_the_per_file_property(scratch: Path, seed: str,
                                                                     ops: list[fuzzing.Op]) -> None:
    _holds(scratch, seed, ops)


def test_jpegs_verify_calls_ok_decode_in_dali_too() -> None:
    """A JPEG verify passes as ``ok`` is copied into shards byte for byte, so DALI must decode it
    (its nvImageCodec refuses header junk that PIL skips: ``malformed_jpeg``)."""
    require("nvidia.dali")
    from imgnet_tools.images.check import Policy, check_image

    rng = random.Random(1313)
    jpegs = [n for n in NAMES if n.endswith(".jpg")]
    ok: list[tuple[str, bytes]] = []
    tried = 0
    while len(ok) < 150:
        seed = rng.choice(jpegs)
        ops = fuzzing.random_ops(rng, NAMES)
        data = fuzzing.mutate(fuzzing.seeds()[seed], ops)
        tried += 1
        if check_image(data, "x.jpg", Policy(max_pixels=4_000_000)).status(Policy()) == "ok":
            ok.append((f"{seed} with {fuzzing.describe(ops)}", data))
    failed = []
    for what, data in ok:
        if fuzzing.dali_decode_error(data) is not None:
            failed.append(what)
    assert tried > len(ok) and not failed, failed[:5]


def test_seeds_cover_every_decodable_format() -> None:
    from imgnet_tools.images.sniff import DECODABLE, sniff_format

    assert {sniff_format(d[:32]) for d in fuzzing.seeds().values()} == DECODABLE


@pytest.mark.parametrize("batch", [0, 1])
def test_mutated_folders_through_the_stages(tmp_path: Path, batch: int) -> None:
    rng = random.Random(1300 + batch)
    src = tmp_path / "src" / "n01440764"
    src.mkdir(parents=True)
    for i in range(150):
        seed = rng.choice(NAMES)
        data = fuzzing.mutate(fuzzing.seeds()[seed], fuzzing.random_ops(rng, NAMES)) if i % 10 else fuzzing.seeds()[seed]
        fuzzing.write_case(src, i, seed, data)
    work = tmp_path / "work"
    manifest = work / "manifest.parquet"
    scan(ScanParams(src=(str(tmp_path / "src"),), out=str(work), chunk_rows=32, workers=2))
    result = verify(VerifyParams(manifest=str(manifest), fix=str(tmp_path / "fixed"), max_pixels=4_000_000,
                                 chunk_rows=32, workers=2))
    assert result.rows == 150
    dedup(DedupParams(manifest=str(manifest), chunk_rows=32, workers=2))
    shards = shard(ShardParams(manifest=str(manifest), out=str(tmp_path / "shards"), size=40, resize_short=24,
                               workers=2))
    assert table_info(manifest, "manifest").rows == 150
    rows = read_table(manifest, "manifest").to_pylist()
    assert sorted(Path(r["source_path"]).name for r in rows) == sorted(p.name for p in src.iterdir())
    for row in rows:
        assert row["status"] in ("ok", "fixed", "rejected", "duplicate"), row  # fixable ones were fixed
        assert row["reason"] is None or row["reason"] in REASON_ORDER, row
        assert row["reason"] not in ("internal_error", "crashed_decoder", "timeout"), row
        assert (row["status"] == "ok") <= (row["reason"] is None) and (row["status"] == "rejected") <= bool(row["reason"])
    usable = [r for r in rows if r["status"] in ("ok", "fixed")]
    assert shards.samples == len(usable) and shards.failed == [], shards.failed
