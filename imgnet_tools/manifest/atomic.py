"""Atomic file and directory writes: write to a temporary name beside the target, then rename.

A crash leaves either the old file or the new one, never half of one. Temporary names start with
``.tmp-`` so that readers and resumers can recognise and clean them.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from imgnet_tools.errors import OutputExistsError

TMP_PREFIX = ".tmp-"
_COUNTER = itertools.count()


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process umask (read once; os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _usual_dir_mode(path: Path) -> None:
    """Give a mkdtemp result (0700) the mode a plain mkdir would have."""
    os.chmod(path, 0o777 & ~_umask())


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success fsync and rename it over ``target``.

    ``fsync=False`` skips the fsync: the rename is still atomic for readers and for a killed
    process, but not durable across a power loss (for small files whose integrity the caller
    checks some other way, e.g. a hash in a record written after them).
    """
    target = Path(target)
    fd, tmp_path = _create_tmp(target)
    os.close(fd)
    try:
        yield tmp_path
        if fsync:
            fsync_path(tmp_path)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync the file at ``path``: its data and size are on disk when this returns."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))  # writable: what fsync needs everywhere
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def start_writeback(fd: int) -> None:
    """Start writing the file's dirty pages to disk without waiting for them, so that a later
    fsync has little left to do (Linux does this for ``POSIX_FADV_DONTNEED``, which then also
    drops the pages that are clean from the page cache); nothing where there is no fadvise."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _create_tmp(target: Path) -> tuple[int, Path]:
    """Create a new temporary file next to ``target`` (and its folder if missing), open for
    writing, with the mode a plain ``open()`` would give (the umask applies); return fd and path."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = target.parent / f"{TMP_PREFIX}{target.name}.{os.getpid()}-{next(_COUNTER)}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # left by a killed process that had our pid
            continue
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
    raise FileExistsError(f"cannot create a temporary file next to {target}")  # pragma: no cover


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``target`` atomically (see :func:`atomic_path` for ``fsync``).

    The temporary file is written through the descriptor that created it (one open): shard runs
    write several small files per shard.
    """
    target = Path(target)
    fd, tmp = _create_tmp(target)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(target: str | os.PathLike[str], text: str, fsync: bool = True) -> None:
    """Write UTF-8 ``text`` to ``target`` atomically (newlines written as is)."""
    atomic_write_bytes(target, text.encode("utf-8"), fsync=fsync)


@contextlib.contextmanager
def atomic_output_dir(target: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Stage a whole output directory and move it into place only when everything is written.

    Refuses an existing non-empty ``target`` unless ``overwrite``. On failure the staging
    directory is removed and ``target`` is left as it was.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise OutputExistsError(f"{target} exists and is not a directory; choose another --out.")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise OutputExistsError(f"{target} already exists and is not empty; pass --overwrite to replace it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{target.name}.", dir=target.parent))
    _usual_dir_mode(staging)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    trash = None
    if target.exists():
        trash = target.parent / f"{TMP_PREFIX}{target.name}.old-{os.getpid()}"
        os.replace(target, trash)
    os.replace(staging, target)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
