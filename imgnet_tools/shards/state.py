"""Output-directory state: the lock, the run record, per-shard done records, partial-file cleanup.

``DIR/.lock`` is held with ``flock`` for the whole run (the kernel drops it if the process dies,
so a killed run never leaves a stale lock). ``DIR/_state/run.json`` holds the output-affecting
parameters; ``DIR/_state/{stem}.json`` is written after a shard's three files and marks it done.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

from imgnet_tools.errors import LockedError, OutputExistsError
from imgnet_tools.manifest.atomic import TMP_PREFIX, atomic_write_text
from imgnet_tools.manifest.schemas import format_version, read_valid_json

LOCK_NAME = ".lock"
STATE_DIR = "_state"
RUN_NAME = "run.json"
DATASET_NAME = "dataset.json"
MANIFEST_NAME = "manifest.parquet"
# How run.json's fingerprint is taken: 1 (imgnet before the plan-ordered selection file) hashed the
# rows in key-hash order; 2 hashes the selection file in plan order (shards.plan._write_ordered).
FINGERPRINT_VERSION = 2
_SHARD_FILE = re.compile(r".+-[0-9]{6}\.(tar|idx|parquet)")


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` exclusively; raise :class:`LockedError` if another run holds it."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"another imgnet shard run is writing {out}; wait for it or use another --out.") from None
        yield
    finally:
        os.close(fd)


def dump_json(doc: dict[str, Any]) -> str:
    """Canonical JSON text for our small documents (sorted keys, newline at the end)."""
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def read_json(path: Path, schema: str) -> dict[str, Any] | None:
    """A validated JSON artifact, or ``None`` when it is missing or unreadable (a partial run)."""
    return read_valid_json(path, schema)


def _ours(out: Path) -> list[Path]:
    """Every file and folder under ``out`` that a shard run writes (not the lock, not foreign files)."""
    found = [p for p in out.iterdir() if _SHARD_FILE.fullmatch(p.name) or p.name.startswith(TMP_PREFIX)]
    found += [p for p in (out / STATE_DIR, out / DATASET_NAME, out / MANIFEST_NAME) if p.exists()]
    if (out / STATE_DIR).is_dir():  # temporary records of a killed run
        found += [p for p in (out / STATE_DIR).iterdir() if p.name.startswith(TMP_PREFIX)]
    return found


def prepare(out: Path, params: dict[str, Any], fingerprint: str, shards: int, overwrite: bool,
            keep: tuple[Path, ...] = ()) -> None:
    """Make ``out`` ready for this run: resume a matching one, refuse or clear a different one.

    Call with the lock held. Temporary files of a killed run are removed either way (but those in
    ``keep``: this run's own).
    """
    run_path = out / STATE_DIR / RUN_NAME
    previous = read_json(run_path, "shard_run")
    ours = [p for p in _ours(out) if p not in keep]
    foreign = [p for p in out.iterdir() if p.name != LOCK_NAME and p not in ours and p not in keep]
    same = (previous is not None and previous["params"] == params and previous["fingerprint"] == fingerprint
            and previous.get("fingerprint_version", 1) == FINGERPRINT_VERSION)
    if not same and (ours or foreign) and not overwrite:
        if previous is not None and previous["params"] == params and previous.get("fingerprint_version", 1) != \
                FINGERPRINT_VERSION:
            raise OutputExistsError(
                f"{out} was written by an earlier imgnet, which recorded the manifest rows it took in another way "
                "(fingerprint version 1), so this run cannot tell whether they are still the same; its shards are "
                "fine as they are: keep them, or pass --overwrite to write them again with this version.")
        what = "different parameters or manifest rows" if previous else "files not written by imgnet shard"
        raise OutputExistsError(f"{out} holds {what}; pass --overwrite to replace it, or choose another --out.")
    for path in ours if not same else [p for p in ours if p.name.startswith(TMP_PREFIX)]:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)  # may have gone with _state/ already
    if not same:
        (out / STATE_DIR).mkdir(exist_ok=True)
        doc = {"format_version": format_version("shard_run"), "params": params, "fingerprint": fingerprint,
               "fingerprint_version": FINGERPRINT_VERSION, "shards": shards}
        atomic_write_text(run_path, dump_json(doc))


def record_path(out: Path, stem: str) -> Path:
    """Where the done record of shard ``stem`` lives."""
    return out / STATE_DIR / f"{stem}.json"


def done_record(out: Path, stem: str, fingerprint: str) -> dict[str, Any] | None:
    """The shard's record when the shard is done with this plan: the record matches, the tar has
    its size, and the index and Parquet slice have the recorded sha256."""
    record = read_json(record_path(out, stem), "shard_record")
    if record is None or record["fingerprint"] != fingerprint:
        return None
    tar = out / record["file"]
    try:
        if tar.stat().st_size != record["bytes"]:
            return None
        for suffix, field in ((".idx", "index_sha256"), (".parquet", "manifest_sha256")):
            if hashlib.sha256(tar.with_suffix(suffix).read_bytes()).hexdigest() != record[field]:
                return None
    except OSError:
        return None
    return record
