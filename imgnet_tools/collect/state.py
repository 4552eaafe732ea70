"""The collect folder's layout and the run record that says what a finished run was.

::

    DIR/manifest.parquet                      the manifest (schema manifest), written chunk by chunk
    DIR/ab/cd/<sha256>.<ext>                  the stored images, by content
    DIR/_state/run.json                       schema collect_run: the inputs' fingerprint, the plan's size,
                                              whether the manifest is complete, the latest run's params
    DIR/_state/tmp/                           bodies of unknown size being received (emptied when a run starts)
    DIR/.manifest.parquet.collect-work/       while a run is unfinished: the skeleton's locked work folder
                                              (``manifest.parts``): one committed part per chunk, and the
                                              journal of each chunk in flight (:mod:`.chunk`)

Resume is the chunked skeleton's (:mod:`imgnet_tools.execute.chunked`): this module only keeps
the record that lets a re-run of a finished collection do nothing, and refuses a different input
in the same folder unless ``--overwrite``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from imgnet_tools.manifest.atomic import atomic_write_text
from imgnet_tools.manifest.schemas import format_version, read_valid_json, validate_json

MANIFEST = "manifest.parquet"
STATE = "_state"
RUN = "run.json"
STAGE = "collect"


def failed_path(out: Path, key: str) -> str:
    """``path`` of a row whose fetch failed: under ``_state/failed/``, never created (no bytes exist)."""
    return f"{out}/{STATE}/failed/{key}"


def clean_tmp(out: Path) -> None:
    """Remove bodies a killed run left half received (only while holding the run's lock)."""
    shutil.rmtree(out / STATE / "tmp", ignore_errors=True)


def input_facts(paths: list[Path]) -> list[dict[str, Any]]:
    """Path, size and mtime of each input: what the fingerprint covers."""
    facts = []
    for path in paths:
        st = path.stat()
        facts.append({"path": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns})
    return facts


def fingerprint(inputs: list[dict[str, Any]], plan: dict[str, Any]) -> str:
    """sha256 over the inputs' facts and the parameters that decide the manifest's rows (class
    list, default split): a different fingerprint means a different manifest."""
    doc = json.dumps({"inputs": inputs, "plan": plan}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


def file_digest(path: str | os.PathLike[str] | None) -> str | None:
    """sha256 of a small file's bytes (the class list), None for no file."""
    if path is None:
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_run(out: Path) -> dict[str, Any] | None:
    """The run record, or None when there is none (or it is unreadable, or of an older format)."""
    return read_valid_json(out / STATE / RUN, "collect_run")


def write_run(out: Path, doc: dict[str, Any]) -> None:
    """Validate and write the run record atomically."""
    doc = {**doc, "format_version": format_version("collect_run")}
    validate_json(doc, "collect_run", "collect run record")
    (out / STATE).mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / STATE / RUN, json.dumps(doc, indent=1, sort_keys=True) + "\n")
