"""Committed chunk results of a running stage: the store behind resume (``execute.chunked.Store``).

A stage that rewrites a table (verify, dedup, scan, collect) keeps each chunk's result as an
Arrow IPC file in a work folder beside its output, ``.{output}.{stage}-work/part-NNNNNN.arrow``,
written atomically as soon as the chunk returns, with the chunk's key in the file's metadata. A
killed run leaves its finished chunks there; the next run with the same input and parameters
(:func:`work_folder` compares an identity record) finds them and runs only the rest. When the
stage has assembled its output from the parts, it removes the folder.

Parts are not fsynced: a part that did not survive a power loss intact fails to read, and its
chunk is simply run again. The folder is locked (``flock``) while a run uses it, so two runs of
one stage on one output never mix their parts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgnet_tools.errors import LockedError, write_failed
from imgnet_tools.manifest.atomic import atomic_path, atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from imgnet_tools.execute.chunked import Chunk

_KEY = b"imgnet.chunk_key"
IDENTITY = "identity.json"
LOCK = ".lock"


def digest(*parts: Any) -> str:
    """sha256 of a JSON rendering of ``parts`` (for chunk keys and identities)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class PartStore:
    """Chunk results as Arrow IPC files in ``folder`` (one per chunk index, key in the metadata)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, index: int) -> Path:
        return self.folder / f"part-{index:06d}.arrow"

    def load(self, chunk: "Chunk[Any]") -> "pa.Table | None":
        """The committed result of ``chunk``, or None (none, another key, or unreadable)."""
        return self.read(chunk.index, chunk.key)

    def read(self, index: int, key: str | None = None) -> "pa.Table | None":
        """Part ``index`` (when its key is ``key``, if given), or None."""
        import pyarrow as pa

        path = self.path(index)
        if not path.is_file():
            return None
        try:
            with pa.memory_map(str(path)) as source:
                reader = pa.ipc.open_file(source)
                meta = reader.schema.metadata or {}
                if key is not None and meta.get(_KEY, b"").decode() != key:
                    return None
                table = reader.read_all()
        except (pa.ArrowException, OSError):
            return None
        return table.replace_schema_metadata(None)

    def commit(self, chunk: "Chunk[Any]", table: "pa.Table") -> None:
        """Keep ``table`` as ``chunk``'s result (atomically; see the module docstring on fsync)."""
        import pyarrow as pa

        schema = table.schema.with_metadata({_KEY: chunk.key.encode()})
        with atomic_path(self.path(chunk.index), fsync=False) as tmp:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
                writer.write_table(table.replace_schema_metadata(schema.metadata))


def work_path(output: str | os.PathLike[str], stage: str) -> Path:
    """The work folder of ``stage`` writing ``output``: a hidden folder beside it."""
    output = Path(output).resolve()
    return output.parent / f".{output.name}.{stage}-work"


@contextlib.contextmanager
def work_folder(output: str | os.PathLike[str], stage: str, identity: dict[str, Any]) -> Iterator[PartStore]:
    """The locked work folder of ``stage`` for ``output``, holding the parts of an earlier run
    only when that run had the same ``identity`` (input file, parameters); otherwise empty."""
    folder = work_path(output, stage)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise write_failed(exc, f"making the work folder {folder}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"another imgnet {stage} run is writing {output}; wait for it to finish.") from None
        record = folder / IDENTITY
        wanted = json.dumps(identity, sort_keys=True, default=str)
        try:
            same = record.read_text(encoding="utf-8") == wanted
        except OSError:
            same = False
        if not same:
            for entry in folder.iterdir():
                if entry.name != LOCK:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            try:
                atomic_write_text(record, wanted, fsync=False)
            except OSError as exc:
                raise write_failed(exc, f"writing {record}") from exc
        yield PartStore(folder)
    finally:
        os.close(fd)


def remove_work(output: str | os.PathLike[str], stage: str) -> None:
    """Remove the work folder once the stage's output is in place."""
    shutil.rmtree(work_path(output, stage), ignore_errors=True)
