"""No tar member we write or read can escape its folder; published shards name no folder of ours.

* Reading: hand-made hostile tars (``..``, absolute names, ``a/b``, a leading dot, a newline, a
  symlink to ``/etc/passwd``, a hard link, a folder, a fifo, a device) are refused member by member
  by our reader (:func:`~imgnet_tools.shards.tario.read_members`) and reported by ``imgnet shards
  check`` (exit 1, the member named); the loaders' readers read members into memory only, so
  nothing is ever written outside (checked on disk).
* Writing: manifest keys and splits made to escape (``../../evil``, ``/abs``, ``a/b``, ``.hidden``,
  a newline, 300 characters) give safe member names only (``KEY.ext``), which Python's
  ``tarfile`` ``data`` filter and GNU tar extract inside the folder; unsafe split names are
  refused (exit 2); ``verify --fix`` never writes a fixed copy outside its folder.
* Paths: KEY.json and the shard manifest carry paths relative to the scan root by default, the
  absolute ones only with ``--keep-source-paths``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from imgnet_tools.images.verify import VerifyParams, verify
from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.shards.keys import split_member
from imgnet_tools.shards.tario import UnsafeMemberError, read_members
from imgnet_tools.shards.write import ShardParams, shard
from tests import imagegen
from tests.conftest import run_installed
from tests.shard_data import jpeg_bytes, row_for, write_manifest


def _regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, b""


HOSTILE = {
    "dotdot": _regular("../../evil.jpg", b"x"),
    "absolute": _regular("/tmp/imgnet-evil-absolute.jpg", b"x"),
    "nested": _regular("sub/dir.jpg", b"x"),
    "hidden": _regular(".hidden.jpg", b"x"),
    "newline": _regular("a\nb.jpg", b"x"),
    "symlink": _special("link.jpg", tarfile.SYMTYPE, "/etc/passwd"),
    "hardlink": _special("hard.jpg", tarfile.LNKTYPE, "good.jpg"),
    "folder": _special("dir.jpg", tarfile.DIRTYPE),
    "fifo": _special("fifo.jpg", tarfile.FIFOTYPE),
    "device": _special("dev.jpg", tarfile.CHRTYPE),
}


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_our_reader_refuses_every_hostile_member(tmp_path: Path, case: str) -> None:
    path = tmp_path / "hostile.tar"
    _tar(path, [_regular("good.jpg", b"ok"), _regular("good.cls", b"1"), HOSTILE[case]])
    read = read_members(str(path))
    assert [next(read).name, next(read).name] == ["good.jpg", "good.cls"]
    with pytest.raises(UnsafeMemberError, match="not a safe KEY.ext"):
        next(read)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.tar"]  # nothing extracted anywhere
    assert not Path("/tmp/imgnet-evil-absolute.jpg").exists()


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    rows = []
    (tmp_path / "img").mkdir()
    for i in range(6):
        path = tmp_path / "img" / f"s{i}.jpg"
        path.write_bytes(jpeg_bytes(40, 30, i))
        rows.append(row_for(path, f"s{i}", "train", i % 2, "n01440764", 40, 30))
    manifest = write_manifest(rows, tmp_path / "manifest.parquet")
    shard(ShardParams(manifest=str(manifest), out=str(tmp_path / "shards"), size=6, executor="inline"))
    return tmp_path / "shards"


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_shards_check_reports_a_hostile_member_and_readers_write_nothing(shards: Path, tmp_path: Path,
                                                                       case: str) -> None:
    tar = shards / "train-000000.tar"
    with tarfile.open(tar) as archive:
        members = [(info, archive.extractfile(info).read()) for info in archive]  # type: ignore[union-attr]
    _tar(tar, [*members, HOSTILE[case]])
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    proc = run_installed("shards", "check", str(shards), "-q", "--json")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    problems = json.loads(proc.stdout)["problems"]
    assert any(HOSTILE[case][0].name in p and "safe" in p for p in problems), problems
    # the loaders' own readers: into memory, never onto disk
    from imgnet_tools.loader.baseline import read_samples
    from imgnet_tools.loader.nvjpeg import _samples

    for read in (lambda: list(read_samples([str(tar)])), lambda: list(_samples([str(tar)], 0, 1, True))):
        try:
            read()
        except Exception:  # noqa: BLE001 - refusing is fine; writing is not
            pass
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert not Path("/tmp/imgnet-evil-absolute.jpg").exists() and not (tmp_path.parent / "evil.jpg").exists()


HOSTILE_KEYS = ["../../evil", "/tmp/imgnet-evil-key", "a/b", ".hidden", "new\nline", "k" * 300, "..", "tab\tkey"]


def test_hostile_keys_become_safe_member_names_that_extract_inside(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    rows = []
    for i, key in enumerate(HOSTILE_KEYS):
        path = tmp_path / "img" / f"s{i}.jpg"
        path.write_bytes(jpeg_bytes(40, 30, i))
        rows.append(row_for(path, key, "train", 0, "n01440764", 40, 30))
    manifest = write_manifest(rows, tmp_path / "manifest.parquet")
    for extra in ({}, {"resize_short": 16}):
        out = tmp_path / f"shards{len(extra)}"
        result = shard(ShardParams(manifest=str(manifest), out=str(out), size=20, executor="inline", **extra))
        assert result.samples == len(HOSTILE_KEYS) and not result.failed
        tar = out / "train-000000.tar"
        names = [m.name for m in read_members(str(tar))]
        assert len(names) == 3 * len(HOSTILE_KEYS) and all(split_member(n) for n in names), names
        assert len({split_member(n)[0] for n in names}) == len(HOSTILE_KEYS)  # type: ignore[index]
        target = tmp_path / f"extract{len(extra)}"
        target.mkdir()
        with tarfile.open(tar) as archive:
            archive.extractall(target, filter="data")
        assert sorted(p.name for p in target.iterdir()) == sorted(names)
        if shutil.which("tar"):
            gnu = tmp_path / f"gnu{len(extra)}"
            gnu.mkdir()
            subprocess.run(["tar", "-xf", str(tar), "-C", str(gnu)], check=True, capture_output=True)
            assert sorted(p.name for p in gnu.iterdir()) == sorted(names)
    assert not (tmp_path.parent / "evil.jpg").exists() and not Path("/tmp/imgnet-evil-key.jpg").exists()


@pytest.mark.parametrize("split", ["../../escape", "/tmp/imgnet-evil-split", "a/b", ".."])
def test_a_split_that_would_name_a_file_outside_is_refused(tmp_path: Path, split: str) -> None:
    path = tmp_path / "s.jpg"
    path.write_bytes(jpeg_bytes(40, 30, 1))
    manifest = write_manifest([row_for(path, "s", split, 0, "n01440764", 40, 30)], tmp_path / "manifest.parquet")
    proc = run_installed("shard", str(manifest), "--out", str(tmp_path / "shards"), "-q")
    assert proc.returncode == 2 and "not a safe file name" in proc.stderr, proc.stderr
    assert not list(tmp_path.parent.glob("escape*")) and not list(Path("/tmp").glob("imgnet-evil-split*"))


def test_verify_fix_writes_no_copy_outside_its_folder(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    rows = []
    for i, key in enumerate(HOSTILE_KEYS):
        path = tmp_path / "img" / f"s{i}.png"  # PNG: fixable, so --fix writes a copy named for the key
        path.write_bytes(imagegen.encode(imagegen.picture(i, (48, 40)), "PNG"))
        row = row_for(path, key, "train", 0, "n01440764", 48, 40)
        row.update(status="pending", sha256=None, width=None, height=None)
        rows.append(row)
    manifest = write_manifest(rows, tmp_path / "work" / "manifest.parquet")
    fixed = tmp_path / "fixed"
    before = {p for p in tmp_path.parent.iterdir()}
    result = verify(VerifyParams(manifest=str(manifest), fix=str(fixed), executor="inline"))
    assert result.fixed == len(HOSTILE_KEYS)
    copies = [Path(r["path"]) for r in read_table(manifest, "manifest").to_pylist()]
    assert all(c.parent == fixed and c.is_file() for c in copies), copies
    assert len(set(copies)) == len(HOSTILE_KEYS) == len(list(fixed.iterdir()))
    assert {p for p in tmp_path.parent.iterdir()} == before
    assert not Path("/tmp/imgnet-evil-key.jpg").exists()


def test_published_shards_hold_relative_paths_unless_asked(tmp_path: Path) -> None:
    imagegen.make_imagefolder(tmp_path / "data" / "train", ["n01440764"], per_class=3)
    assert run_installed("scan", str(tmp_path / "data"), "--out", str(tmp_path / "work"), "-q").returncode == 0
    assert run_installed("verify", str(tmp_path / "work" / "manifest.parquet"), "-q").returncode == 0
    for keep in (False, True):
        out = tmp_path / f"shards-{keep}"
        args = ["shard", str(tmp_path / "work" / "manifest.parquet"), "--out", str(out), "-q"]
        assert run_installed(*args, *(["--keep-source-paths"] if keep else [])).returncode == 0
        with tarfile.open(out / "train-000000.tar") as archive:
            paths = [json.loads(archive.extractfile(m).read())["path"]  # type: ignore[union-attr]
                     for m in archive.getmembers() if m.name.endswith(".json")]
        stored = read_table(out / "manifest.parquet", "shard_manifest").column("source_path").to_pylist()
        blob = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
        if keep:
            assert all(os.path.isabs(p) for p in paths + stored)
        else:
            assert all(p.startswith("train/n01440764/") for p in paths + stored), paths
            assert str(tmp_path).encode() not in blob and str(Path.home()).encode() + b"/" not in blob
