"""The tar writer's pieces: fast headers equal tarfile's, the sink's bytes and sha256 are exact."""

from __future__ import annotations

import hashlib
import os
import random
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgnet_tools.shards import sink as sink_module
from imgnet_tools.shards.index import IndexEntry, format_index, parse_index
from imgnet_tools.shards.sink import ShardSink
from imgnet_tools.shards.tario import TarBuilder, _header, read_members, reference_header


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9_+=,@~-]{1,80}\.(jpg|cls|json)", fullmatch=True), st.integers(0, 8**11 - 1))
def test_packed_header_equals_tarfiles(name: str, size: int) -> None:
    assert _header(name, size) == reference_header(name, size)


def _pieces(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.choice([0, 1, 511, 512, 513, 4095, 4097, 70_000, 300_000])) for _ in range(60)]


@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
@pytest.mark.parametrize("chunk", [4096, 65536, 1 << 20])
def test_sink_writes_exact_bytes_and_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct: bool, chunk: int) -> None:
    if not direct:  # what a file system without O_DIRECT (tmpfs) gets
        monkeypatch.setattr(sink_module, "_open", lambda p: (os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), False))
    pieces = _pieces(chunk)
    path = tmp_path / "out.bin"
    with ShardSink(path, chunk=chunk) as out:
        for piece in pieces:
            out.write(piece)
    expected = b"".join(pieces)
    assert path.read_bytes() == expected and out.hexdigest() == hashlib.sha256(expected).hexdigest()
    if direct and not out.direct:
        pytest.skip(f"{tmp_path} is on a file system that refuses O_DIRECT; the buffered case covers it")
    assert out.direct is direct


def test_builder_offsets_match_tarfile_and_index_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "train-000000.tar"
    members = [(f"k{i}.{ext}", data) for i, piece in enumerate(_pieces(7)[:10]) for ext, data in (("jpg", piece), ("cls", b"3"))]
    with ShardSink(path) as out:
        builder = TarBuilder(out)
        spans = [builder.add(name, data) for name, data in members]
        size = builder.finish()
    assert size == path.stat().st_size and size % (20 * 512) == 0
    read = list(read_members(str(path)))
    assert [(m.name, m.header_offset, m.offset, m.data) for m in read] == [
        (s.name, s.header_offset, s.offset, data) for s, (_, data) in zip(spans, members)]
    with tarfile.open(path) as archive:
        assert archive.getnames() == [name for name, _ in members]
    samples = [[IndexEntry(s.name.split(".")[1], s.offset, s.size, s.name) for s in spans[i:i + 2]] for i in range(0, len(spans), 2)]
    (tmp_path / "x.idx").write_text(format_index(samples))
    assert parse_index(tmp_path / "x.idx") == samples
