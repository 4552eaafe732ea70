"""Run-level errors of the loaders: no shards, missing or broken DALI indexes, the wrong split."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.shardgen import write_shards

from imgnet_tools.errors import InputError
from imgnet_tools.loader.shardset import find_shards


@pytest.fixture
def shards_dir(tmp_path: Path) -> Path:
    return write_shards(tmp_path / "shards", samples=6, per_shard=3)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a directory"):
        find_shards(tmp_path / "missing")


def test_no_shards(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no shards train-NNNNNN.tar .*imgnet shard"):
        find_shards(tmp_path)


def test_wrong_split_names_the_splits_there(shards_dir: Path) -> None:
    with pytest.raises(InputError, match=r"no shards val-NNNNNN.tar .*\(it has splits: train\)"):
        find_shards(shards_dir, "val")


def test_missing_index(shards_dir: Path) -> None:
    (shards_dir / "train-000001.idx").unlink()
    with pytest.raises(InputError, match="DALI index files missing: train-000001.idx"):
        find_shards(shards_dir)


@pytest.mark.parametrize(
    "content,message",
    [
        ("v1.1 3\n", "v1.2 header expected"),
        ("garbage\n", "v1.2 header expected"),
        ("", "v1.2 header expected"),
        ("v1.2 5\njpg 0 10 a.jpg cls 512 1 a.cls\n", "header says 5 samples but the index lists 1"),
        ("v1.2 1\njpg 0 10\n", "malformed index line"),
        ("v1.2 1\njpg 0 10 a.jpg json 512 1 a.json\n", "sample lacks cls"),
    ],
    ids=["old_version", "junk", "empty", "count_mismatch", "short_line", "no_cls"],
)
def test_broken_index(shards_dir: Path, content: str, message: str) -> None:
    (shards_dir / "train-000000.idx").write_text(content)
    with pytest.raises(InputError, match=message):
        find_shards(shards_dir)


def test_all_shards_empty(tmp_path: Path) -> None:
    (tmp_path / "train-000000.tar").write_bytes(b"\0" * 1024)
    (tmp_path / "train-000000.idx").write_text("v1.2 0\n")
    with pytest.raises(InputError, match="hold no samples"):
        find_shards(tmp_path)


def test_cli_reports_a_broken_index_as_an_error(invoke, shards_dir: Path) -> None:
    (shards_dir / "train-000000.idx").write_text("not an index\n")
    result = invoke("loader", "check", shards_dir)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and "train-000000.idx" in result.stderr


def test_cli_rejects_bad_options(invoke, shards_dir: Path) -> None:
    assert invoke("loader", "check", shards_dir, "--size", "2").exit_code == 2
    assert invoke("loader", "check", shards_dir, "--tolerance", "-1").exit_code == 2


def test_undecodable_jpeg_is_a_run_level_error(invoke, shards_dir: Path) -> None:
    """Junk bytes where a JPEG should be (same size, so the index still fits the tar)."""
    import tarfile

    tar_path = shards_dir / "train-000000.tar"
    with tarfile.open(tar_path) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".jpg"))
    data = bytearray(tar_path.read_bytes())
    data[member.offset_data:member.offset_data + member.size] = b"\0" * member.size
    tar_path.write_bytes(bytes(data))
    result = invoke("loader", "check", shards_dir)
    assert result.exit_code == 2 and "cannot be decoded" in result.stderr
