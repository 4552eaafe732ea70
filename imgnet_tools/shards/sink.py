"""The file a shard's tar is written to: large aligned chunks, hashed and written by a second thread.

Copy mode is bound by memory traffic, not by Python: every byte is read from the page cache,
hashed, and written. :class:`ShardSink` overlaps the last two: member bytes go into one of two
8 MiB page-aligned buffers, either copied in (:meth:`ShardSink.write`) or, for the image
payloads, read from the source file straight into a reserved area (:meth:`ShardSink.reserve`,
so each byte is copied once from the page cache, not twice); a full buffer goes to a writer
thread, and the main thread hashes it (sha256 of the whole file) while the writer thread writes
it (both release the GIL), then fills the other buffer. Where the file
system allows it the file is opened with ``O_DIRECT``, so full chunks go from our buffer to the
device without a second copy through the page cache (and without evicting the sources from it);
otherwise it is an ordinary buffered file whose writeback is started after each chunk. The tail
that is not a multiple of the device block is written with ``O_DIRECT`` switched off, then the
file is fsynced: the bytes are on disk when :meth:`close` returns (or, with ``sync=False``, once
the caller has fsynced the file: ``imgnet shard`` does that for a group of shards at once).
"""

from __future__ import annotations

import concurrent.futures as cf
import fcntl
import hashlib
import mmap
import os
from pathlib import Path

from imgnet_tools.manifest.atomic import start_writeback

CHUNK = 8 << 20
DIRECT_ALIGN = 4096  # O_DIRECT wants offsets and lengths aligned to the logical block (<= 4 KiB)


class ShardSink:
    """A write-only binary file with a running sha256 (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], chunk: int = CHUNK, sync: bool = True) -> None:
        self._fd, self.direct = _open(Path(path))
        self._sync = sync
        self._sha = hashlib.sha256()
        self._buffers = [_take_buffer(chunk), _take_buffer(chunk)]
        self._pending: list[cf.Future[None] | None] = [None, None]
        self._current = 0
        self._fill = 0
        self._chunk = chunk
        self._writer = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="imgnet-shard-sink")

    def write(self, data: bytes | memoryview) -> int:
        """Append ``data`` (copied into the current buffer; full buffers go to the writer thread)."""
        view = memoryview(data)
        while view:
            n = min(len(view), self._chunk - self._fill)
            self._buffers[self._current][self._fill:self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == self._chunk:
                self._submit()
        return len(data)

    def reserve(self, n: int) -> memoryview | None:
        """The next ``n`` bytes of the file as a writable view into the current buffer, or ``None``
        when ``n`` is too large for one buffer (then use :meth:`write`).

        Lets the caller build data in place (``readinto`` a source file, a tar header) instead of
        building it elsewhere and copying it in. Nothing counts as written until :meth:`commit`;
        reserving again without committing simply gives the same bytes again. The view is valid
        until the next call on the sink (the buffer may then be written, or reused).
        """
        if n > self._chunk - DIRECT_ALIGN:
            return None
        if self._fill + n > self._chunk:
            self._submit(final=False)
        return memoryview(self._buffers[self._current])[self._fill:self._fill + n]

    def commit(self, n: int) -> None:
        """Count the first ``n`` bytes of the last :meth:`reserve` as written."""
        self._fill += n
        if self._fill == self._chunk:
            self._submit()

    def _submit(self, final: bool = True) -> None:
        """Hand the current buffer to the writer thread, hash it here meanwhile, switch buffers.

        ``final=False`` (the buffer is not full, but the next reservation does not fit): only the
        whole ``DIRECT_ALIGN`` blocks are written now, and the rest is carried to the start of the
        other buffer, so that every write but the file's last stays aligned for ``O_DIRECT``.
        """
        index, fill = self._current, self._fill
        length = fill if final else fill - fill % DIRECT_ALIGN
        if length:
            self._pending[index] = self._writer.submit(self._write_chunk, index, length)
            self._sha.update(memoryview(self._buffers[index])[:length])  # releases the GIL, like the write
        self._current = 1 - index
        self._fill = 0
        waiting = self._pending[self._current]
        if waiting is not None:
            waiting.result()  # the other buffer must be written before we fill it again (raises its error)
            self._pending[self._current] = None
        if fill > length:  # the writer thread only reads buffer ``index``: copying from it is safe
            self._buffers[self._current][:fill - length] = self._buffers[index][length:fill]
            self._fill = fill - length

    def _write_chunk(self, index: int, length: int) -> None:
        view = memoryview(self._buffers[index])[:length]
        aligned = length - length % DIRECT_ALIGN if self.direct else length
        _write_all(self._fd, view[:aligned])
        if aligned < length:  # only the last chunk of a file can be short
            fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) & ~os.O_DIRECT)
            _write_all(self._fd, view[aligned:])
        elif not self.direct:
            # Start writeback of what is written so far without waiting for it (and drop it
            # from the page cache: a shard is not read back soon), so the final fsync is short.
            start_writeback(self._fd)

    def hexdigest(self) -> str:
        """sha256 of everything written (call after :meth:`close`)."""
        return self._sha.hexdigest()

    def close(self) -> None:
        """Write what is left, fsync (unless made with ``sync=False``: then the caller makes the file
        durable) and close; raise the writer thread's error if it had one."""
        try:
            if self._fill:
                self._submit()
            for i, future in enumerate(self._pending):
                if future is not None:
                    future.result()
                    self._pending[i] = None
            if self._sync:
                os.fsync(self._fd)
        finally:
            self._writer.shutdown(wait=True)
            os.close(self._fd)
            _give_back(self._buffers)

    def abort(self) -> None:
        """Stop without writing what is left (the caller removes the file)."""
        self._writer.shutdown(wait=True, cancel_futures=True)
        os.close(self._fd)
        _give_back(self._buffers)

    def __enter__(self) -> "ShardSink":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


_FREE: list[mmap.mmap] = []  # buffers kept for the next shard of this process (fresh ones page-fault)


def _take_buffer(size: int) -> mmap.mmap:
    while _FREE:
        buffer = _FREE.pop()
        if len(buffer) == size:
            return buffer
        try:
            buffer.close()
        except BufferError:  # a view from reserve() is still alive: the mapping goes with it
            pass
    return mmap.mmap(-1, size)


def _give_back(buffers: list[mmap.mmap]) -> None:
    _FREE.extend(buffers)
    del _FREE[4:]  # two sinks' worth at most


def _open(path: Path) -> tuple[int, bool]:
    """Open for writing, with O_DIRECT where the file system supports it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    direct = getattr(os, "O_DIRECT", 0)
    if direct:
        try:
            return os.open(path, flags | direct, 0o644), True
        except OSError:  # tmpfs and some network file systems refuse O_DIRECT
            pass
    return os.open(path, flags, 0o644), False


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]
