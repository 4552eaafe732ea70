"""The sink's reserve/commit path and the carry-over at a buffer boundary, checked against tarfile.

Every archive built here is compared byte for byte with the one Python's ``tarfile`` writes for
the same members (our fixed header fields), every recorded span must point at its member's header
and bytes, and the sink's sha256 must be that of the file. Small buffers (multiples of
``DIRECT_ALIGN``) make boundaries cheap to reach; one test crosses the real 8 MiB buffer through
``imgnet shard`` itself.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.shard_data import jpeg_bytes, make_dataset, row_for, write_manifest

from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.shards import sink as sink_module
from imgnet_tools.shards import worker
from imgnet_tools.shards.index import parse_index
from imgnet_tools.shards.sink import CHUNK, DIRECT_ALIGN, ShardSink
from imgnet_tools.shards.tario import BLOCK, FIXED_MODE, FIXED_MTIME, FIXED_OWNER, MemberSpan, TarBuilder, reference_header
from imgnet_tools.shards.write import ShardParams, shard


def _open_buffered(path: Path) -> tuple[int, bool]:
    """What a file system that refuses O_DIRECT (tmpfs) gets from ``sink._open``."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), False


@pytest.fixture(params=["o_direct", "buffered"])
def direct(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param == "buffered":
        monkeypatch.setattr(sink_module, "_open", _open_buffered)
    return bool(request.param == "o_direct")


def _check_mode(sink: ShardSink, direct: bool, where: Path) -> None:
    if direct and not sink.direct:
        pytest.skip(f"{where} is on a file system that refuses O_DIRECT; the buffered case covers it")
    assert sink.direct is direct


def _reference_tar(members: list[tuple[str, bytes]]) -> bytes:
    """The archive Python's tarfile writes for ``members`` with our fixed header fields."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), FIXED_MTIME, FIXED_MODE
            info.uid = info.gid = 0
            info.uname = info.gname = FIXED_OWNER
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _padded(size: int) -> int:
    return BLOCK + size + (-size % BLOCK)


@dataclass
class Script:
    """Drives a TarBuilder over a ShardSink and records what the archive must hold."""

    sink: ShardSink
    chunk: int
    builder: TarBuilder = field(init=False)
    members: list[tuple[str, bytes]] = field(default_factory=list)
    spans: list[MemberSpan] = field(default_factory=list)
    # (buffer fill before the reservation, member total) of every in-buffer (lent) begin
    lent: list[tuple[int, int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.builder = TarBuilder(self.sink)

    def _begin(self, name: str, size: int, how: str) -> memoryview:
        fill = self.sink._fill  # white-box: to prove which boundary case each step hit
        area = self.builder.begin(name, size)
        if _padded(size) <= self.chunk - DIRECT_ALIGN:
            self.lent.append((fill, _padded(size), how))
        return area

    def copy(self, name: str, data: bytes) -> None:
        """begin / fill in place / end: what copy mode does with a source file."""
        area = self._begin(name, len(data), "end")
        area[:] = data
        self.spans.append(self.builder.end())
        self.members.append((name, data))

    def cancel(self, name: str, size: int) -> None:
        """begin / scribble over the area / cancel: must leave no trace."""
        area = self._begin(name, size, "cancel")
        area[:] = b"\xee" * size
        before = self.builder.size
        self.builder.cancel()
        assert self.builder.size == before

    def add(self, name: str, data: bytes) -> None:
        self.spans.append(self.builder.add(name, data))
        self.members.append((name, data))

    def add_small(self, members: list[tuple[str, bytes]]) -> None:
        self.spans += self.builder.add_small(members)
        self.members += members

    def finish(self, path: Path) -> bytes:
        size = self.builder.finish()
        self.sink.close()
        data = path.read_bytes()
        assert len(data) == size == self.builder.size
        assert data == _reference_tar(self.members)
        assert self.sink.hexdigest() == hashlib.sha256(data).hexdigest()
        assert [s.name for s in self.spans] == [name for name, _ in self.members]
        for span, (name, payload) in zip(self.spans, self.members):
            assert span.size == len(payload) and span.offset == span.header_offset + BLOCK
            assert data[span.header_offset:span.offset] == reference_header(name, len(payload))
            assert data[span.offset:span.offset + span.size] == payload
        with tarfile.open(path) as archive:  # tarfile's own view of every member agrees
            got = [(m.name, m.offset, m.offset_data, archive.extractfile(m).read()) for m in archive]  # type: ignore[union-attr]
        assert got == [(s.name, s.header_offset, s.offset, p) for s, (_, p) in zip(self.spans, self.members)]
        return data


def _bytes(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


def test_reserve_commit_boundaries_and_cancel(tmp_path: Path, direct: bool) -> None:
    """Hand-placed members: one ends exactly on the buffer's end, reservations that do not fit
    carry the unaligned tail to the other buffer, cancelled members (also after a carry) vanish."""
    chunk = 4 * DIRECT_ALIGN  # 16 KiB: the largest in-buffer member total is 12 KiB
    rng = random.Random(1)
    path = tmp_path / "t.tar"
    s = Script(ShardSink(path, chunk=chunk), chunk)
    _check_mode(s.sink, direct, tmp_path)
    s.add("a.cls", _bytes(rng, 3000))  # 3584
    s.add("b.cls", b"")  # 512 -> 4096
    s.copy("c.jpg", _bytes(rng, 11676))  # total 12288: ends exactly at the buffer's end (16384)
    assert s.builder.size == chunk
    s.add_small([("d.cls", b"1"), ("d.json", _bytes(rng, 600))])  # 2560 into the second buffer
    s.copy("e.jpg", _bytes(rng, 7000))  # fill 10240
    s.cancel("f.jpg", 9000)  # 9728 does not fit: 8192 go out, 2048 carried over, then dropped
    s.copy("g.jpg", _bytes(rng, 9000))  # the same reservation again, now kept
    s.cancel("h.jpg", 100)
    s.copy("i.jpg", _bytes(rng, 5000))  # a begin after a cancel
    s.builder.begin("j.jpg", 300)[:] = b"\xee" * 300  # another begin drops an unfinished one
    s.copy("k.jpg", _bytes(rng, 4093))
    s.copy("empty.jpg", b"")
    s.add("big.jpg", _bytes(rng, 40_001))  # write(): across several whole buffers
    s.copy("scratch.jpg", _bytes(rng, chunk - DIRECT_ALIGN - BLOCK + 1))  # too big to lend: scratch
    s.copy("max.jpg", _bytes(rng, chunk - DIRECT_ALIGN - BLOCK))  # the largest lendable member
    for i in range(12):  # unaligned small members around the boundaries
        s.add_small([(f"m{i}.cls", _bytes(rng, 1 + 97 * i)), (f"m{i}.json", _bytes(rng, 513))])
        s.copy(f"m{i}.jpg", _bytes(rng, rng.choice([511, 512, 513, 4095, 4097, 6000])))
    s.finish(path)
    ends = [how for fill, total, how in s.lent if fill + total == chunk]
    carried = [how for fill, total, how in s.lent if fill + total > chunk and fill % DIRECT_ALIGN]
    assert "end" in ends and {"end", "cancel"} <= set(carried)
    assert any(total == chunk - DIRECT_ALIGN for _, total, _ in s.lent)


@pytest.mark.parametrize("chunk", [2 * DIRECT_ALIGN, 4 * DIRECT_ALIGN, 16 * DIRECT_ALIGN])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_member_sequences_equal_tarfile(tmp_path: Path, direct: bool, chunk: int, seed: int) -> None:
    rng = random.Random(f"{seed}/{chunk}")
    lendable = chunk - DIRECT_ALIGN - BLOCK
    sizes = [0, 1, 3, 511, 512, 513, 1000, 3583, 3584, 3585, 4095, 4096, 4097, 8191, 8192,
             lendable - 1, lendable, lendable + 1, chunk - BLOCK, chunk, chunk + 1, 3 * chunk + 7]
    path = tmp_path / "t.tar"
    s = Script(ShardSink(path, chunk=chunk), chunk)
    _check_mode(s.sink, direct, tmp_path)
    for i in range(150):
        op, size = rng.random(), max(0, rng.choice(sizes))
        room = chunk - s.sink._fill - BLOCK  # white-box: now and then fill the buffer exactly
        if rng.random() < 0.1 and 0 <= room <= lendable:
            size = room - rng.choice([0, 0, 1, 511]) if room >= 511 else room
        if op < 0.45:
            s.copy(f"c{i}.jpg", _bytes(rng, size))
        elif op < 0.6:
            s.cancel(f"x{i}.jpg", size)
        elif op < 0.75:
            s.add(f"a{i}.jpg", _bytes(rng, size))
        else:
            s.add_small([(f"s{i}.cls", _bytes(rng, rng.randrange(0, 20))),
                         (f"s{i}.json", _bytes(rng, rng.randrange(100, 1500)))])
    s.finish(path)
    assert any(fill + total == chunk for fill, total, _ in s.lent)
    assert any(fill + total > chunk and fill % DIRECT_ALIGN for fill, total, _ in s.lent)


def test_reused_buffers_with_stale_bytes_give_the_same_archive(tmp_path: Path, direct: bool) -> None:
    """Buffers go back to a pool and come back dirty: padding and headers must still be clean."""
    chunk = 4 * DIRECT_ALIGN
    with ShardSink(tmp_path / "junk.bin", chunk=chunk) as junk:
        junk.write(b"\xff" * (3 * chunk + 100))  # both buffers full of 0xff
        junk.reserve(chunk - DIRECT_ALIGN)[:] = b"\xff" * (chunk - DIRECT_ALIGN)  # type: ignore[index]
    rng = random.Random(5)
    path = tmp_path / "t.tar"
    s = Script(ShardSink(path, chunk=chunk), chunk)
    _check_mode(s.sink, direct, tmp_path)
    for i in range(40):
        s.copy(f"c{i}.jpg", _bytes(rng, rng.choice([1, 100, 511, 513, 2000, 5000, 9000])))
        if i % 3 == 0:
            s.cancel(f"x{i}.jpg", 7000)
    s.finish(path)


def _fake_jpeg(rng: random.Random, size: int) -> bytes:
    """JPEG magic and random bytes: copy mode never decodes, so this is copied as it is."""
    return b"\xff\xd8\xff" + rng.randbytes(size - 3)


def _check_shards(out: Path, rows: list[dict]) -> list[dict]:
    """Every shard equals tarfile's archive of its members; manifest and index offsets point at
    the right bytes; kept sources are stored byte for byte. Returns the shard manifest rows."""
    source = {r["key"]: r for r in rows}
    manifest = read_table(out / "manifest.parquet", "shard_manifest").to_pylist()
    doc = json.loads((out / "dataset.json").read_text())
    for entry in doc["shards"]:
        data = (out / entry["file"]).read_bytes()
        with tarfile.open(out / entry["file"]) as archive:
            members = [(m.name, archive.extractfile(m).read()) for m in archive]  # type: ignore[union-attr]
        assert data == _reference_tar(members)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
        index = parse_index(out / entry["index_file"])
        mine = [r for r in manifest if r["shard"] == entry["file"]]
        assert len(index) == len(mine) == entry["samples"]
        for row, components in zip(mine, index):
            for ext, comp in zip(("jpg", "cls", "json"), components):
                offset, size = row[f"{ext}_offset"], row[f"{ext}_size"]
                assert (comp.ext, comp.offset, comp.size, comp.name) == (ext, offset, size, f"{row['key']}.{ext}")
                assert data[row[f"{ext}_header_offset"]:offset] == reference_header(f"{row['key']}.{ext}", size)
            jpg = data[row["jpg_offset"]:row["jpg_offset"] + row["jpg_size"]]
            src = source[row["source_key"]]
            if not row["reencoded"]:
                assert jpg == Path(src["path"]).read_bytes()
            assert hashlib.sha256(jpg).hexdigest() == row["sha256"]
            label = b"-1" if src["label"] is None else str(src["label"]).encode()
            assert data[row["cls_offset"]:row["cls_offset"] + row["cls_size"]] == label
            meta = json.loads(data[row["json_offset"]:row["json_offset"] + row["json_size"]])
            assert meta["key"] == src["key"] and meta["sha256"] == row["source_sha256"]
    return manifest


def test_copy_mode_with_small_buffers_equals_one_big_buffer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             direct: bool) -> None:
    """``imgnet shard`` copy mode through 8 KiB buffers: sources of awkward sizes cross buffer
    boundaries, and the general path (PNG, no size in the manifest) and per-sample failures
    (after the member was begun) are mixed in; the shards equal those of the default 8 MiB buffer."""
    rng = random.Random(11)
    folder = tmp_path / "img"
    rows = make_dataset(tmp_path / "img", {"n01440764": 6, "n01443537": 5})
    sizes = [100, 509, 510, 3069, 3070, 3071, 3582, 4093, 4096, 4605, 7677, 8189, 20_000]
    for i, size in enumerate(sizes):
        path = folder / f"fake_{i}.jpg"
        path.write_bytes(_fake_jpeg(rng, size))
        rows.append(row_for(path, f"fake_{i}", "train", i % 3, "n01440764", 10 + i, 20))
    png = folder / "p.png"
    png.write_bytes(jpeg_bytes(30, 20, 3, fmt="PNG"))
    rows.append(row_for(png, "png", "train", 1, "n01443537", 30, 20))  # begun in place, dropped, re-encoded
    rows[1].update(width=None, height=None)  # no size known: the general path
    gone = folder / "gone.jpg"
    gone.write_bytes(_fake_jpeg(rng, 3000))
    rows.append(row_for(gone, "gone", "train", 0, "n01440764", 5, 5))
    gone.unlink()
    changed = folder / "changed.jpg"
    changed.write_bytes(_fake_jpeg(rng, 5000))
    rows.append({**row_for(changed, "changed", "train", 0, "n01440764", 5, 5), "mtime_ns": None})
    changed.write_bytes(_fake_jpeg(rng, 5000))  # same size, other bytes: read in place, then dropped
    rows = [rows[i] for i in random.Random(2).sample(range(len(rows)), len(rows))]
    manifest = write_manifest(rows, tmp_path / "manifest.parquet")

    big = shard(ShardParams(manifest=str(manifest), out=str(tmp_path / "big"), size=12, shuffle=False, workers=1))
    monkeypatch.setattr(worker, "ShardSink", functools.partial(ShardSink, chunk=2 * DIRECT_ALIGN))
    with ShardSink(tmp_path / "probe", chunk=DIRECT_ALIGN) as probe:  # the mode both runs had
        pass
    _check_mode(probe, direct, tmp_path)
    small = shard(ShardParams(manifest=str(manifest), out=str(tmp_path / "small"), size=12, shuffle=False, workers=1))
    assert small.to_dict() | {"out": ""} == big.to_dict() | {"out": ""}
    assert {f["key"]: f["reason"].split(":")[0] for f in small.failed} == {
        "gone": "unreadable", "changed": "changed since verify"}
    for name in [p.name for p in (tmp_path / "big").iterdir() if p.suffix in (".tar", ".idx", ".parquet")]:
        assert (tmp_path / "small" / name).read_bytes() == (tmp_path / "big" / name).read_bytes(), name
    stored = _check_shards(tmp_path / "small", rows)
    assert len(stored) == len(rows) - 2
    assert {r["source_key"]: r["reencoded"] for r in stored}["png"] is True


def test_copy_mode_crosses_the_real_8mib_buffer(tmp_path: Path) -> None:
    """About 17 MB through the default buffer: one member ends exactly on its end (8 MiB), others
    straddle the next boundaries; O_DIRECT where the file system allows it."""
    assert CHUNK == 8 << 20
    rng = random.Random(3)
    folder = tmp_path / "img"
    folder.mkdir()
    first = CHUNK - DIRECT_ALIGN - BLOCK  # the largest lendable member: fill 8 MiB - 4 KiB
    sizes = [first, 1536, 3_000_001, 2_999_999, 1_234_567, 2_500_003, 13, 1_048_577]
    rows = []
    for i, size in enumerate(sizes):
        path = folder / f"s{i}.jpg"
        path.write_bytes(_fake_jpeg(rng, size))
        rows.append(row_for(path, f"s{i}", "train", i, f"n0{i}", 640, 480))
    manifest = write_manifest(rows, tmp_path / "manifest.parquet")
    result = shard(ShardParams(manifest=str(manifest), out=str(tmp_path / "out"), size=100, shuffle=False, workers=1))
    assert result.failed == [] and result.samples == len(sizes)
    stored = _check_shards(tmp_path / "out", rows)
    # s0's .cls and .json take 2 KiB, so s1's .jpg (2 KiB with its header) ends exactly at 8 MiB
    assert stored[0]["json_size"] <= BLOCK and stored[1]["jpg_offset"] + _padded(1536) - BLOCK == CHUNK
    assert any(r["jpg_header_offset"] < 2 * CHUNK < r["jpg_offset"] + r["jpg_size"] for r in stored)


def test_copy_fast_path_equals_the_general_path(tmp_path: Path, direct: bool) -> None:
    """Rows that vouch for their file (size, mtime, sha256, width, height) take the one-area fast
    path; the same rows without mtime take the general path (hash, then members one by one). The
    shards, indexes and slices are the same bytes, through small buffers and the default one."""
    rng = random.Random(7)
    folder = tmp_path / "img"
    rows = make_dataset(folder, {"n01440764": 5, "n01443537": 4})
    for i, size in enumerate([3, 509, 510, 511, 512, 513, 4093, 4096, 7000, 20_000]):
        path = folder / f"odd_{i}.jpg"
        path.write_bytes(_fake_jpeg(rng, max(size, 3)))
        rows.append(row_for(path, f"odd_{i}", "train", i % 2, "n01440764", 10 + i, 20))
    rows[2]["label"] = None  # .cls holds -1
    vouched = write_manifest(rows, tmp_path / "vouched.parquet")
    general = write_manifest([{**r, "mtime_ns": None} for r in rows], tmp_path / "general.parquet")
    for chunk in (2 * DIRECT_ALIGN, CHUNK):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(worker, "ShardSink", functools.partial(ShardSink, chunk=chunk))
            fast = shard(ShardParams(manifest=str(vouched), out=str(tmp_path / f"fast{chunk}"), size=7, workers=1))
            slow = shard(ShardParams(manifest=str(general), out=str(tmp_path / f"slow{chunk}"), size=7, workers=1))
        assert fast.samples == slow.samples == len(rows) and not fast.failed and not slow.failed
        names = sorted(p.name for p in (tmp_path / f"fast{chunk}").iterdir() if p.suffix in (".tar", ".idx", ".parquet"))
        assert len(names) == 3 * fast.shards + 1
        for name in names:
            assert (tmp_path / f"fast{chunk}" / name).read_bytes() == (tmp_path / f"slow{chunk}" / name).read_bytes(), name
        _check_shards(tmp_path / f"fast{chunk}", rows)
