"""The collect folder's layout, its lock, and the run record that makes runs resumable.

::

    DIR/manifest.parquet              the manifest (schema manifest), assembled from the parts
    DIR/ab/cd/<sha256>.<ext>          the stored images, by content
    DIR/.lock                         held with flock while a run writes (the kernel drops it if the run dies)
    DIR/_state/run.json               schema collect_run: the input's fingerprint, chunk plan, last params
    DIR/_state/chunks/NNNNNN.parquet  schema collect_chunk: a chunk's input rows, until its part exists
    DIR/_state/parts/NNNNNN.parquet   schema manifest: a finished chunk's rows (its presence marks it done)
    DIR/_state/parts/NNNNNN.jsonl     schema collect_journal: rows of a chunk in progress, one per line
    DIR/_state/tmp/                   bodies being received (emptied when a run starts)

Every file is written atomically (temporary name, then rename) or, for the journal, appended a
line at a time (a torn last line is ignored when it is read back).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from imgnet_tools.errors import LockedError, SchemaError
from imgnet_tools.manifest.atomic import atomic_write_text
from imgnet_tools.manifest.schemas import format_version, validate_json

MANIFEST = "manifest.parquet"
LOCK = ".lock"
STATE = "_state"
RUN = "run.json"


def state_dir(out: Path) -> Path:
    return out / STATE


def chunk_path(out: Path, index: int) -> Path:
    """A chunk's spooled input rows."""
    return out / STATE / "chunks" / f"{index:06d}.parquet"


def part_path(out: Path, index: int) -> Path:
    """A finished chunk's manifest rows."""
    return out / STATE / "parts" / f"{index:06d}.parquet"


def journal_path(out: Path, index: int) -> Path:
    """The rows of a chunk in progress, one JSON object per line."""
    return out / STATE / "parts" / f"{index:06d}.jsonl"


def failed_path(out: Path, key: str) -> str:
    """``path`` of a row whose fetch failed: under ``_state/failed/``, never created (no bytes exist)."""
    return str(out / STATE / "failed" / key)


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` exclusively; :class:`LockedError` when another run holds it."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"another imgnet collect run is writing {out}; wait for it or use another --out.") from None
        yield
    finally:
        os.close(fd)


def clean_tmp(out: Path) -> None:
    """Remove bodies a killed run left half received (only while holding the lock)."""
    shutil.rmtree(out / STATE / "tmp", ignore_errors=True)


def input_facts(paths: list[Path]) -> list[dict[str, Any]]:
    """Path, size and mtime of each input: what the fingerprint covers."""
    facts = []
    for path in paths:
        st = path.stat()
        facts.append({"path": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns})
    return facts


def fingerprint(inputs: list[dict[str, Any]], plan: dict[str, Any]) -> str:
    """sha256 over the inputs' facts and the parameters that shape the chunk plan (class list,
    default split, chunk size): a different fingerprint means a different plan."""
    doc = json.dumps({"inputs": inputs, "plan": plan}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


def file_digest(path: str | os.PathLike[str] | None) -> str | None:
    """sha256 of a small file's bytes (the class list), None for no file."""
    if path is None:
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_run(out: Path) -> dict[str, Any] | None:
    """The run record, or None when there is none (or it is unreadable: a fresh plan is made)."""
    path = out / STATE / RUN
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        validate_json(doc, "collect_run", str(path))
    except (OSError, ValueError, SchemaError):
        return None
    return doc


def write_run(out: Path, doc: dict[str, Any]) -> None:
    """Validate and write the run record atomically."""
    doc = {**doc, "format_version": format_version("collect_run")}
    validate_json(doc, "collect_run", "collect run record")
    atomic_write_text(out / STATE / RUN, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def reset_plan(out: Path) -> None:
    """Forget an earlier plan (chunks, parts, journals, run record, manifest); stored images stay."""
    for name in ("chunks", "parts", "tmp"):
        shutil.rmtree(out / STATE / name, ignore_errors=True)
    for path in (out / STATE / RUN, out / MANIFEST):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
