"""Deterministic tar (ustar) writing with known offsets, and a reader that refuses unsafe members.

We build every header ourselves with fixed fields (mtime, mode, uid/gid, owner names), exactly
as :class:`tarfile.TarInfo` would (a test holds this), so the same members in the same order give
the same bytes on any machine, and every header and data offset is known as it is written.
Payloads are written straight from the bytes we were given, or read by the caller straight into
the stream's buffer (:meth:`TarBuilder.begin`, :meth:`TarBuilder.lend_sample` for a whole sample
in one area). The archive ends with two zero blocks and is padded to
tar's 10 KiB record size, like GNU tar and Python's tarfile.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from typing import Iterator, Protocol, runtime_checkable

from imgnet_tools.shards.keys import split_member

BLOCK = 512
RECORD = 20 * BLOCK
FIXED_MTIME = 946684800  # 2000-01-01T00:00:00Z: fixed so that output does not depend on the clock
FIXED_MODE = 0o444
FIXED_OWNER = "imgnet"
SMALL = 8192  # members up to this size are joined with their header into one write


@dataclass(frozen=True)
class MemberSpan:
    """Where one member lives in the archive."""

    name: str
    header_offset: int
    offset: int
    size: int


def reference_header(name: str, size: int) -> bytes:
    """The member header as Python's tarfile writes it with our fixed fields (slow; for tests)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = FIXED_MTIME
    info.mode = FIXED_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = FIXED_OWNER
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="ascii", errors="strict")


def _template() -> tuple[bytes, int]:
    """A header for an empty name and size 0 with the checksum field blank, and its byte sum."""
    header = bytearray(reference_header("x", 0))
    header[0:100] = bytes(100)
    header[124:136] = bytes(12)
    header[148:156] = b" " * 8
    return bytes(header), sum(header)


_TEMPLATE, _TEMPLATE_SUM = _template()
_HEAD, _MIDDLE, _TAIL = _TEMPLATE[100:124], _TEMPLATE[136:148], _TEMPLATE[156:]


def _header(name: str, size: int) -> bytes:
    """The ustar header of a regular file with our fixed fields, packed directly.

    Equivalent to :func:`reference_header` (a test holds this) but about 20x faster: only the
    name, the size and the checksum change from member to member.
    """
    raw = name.encode("ascii")
    if len(raw) > 100 or size >= 8**11:
        return reference_header(name, size)  # tarfile raises its own clear error for these
    size_field = b"%011o\0" % size
    checksum = _TEMPLATE_SUM + sum(raw) + sum(size_field)
    return b"".join((raw, bytes(100 - len(raw)), _HEAD, size_field, _MIDDLE, b"%06o\0 " % checksum, _TAIL))


ZEROS = bytes(BLOCK)


class Writable(Protocol):
    """Anything with ``write(bytes)``: a binary file, or a :class:`~imgnet_tools.shards.sink.ShardSink`."""

    def write(self, data: bytes | memoryview, /) -> int: ...


@runtime_checkable
class Reservable(Writable, Protocol):
    """A stream that lends its buffer for in-place writes (:class:`~imgnet_tools.shards.sink.ShardSink`)."""

    def reserve(self, n: int, /) -> memoryview | None: ...

    def commit(self, n: int, /) -> None: ...


class TarBuilder:
    """Append members to a binary stream, tracking offsets (the stream hashes, if it wants to).

    Two ways to add a member: :meth:`add` / :meth:`add_small` copy given bytes; :meth:`begin`
    lends the member's payload area so the caller can fill it in place (copy mode reads each
    source file straight into the stream's buffer: one copy instead of two, no per-file bytes
    object), then :meth:`end` writes it or :meth:`cancel` drops it.
    """

    def __init__(self, stream: Writable) -> None:
        self._stream = stream
        self._reservable = stream if isinstance(stream, Reservable) else None
        self._pos = 0
        self._open: tuple[str, int, memoryview, Reservable | None] | None = None  # name, size, area, lender

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._pos

    def _write(self, data: bytes | memoryview) -> None:
        self._stream.write(data)
        self._pos += len(data)

    def add(self, name: str, data: bytes) -> MemberSpan:
        """Write member ``name`` holding ``data``; return its header and data offsets."""
        header_offset = self._pos
        pad = ZEROS[:-len(data) % BLOCK]
        if len(data) <= SMALL:  # one write call for header, data and padding
            self._write(b"".join((_header(name, len(data)), data, pad)))
        else:
            self._write(_header(name, len(data)))
            self._write(data)
            if pad:
                self._write(pad)
        return MemberSpan(name, header_offset, header_offset + BLOCK, len(data))

    def add_small(self, members: list[tuple[str, bytes]]) -> list[MemberSpan]:
        """Write several small members (``(name, data)``, each up to :data:`SMALL` bytes) in one
        write call; return their spans. The bytes are those of :meth:`add` for each in turn."""
        parts: list[bytes] = []
        spans = []
        pos = self._pos
        for name, data in members:
            parts += (_header(name, len(data)), data, ZEROS[:-len(data) % BLOCK])
            spans.append(MemberSpan(name, pos, pos + BLOCK, len(data)))
            pos += BLOCK + len(data) + (-len(data) % BLOCK)
        self._write(b"".join(parts))
        return spans

    def begin(self, name: str, size: int) -> memoryview:
        """Start member ``name`` of ``size`` bytes; return the writable area its data goes in.

        The area lies in the stream's buffer when it lends one, else in a scratch buffer. Nothing
        is written until :meth:`end`; :meth:`cancel` (or another :meth:`begin`) drops it.
        """
        total = BLOCK + size + (-size % BLOCK)
        lent = self._reservable.reserve(total) if self._reservable is not None else None
        area = lent if lent is not None else memoryview(bytearray(total))
        self._open = (name, size, area, self._reservable if lent is not None else None)
        return area[BLOCK:BLOCK + size]

    def end(self) -> MemberSpan:
        """Write the member started by :meth:`begin` (header, the data filled in, padding)."""
        if self._open is None:
            raise ValueError("TarBuilder.end() without begin()")
        name, size, area, lender = self._open
        self._open = None
        area[:BLOCK] = _header(name, size)
        area[BLOCK + size:] = ZEROS[:len(area) - BLOCK - size]  # a lent buffer holds old bytes
        header_offset = self._pos
        if lender is not None:
            lender.commit(len(area))
            self._pos += len(area)
        else:
            self._write(area)
        return MemberSpan(name, header_offset, header_offset + BLOCK, size)

    def lend(self, size: int) -> tuple[memoryview, int] | None:
        """The next ``size`` bytes of the stream's own buffer, to be filled with whole members
        (headers from :func:`member_header`, payloads, padding), and the archive offset they start
        at; ``None`` when the stream lends no buffer or not that much at once. :meth:`advance`
        writes them; not calling it drops them (the archive stays as it was)."""
        if self._reservable is None:
            return None
        area = self._reservable.reserve(size)
        return None if area is None else (area, self._pos)

    def advance(self, size: int) -> None:
        """Write the ``size`` bytes lent by :meth:`lend` and filled by the caller."""
        assert self._reservable is not None, "advance() without lend()"
        self._reservable.commit(size)
        self._pos += size

    def cancel(self) -> None:
        """Drop the member started by :meth:`begin`: the archive stays as it was before it."""
        self._open = None

    def lend_sample(self, key: str, ext: str, size: int, small: list[tuple[str, bytes]]) -> "LentSample | None":
        """Lay out one sample's members in one area of the stream's buffer: ``KEY.ext`` of ``size``
        bytes, to be filled by the caller in place (:attr:`LentSample.payload`), then the ``small``
        members (``(ext, data)``), each with its header and padding. :meth:`LentSample.commit`
        writes the whole area and returns the members' spans; not calling it drops them. ``None``
        when the stream lends no buffer or not that much at once (use :meth:`begin` then)."""
        pad = -size % BLOCK
        tail = b"".join(b"".join((_header(f"{key}.{e}", len(d)), d, ZEROS[:-len(d) % BLOCK])) for e, d in small)
        total = BLOCK + size + pad + len(tail)
        lent = self.lend(total)
        if lent is None:
            return None
        area, start = lent
        return LentSample(self, key, ext, size, small, area, start, tail)

    def finish(self) -> int:
        """End the archive (two zero blocks, record padding); return its size in bytes."""
        end = self._pos + 2 * BLOCK
        self._write(bytes(2 * BLOCK + (-end % RECORD)))
        return self._pos




class LentSample:
    """An area of the stream's buffer holding one sample's members (see :meth:`TarBuilder.lend_sample`)."""

    def __init__(self, builder: TarBuilder, key: str, ext: str, size: int, small: list[tuple[str, bytes]],
                 area: memoryview, start: int, tail: bytes) -> None:
        self._builder, self._key, self._ext, self._size, self._small = builder, key, ext, size, small
        self._area, self._start, self._tail = area, start, tail
        self.payload = area[BLOCK:BLOCK + size]

    def commit(self) -> list[MemberSpan]:
        """Write the members (headers, the payload filled in, padding); their spans in order."""
        size, area = self._size, self._area
        end = BLOCK + size
        pad = -size % BLOCK
        area[:BLOCK] = _header(f"{self._key}.{self._ext}", size)
        area[end:end + pad] = ZEROS[:pad]  # a lent buffer holds old bytes
        area[end + pad:] = self._tail
        self._builder.advance(len(area))
        spans = [MemberSpan(f"{self._key}.{self._ext}", self._start, self._start + BLOCK, size)]
        at = self._start + end + pad
        for ext, data in self._small:
            spans.append(MemberSpan(f"{self._key}.{ext}", at, at + BLOCK, len(data)))
            at += BLOCK + len(data) + (-len(data) % BLOCK)
        return spans


@dataclass(frozen=True)
class Member:
    """A member read back from an archive, with its offsets."""

    name: str
    key: str
    ext: str
    header_offset: int
    offset: int
    data: bytes


class UnsafeMemberError(ValueError):
    """A member name or type that could escape an extraction folder or confuse a reader."""


def read_members(path: str) -> Iterator[Member]:
    """Yield every member of a shard in order; raise :class:`UnsafeMemberError` on a member that is
    not a regular file or whose name is not a safe ``KEY.ext`` (``/``, ``..``, leading dot, ...)."""
    with tarfile.open(path, mode="r:") as archive:
        for info in archive:
            parts = split_member(info.name)
            if not info.isreg() or parts is None:
                raise UnsafeMemberError(f"{path}: member {info.name!r} (type {info.type!r}) is not a safe KEY.ext file")
            fh = archive.extractfile(info)
            data = fh.read() if fh is not None else b""
            yield Member(info.name, parts[0], parts[1], info.offset, info.offset_data, data)
