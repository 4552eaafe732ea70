"""Content-addressed storage of fetched bodies: ``DIR/ab/cd/<sha256>.<ext>``.

The extension comes from the bytes' magic (:mod:`imgnet_tools.images.sniff`), never from the URL,
so nothing a server or a list says reaches a file name. Content checks come first: the first bytes
must be an image format's magic (``not_an_image`` for HTML, JSON, ...), and the header's width x
height must not exceed ``max_pixels`` (``bomb``; read from the header only, never decoded).

Writing a body of known size (the common case, :meth:`ObjectStore.put`) costs one ``open`` with
``O_CREAT | O_EXCL`` of its final name, one ``write``, one ``close`` and one ``stat``: no temporary
file, no rename, no fsync. Why that is safe:

* The name is the sha256 of the bytes, so a complete file at that name is right by construction;
  the only wrong file there can be is an incomplete one (a worker killed, or the power cut, in
  the middle of writing it). No row ever names such a file: a row is journalled only after its
  write returned, and committed only after the chunk's :meth:`ObjectStore.sync`.
* Whoever finds the name taken (``FileExistsError``: the same image from another URL, an earlier
  run, a killed try) does not trust it blindly: it reads the file back and hashes it; a file whose
  bytes do not match (an incomplete one) is replaced atomically (a temporary file in the same
  folder, renamed over it). So an incomplete file is repaired by the next fetch of the same image
  and is never handed to a later stage.
* ``mtime_ns`` is read with ``stat`` of the name after the write, so the manifest records the file
  that is there (another writer's identical copy, if it replaced ours meanwhile).

Folders ``ab/`` and ``ab/cd/`` are made when an ``open`` first finds them missing, once each.

Durability: nothing is fsynced per file. Every file of a chunk is made durable at once before the
chunk's result (which names them) is committed: one ``syncfs`` of the output's file system
(Linux; :func:`sync_file_system`, by the driver for the local pool), else an fsync of every file and
folder it wrote (:meth:`ObjectStore.sync`, in the worker).
On a quiet disk a ``syncfs`` after 1000 images of 92 KB took about 0.1-0.4 s here; an fsync per
image made every later file creation wait for a journal commit (``BENCHMARKS.md``, collect). The
catch: ``syncfs`` also waits for other programs' dirty data on the same file system.

Bodies of unknown size (no Content-Length, compressed on the wire, or above the in-memory limit)
stream to a temporary file under ``DIR/_state/tmp/`` while they are hashed (:class:`Body`), and are
renamed into place when complete and checked.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import itertools
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from imgnet_tools.errors import ImgnetError
from imgnet_tools.images.sniff import HEAD_BYTES, sniff_format
from imgnet_tools.manifest.atomic import TMP_PREFIX

TMP_DIR = "_state/tmp"
DECODED = frozenset({"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"})
EXTENSIONS = {
    "JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif",
    "JPEG2000": "jp2", "HEIF": "heic", "AVIF": "avif", "PSD": "psd", "ICO": "ico", "JPEGXL": "jxl",
}
HEADER_KEEP = 1 << 16  # leading bytes kept in memory for the header check (the rest goes to disk only)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_COUNTER = itertools.count()


class StorageError(ImgnetError):
    """Writing to the output folder failed (disk full, permissions): the whole run stops."""


def storage_error(exc: OSError, root: str) -> StorageError:
    return StorageError(f"cannot write under {root}: {exc}; free space or fix permissions, then run again "
                        "(finished chunks are kept).")


def object_path(root: str, sha256: str, ext: str) -> str:
    """Where the bytes with this sha256 live: ``root/ab/cd/<sha256>.<ext>``."""
    return f"{root}/{sha256[:2]}/{sha256[2:4]}/{sha256}.{ext}"


def pixel_count(head: bytes, path: str | None, fmt: str) -> int | None:
    """width x height from the image header (no decode): read from ``head`` (the body's first
    bytes), or from the file when the header runs past them (a large EXIF or ICC block first).
    None when the header does not parse (verify then reports it as corrupt or truncated)."""
    from PIL import Image

    from imgnet_tools.images.check import pixel_limit_off

    if fmt not in DECODED:
        return None
    if fmt == "JPEG":
        size = jpeg_size(head)
        if size is not None:
            return size[0] * size[1]
    with pixel_limit_off(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for source in (io.BytesIO(head), path) if path is not None else (io.BytesIO(head),):
            try:
                with Image.open(source, formats=[fmt]) as im:
                    width, height = im.size
                return int(width) * int(height)
            except Exception:  # noqa: BLE001 - any header failure: try the whole file, then leave it to verify
                continue
    return None


_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's first SOF marker, walking the marker segments of ``data``;
    None when ``data`` ends before one (then PIL reads the header). A fraction of what
    ``PIL.Image.open`` costs, which matters at a thousand images a second."""
    i, end = 2, len(data)
    while i + 4 <= end:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF:
            if i + 9 > end or length < 7:
                return None
            height = int.from_bytes(data[i + 5:i + 7], "big")
            width = int.from_bytes(data[i + 7:i + 9], "big")
            return width, height
        if marker == 0xDA or length < 2:  # start of scan before any frame header: not for us to judge
            return None
        i += 2 + length
    return None


def _syncfs_function() -> Callable[[int], int] | None:
    """libc's ``syncfs(fd)`` (Linux), or None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):
        return None
    return fn


_SYNCFS = _syncfs_function()
HAS_SYNCFS = _SYNCFS is not None


@dataclass
class Stored:
    """A body kept in the store: its path, sha256, size, extension, the file's mtime, and whether
    this fetch wrote the file (``new``) or found it there."""

    path: str
    sha256: str
    size: int
    ext: str
    mtime_ns: int
    new: bool


Kept = tuple["Stored | None", "str | None", "str | None"]  # (stored, reason, detail)


@dataclass
class ObjectStore:
    """The object store under ``root`` as one chunk uses it (it remembers what to make durable)."""

    root: str
    max_pixels: int
    written: list[str] = field(default_factory=list)  # files this chunk wrote (for the fsync fallback)
    new_bytes: int = 0

    def tmp_dir(self) -> str:
        return f"{self.root}/{TMP_DIR}"

    def new_body(self) -> "Body":
        """A body being received; call :meth:`Body.feed` with each network chunk."""
        return Body(self)

    def judge(self, head: bytes, path: str | None = None) -> tuple[str | None, str | None, str | None]:
        """(format, reason, detail) of a body from its first bytes: reason None when it may be kept."""
        fmt = sniff_format(head[:HEAD_BYTES])
        if fmt is None:
            return None, "not_an_image", "the body starts with no image format's magic"
        pixels = pixel_count(head[:HEADER_KEEP], path, fmt)
        if pixels is not None and pixels > self.max_pixels:
            return fmt, "bomb", f"{pixels} pixels in the header, above --max-pixels {self.max_pixels}"
        return fmt, None, None

    def put(self, data: bytes) -> Kept:
        """Keep a whole body received in memory (see the module docstring); never leaves a partial
        file behind but when the process dies in the middle of its write."""
        if not data:
            return None, "empty", "the server sent an empty body"
        fmt, reason, detail = self.judge(data)
        if reason is not None or fmt is None:
            return None, reason, detail
        digest = hashlib.sha256(data).hexdigest()
        target = object_path(self.root, digest, EXTENSIONS[fmt])
        try:
            new = self._create(target, data)
            if not new:
                new = self._check_existing(target, digest, data)
            st = os.stat(target)
        except OSError as exc:
            raise storage_error(exc, self.root) from exc
        if new:
            self.written.append(target)
            self.new_bytes += len(data)
        return Stored(target, digest, len(data), EXTENSIONS[fmt], st.st_mtime_ns, new), None, None

    def _create(self, target: str, data: bytes) -> bool:
        """Write ``data`` to a new file at ``target``; False when the name is already taken."""
        try:
            fd = os.open(target, _CREATE, 0o666)
        except FileExistsError:
            return False
        except FileNotFoundError:
            _make_folders(target)
            try:
                fd = os.open(target, _CREATE, 0o666)
            except FileExistsError:
                return False
        try:
            _write_all(fd, data)
        except BaseException:
            os.close(fd)
            _unlink(target)
            raise
        os.close(fd)
        return True

    def _check_existing(self, target: str, digest: str, data: bytes) -> bool:
        """The name is taken: keep the file if it holds these bytes, else replace it (it is an
        incomplete one). True when it was replaced."""
        if _file_digest(target, len(data)) == digest:
            return False
        folder, name = os.path.split(target)
        tmp = f"{folder}/{TMP_PREFIX}{name}.{os.getpid()}-{next(_COUNTER)}"
        fd = os.open(tmp, _CREATE, 0o666)
        try:
            _write_all(fd, data)
        except BaseException:
            os.close(fd)
            _unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, target)
        return True

    def place(self, tmp: str, digest: str, size: int, ext: str) -> Stored:
        """Move a complete, checked temporary file to its content-addressed name (or drop it when
        the same bytes are already there)."""
        target = object_path(self.root, digest, ext)
        try:
            new = _file_digest(target, size) != digest
            if new:
                try:
                    os.replace(tmp, target)
                except FileNotFoundError:
                    _make_folders(target)
                    os.replace(tmp, target)
            else:
                _unlink(tmp)
            st = os.stat(target)
        except OSError as exc:
            _unlink(tmp)
            raise storage_error(exc, self.root) from exc
        if new:
            self.written.append(target)
            self.new_bytes += size
        return Stored(target, digest, size, ext, st.st_mtime_ns, new)

    def sync(self) -> None:
        """Make every file this chunk wrote (and every file it found, written by a killed try)
        durable: one ``syncfs``, else an fsync of each file and folder it wrote."""
        if HAS_SYNCFS:
            sync_file_system(self.root)
        else:  # pragma: no cover - not Linux
            try:
                for path in self.written:
                    _fsync(path, os.O_RDWR)
                for folder in sorted({os.path.dirname(p) for p in self.written}):
                    _fsync(folder, os.O_RDONLY)
            except OSError as exc:
                raise storage_error(exc, self.root) from exc
        self.written.clear()


def sync_file_system(root: str) -> None:
    """``syncfs`` of the file system holding ``root``: every file written there by any process of
    this machine is durable when it returns (Linux only: see :data:`HAS_SYNCFS`)."""
    assert _SYNCFS is not None  # noqa: S101 - callers check HAS_SYNCFS
    try:
        fd = os.open(root, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            if _SYNCFS(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        finally:
            os.close(fd)
    except OSError as exc:
        raise storage_error(exc, root) from exc


def file_digest(path: str, size: int | None = None) -> str | None:
    """sha256 of the file at ``path`` (None when it is missing, unreadable or not ``size`` bytes)."""
    return _file_digest(path, size)


def _file_digest(path: str, size: int | None) -> str | None:
    try:
        with open(path, "rb", buffering=0) as fh:
            if size is not None and os.fstat(fh.fileno()).st_size != size:
                return None
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def _make_folders(target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)


def _fsync(path: str, flags: int) -> None:  # pragma: no cover - not Linux
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Body:
    """One response body of unknown size on its way to the store: sniffed from its first bytes,
    hashed as it comes, written to a temporary file. Call :meth:`discard` on any failure."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.hasher = hashlib.sha256()
        self.size = 0
        self.format: str | None = None
        self._head = b""
        self.head = b""  # the first HEADER_KEEP bytes, for the header check
        self._fd: int | None = None
        self._tmp: str | None = None

    def feed(self, data: bytes) -> bool:
        """Take the next bytes; False when the body is not an image (stop reading it)."""
        try:
            return self._feed(data)
        except OSError as exc:
            self.discard()
            raise storage_error(exc, self.store.root) from exc

    def _feed(self, data: bytes) -> bool:
        self.size += len(data)
        self.hasher.update(data)
        if self._fd is None:
            self._head += data
            if len(self._head) < HEAD_BYTES:
                return True
            return self._start()
        if len(self.head) < HEADER_KEEP:
            self.head += data[: HEADER_KEEP - len(self.head)]
        _write_all(self._fd, data)
        return True

    def _start(self) -> bool:
        """The head is complete: sniff it, and open the temporary file if it is an image."""
        self.format = sniff_format(self._head[:HEAD_BYTES])
        if self.format is None:
            return False
        tmp_dir = self.store.tmp_dir()
        name = f"{tmp_dir}/{TMP_PREFIX}body.{os.getpid()}-{next(_COUNTER)}"
        try:
            self._fd = os.open(name, _CREATE, 0o666)
        except FileNotFoundError:
            os.makedirs(tmp_dir, exist_ok=True)
            self._fd = os.open(name, _CREATE, 0o666)
        self._tmp = name
        _write_all(self._fd, self._head)
        self.head, self._head = self._head[:HEADER_KEEP], b""
        return True

    def finish(self) -> bool:
        """The body ended: sniff a body shorter than the head now; False when it is not an image."""
        if self._fd is None and self.size:
            try:
                return self._start()
            except OSError as exc:
                self.discard()
                raise storage_error(exc, self.store.root) from exc
        return True

    def commit(self) -> Kept:
        """Keep the complete body: (stored, None, None), or (None, reason, detail) when it is empty,
        no image or a bomb. The temporary file is gone afterwards either way."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        tmp = self._tmp
        if self.size == 0 or tmp is None:
            self.discard()
            return None, "empty", "the server sent an empty body"
        fmt, reason, detail = self.store.judge(self.head, tmp)
        if reason is not None or fmt is None:
            self.discard()
            return None, reason, detail
        self._tmp = None
        return self.store.place(tmp, self.hasher.hexdigest(), self.size, EXTENSIONS[fmt]), None, None

    def discard(self) -> None:
        """Drop whatever was received."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._tmp is not None:
            _unlink(self._tmp)
            self._tmp = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
