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


def _usual_mode(path: Path, directory: bool = False) -> None:
    """Give a mkstemp/mkdtemp result (0600/0700) the mode a plain open/mkdir would have."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success fsync and rename it over ``target``.

    ``fsync=False`` skips the fsync: the rename is still atomic for readers and for a killed
    process, but not durable across a power loss (for small files whose integrity the caller
    checks some other way, e.g. a hash in a record written after them).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{target.name}.", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    _usual_mode(tmp_path)
    try:
        yield tmp_path
        if fsync:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``target`` atomically (see :func:`atomic_path` for ``fsync``).

    The temporary file is created with the usual mode and written through the descriptor that
    created it (one open, no chmod): shard runs write four small files per shard.
    """
    target = Path(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = target.parent / f"{TMP_PREFIX}{target.name}.{os.getpid()}-{next(_COUNTER)}"
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for a plain open
            break
        except FileExistsError:  # left by a killed process that had our pid
            continue
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
    else:  # pragma: no cover - a hundred stale names in a row
        raise FileExistsError(f"cannot create a temporary file next to {target}")
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
    _usual_mode(staging, directory=True)
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
