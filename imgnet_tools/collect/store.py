"""Content-addressed storage of fetched bodies: ``DIR/ab/cd/<sha256>.<ext>``, written atomically.

A body streams into a temporary file under ``DIR/_state/tmp/`` while it is hashed (memory stays
at one network chunk per request, whatever the image's size); when it is complete and passes the
content checks it is renamed to its sha256 name. The extension comes from the bytes' magic
(:mod:`imgnet_tools.images.sniff`), never from the URL, so nothing a server or a list says
reaches a file name. A body whose file already exists (the same image from another URL, or an
earlier run) is not written again: the temporary file is dropped.

Content checks, before anything is kept: the first bytes must be an image format's magic
(``not_an_image`` for HTML, JSON, ... and the download stops there), and the header's
width x height must not exceed ``max_pixels`` (``bomb``; read from the header only, never decoded).

Durability: files are renamed into place without an fsync each; the chunk that wrote them fsyncs
them all (:meth:`Store.sync`) before its part file, which names them, is committed. A part on disk
therefore never names a file that a power cut could lose.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from imgnet_tools.errors import ImgnetError
from imgnet_tools.images.sniff import HEAD_BYTES, sniff_format
from imgnet_tools.manifest.atomic import TMP_PREFIX, fsync_path

TMP_DIR = ("_state", "tmp")
EXTENSIONS = {
    "JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif",
    "JPEG2000": "jp2", "HEIF": "heic", "AVIF": "avif", "PSD": "psd", "ICO": "ico", "JPEGXL": "jxl",
}
_COUNTER = itertools.count()


class StorageError(ImgnetError):
    """Writing to the output folder failed (disk full, permissions): the whole run stops."""


def _storage_error(exc: OSError, root: Path) -> StorageError:
    return StorageError(f"cannot write under {root}: {exc}; free space or fix permissions, then run again "
                        "(finished chunks are kept).")


def object_path(root: Path, sha256: str, ext: str) -> Path:
    """Where the bytes with this sha256 live: ``root/ab/cd/<sha256>.<ext>``."""
    return root / sha256[:2] / sha256[2:4] / f"{sha256}.{ext}"


def pixel_count(path: Path, fmt: str) -> int | None:
    """width x height from the image header (no decode); None when the header does not parse
    (verify then reports it as corrupt or truncated)."""
    from PIL import Image

    from imgnet_tools.images.check import pixel_limit_off

    if fmt not in EXTENSIONS or fmt in ("JPEG2000", "HEIF", "AVIF", "PSD", "ICO", "JPEGXL"):
        return None
    with pixel_limit_off(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(path, formats=[fmt]) as im:
                width, height = im.size
        except Exception:  # noqa: BLE001 - any header failure: verify will judge the file
            return None
    return int(width) * int(height)


@dataclass
class Stored:
    """A body kept in the store: its path, sha256, size, extension and the file's mtime."""

    path: str
    sha256: str
    size: int
    ext: str
    mtime_ns: int


@dataclass
class Store:
    """The object store under ``root`` for one chunk (it remembers the files it wrote, to sync them)."""

    root: Path
    max_pixels: int
    written: list[Path] = field(default_factory=list)
    _dirs: set[Path] = field(default_factory=set)

    def tmp_dir(self) -> Path:
        return self.root.joinpath(*TMP_DIR)

    def new_body(self) -> "Body":
        """A body being received; call :meth:`Body.feed` with each network chunk."""
        return Body(self)

    def commit(self, body: "Body") -> tuple[Stored | None, str | None, str | None]:
        """Keep a complete body: (stored, None, None), or (None, reason, detail) when it is no image
        or a bomb. The temporary file is gone afterwards either way."""
        try:
            return self._commit(body)
        except OSError as exc:
            body.discard()
            raise _storage_error(exc, self.root) from exc

    def _commit(self, body: "Body") -> tuple[Stored | None, str | None, str | None]:
        fmt = body.format
        tmp = body.close()
        if body.size == 0 or tmp is None:
            return None, "empty", "the server sent an empty body"
        if fmt is None:  # pragma: no cover - feed() stops a body without magic before it is kept
            _unlink(tmp)
            return None, "not_an_image", "no image magic"
        pixels = pixel_count(tmp, fmt)
        if pixels is not None and pixels > self.max_pixels:
            _unlink(tmp)
            return None, "bomb", f"{pixels} pixels in the header, above --max-pixels {self.max_pixels}"
        digest = body.hasher.hexdigest()
        ext = EXTENSIONS[fmt]
        target = object_path(self.root, digest, ext)
        try:
            st = os.stat(target)
        except FileNotFoundError:
            st = None
        if st is not None and st.st_size == body.size:
            _unlink(tmp)  # the same bytes are already stored (another URL, an earlier run)
        else:
            self._ensure_dir(target.parent)
            os.replace(tmp, target)
            self.written.append(target)
            st = os.stat(target)
        return Stored(str(target), digest, body.size, ext, st.st_mtime_ns), None, None

    def sync(self) -> None:
        """fsync every file this chunk wrote, then their folders (once each)."""
        for path in self.written:
            with contextlib.suppress(FileNotFoundError):
                fsync_path(path)
        for folder in {p.parent for p in self.written}:
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self.written.clear()

    def _ensure_dir(self, folder: Path) -> None:
        if folder not in self._dirs:
            folder.mkdir(parents=True, exist_ok=True)
            self._dirs.add(folder)


class Body:
    """One response body on its way to the store: sniffed from its first bytes, hashed as it
    comes, written to a temporary file. Call :meth:`discard` on any failure."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hasher = hashlib.sha256()
        self.size = 0
        self.format: str | None = None
        self._head = b""
        self._fd: int | None = None
        self._tmp: Path | None = None

    def feed(self, data: bytes) -> bool:
        """Take the next bytes; False when the body is not an image (stop reading it)."""
        try:
            return self._feed(data)
        except OSError as exc:
            self.discard()
            raise _storage_error(exc, self.store.root) from exc

    def _feed(self, data: bytes) -> bool:
        self.size += len(data)
        self.hasher.update(data)
        if self._fd is None:
            self._head += data
            if len(self._head) < HEAD_BYTES:
                return True
            return self._start()
        _write_all(self._fd, data)
        return True

    def _start(self) -> bool:
        """The head is complete: sniff it, and open the temporary file if it is an image."""
        self.format = sniff_format(self._head[:HEAD_BYTES])
        if self.format is None:
            return False
        tmp_dir = self.store.tmp_dir()
        name = f"{TMP_PREFIX}body.{os.getpid()}-{next(_COUNTER)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(tmp_dir / name, flags, 0o666)
        except FileNotFoundError:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(tmp_dir / name, flags, 0o666)
        self._tmp = tmp_dir / name
        _write_all(self._fd, self._head)
        self._head = b""
        return True

    def finish(self) -> bool:
        """The body ended: sniff a body shorter than the head now; False when it is not an image."""
        if self._fd is None and self.size:
            try:
                return self._start()
            except OSError as exc:
                self.discard()
                raise _storage_error(exc, self.store.root) from exc
        return True

    def close(self) -> Path | None:
        """Close the temporary file; its path (None when nothing was written)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return self._tmp

    def discard(self) -> None:
        """Drop whatever was received."""
        tmp = self.close()
        if tmp is not None:
            _unlink(tmp)
        self._tmp = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
