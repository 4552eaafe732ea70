"""imgnet shards check / info, and the reader's refusal of members that would escape."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from imgnet_tools.errors import SchemaError
from imgnet_tools.shards.check import CheckParams, check_shards, shards_info
from imgnet_tools.shards.keys import sanitize_key, split_member
from imgnet_tools.shards.tario import UnsafeMemberError, read_members
from imgnet_tools.shards.write import ShardParams, shard
from tests.shard_data import make_dataset, write_manifest


@pytest.fixture
def shard_dir(tmp_path: Path) -> Path:
    rows = make_dataset(tmp_path / "img", {"n01440764": 6, "n01443537": 5})
    manifest = write_manifest(rows, tmp_path / "manifest.parquet")
    shard(ShardParams(manifest=str(manifest), out=str(tmp_path / "out"), size=4, workers=1))
    return tmp_path / "out"


def test_a_sound_directory_checks_clean_and_info_summarizes(shard_dir: Path) -> None:
    result = check_shards(CheckParams(str(shard_dir), workers=2))
    assert result.ok and (result.shards, result.samples) == (3, 11)
    info = shards_info(str(shard_dir))
    assert (info["samples"], info["shards"], info["classes"]) == (11, 3, 2)
    assert info["samples_per_shard"] == {"min": 3, "max": 4}
    assert info["bytes"] == sum(p.stat().st_size for p in shard_dir.glob("*.tar"))


def test_a_flipped_byte_is_found(shard_dir: Path) -> None:
    tar = shard_dir / "train-000001.tar"
    data = bytearray(tar.read_bytes())
    data[700] ^= 0xFF  # inside the first image's data
    tar.write_bytes(bytes(data))
    problems = check_shards(CheckParams(str(shard_dir), workers=1)).problems
    assert any("train-000001.tar: sha256 differs" in p for p in problems)
    assert any("image sha256 differs" in p for p in problems)
    assert not any("train-000000" in p or "train-000002" in p for p in problems)


def test_missing_shard_wrong_index_and_stray_tar_are_found(shard_dir: Path) -> None:
    (shard_dir / "train-000002.tar").unlink()
    idx = shard_dir / "train-000000.idx"
    idx.write_text(idx.read_text().replace(" 512 ", " 0 ", 1))
    (shard_dir / "stray-000000.tar").write_bytes(b"\0" * 1024)
    problems = check_shards(CheckParams(str(shard_dir), workers=1)).problems
    assert "train-000002.tar: missing" in problems
    assert "train-000000.idx: does not match the manifest" in problems
    assert "stray-000000.tar: tar file not listed in dataset.json" in problems


def test_unfinished_directory_is_a_run_level_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="dataset.json is missing"):
        check_shards(CheckParams(str(tmp_path)))
    (tmp_path / "dataset.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(SchemaError, match="does not match schema dataset"):
        shards_info(str(tmp_path))


@pytest.mark.parametrize("name", ["../escape.jpg", "/abs.jpg", ".hidden.jpg", "dir/key.jpg", "ctl\x01.jpg", "two.dots.jpg", "noext"])
def test_reader_rejects_members_that_would_escape(tmp_path: Path, name: str) -> None:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.size = 3
        archive.addfile(info, io.BytesIO(b"abc"))
    assert split_member(name) is None
    with pytest.raises(UnsafeMemberError):
        list(read_members(str(path)))


def test_reader_rejects_links(tmp_path: Path) -> None:
    path = tmp_path / "link.tar"
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("key.jpg")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(info)
    with pytest.raises(UnsafeMemberError, match="not a safe"):
        list(read_members(str(path)))


@pytest.mark.parametrize("key", ["n01440764_10026", "a-b_c", "x" * 80])
def test_safe_keys_are_kept(key: str) -> None:
    assert sanitize_key(key) == key


@pytest.mark.parametrize("key", ["../x", ".x", "a/b", "a.b", "", "é", "x" * 81, "tab\tkey"])
def test_unsafe_keys_become_distinct_safe_stems(key: str) -> None:
    safe = sanitize_key(key)
    assert split_member(f"{safe}.jpg") == (safe, "jpg") and safe != sanitize_key(key + "_")


def test_each_shard_reads_only_its_rows_whatever_the_row_groups(shard_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver keeps runs of row numbers per shard, not rows; a manifest rewritten with row groups
    that straddle shards (and rows of one shard split into two runs) still checks clean."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from imgnet_tools.manifest.parquet import read_table
    from imgnet_tools.shards import check
    from imgnet_tools.shards.check import _shard_runs

    manifest = shard_dir / "manifest.parquet"
    expected = {"train-000000.tar": [(0, 4)], "train-000001.tar": [(4, 8)], "train-000002.tar": [(8, 11)]}
    assert _shard_runs(manifest) == expected
    monkeypatch.setattr(check, "MANIFEST_CHUNK_ROWS", 3)  # runs that go on across chunks of the shard column
    assert _shard_runs(manifest) == expected
    table = read_table(manifest, "shard_manifest")
    pq.write_table(table, manifest, row_group_size=3)  # groups of 3 rows across the shards of 4
    assert check_shards(CheckParams(str(shard_dir), workers=1)).ok
    # train-000002's rows moved to the front: still its rows, in order, from two places
    moved = pa.concat_tables([table.slice(8, 2), table.slice(0, 8), table.slice(10)])
    pq.write_table(moved, manifest, row_group_size=5)
    assert _shard_runs(manifest)["train-000002.tar"] == [(0, 2), (10, 11)]
    assert check_shards(CheckParams(str(shard_dir), workers=1)).ok
    # a row of train-000001 dropped: found in that shard, and only there
    pq.write_table(pa.concat_tables([table.slice(0, 5), table.slice(6)]), manifest)
    problems = check_shards(CheckParams(str(shard_dir), workers=1)).problems
    assert "train-000001.tar: manifest.parquet has 3 rows, dataset.json says 4" in problems
    assert not any("train-000000" in p or "train-000002" in p for p in problems)
