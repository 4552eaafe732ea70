"""One chunk of URLs: the task a worker process runs, with its own asyncio event loop.

:func:`run_chunk` fetches every row of chunk N that has no result yet, appends each result to
the chunk's journal as it arrives, fsyncs the images it stored, then commits the chunk's part
(``_state/parts/NNNNNN.parquet``, manifest rows in row order, written atomically) and removes the
journal and the spooled input. A worker killed half-way loses nothing it finished: the next try
(a local pool's rebuilt worker, a Ray retry, or the next run) reads the journal back and fetches
only the rest. Tasks are independent; they share nothing but the output folder, so they run
the same on the local pool and on Ray (whose workers need the folder on a shared file system).
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgnet_tools.collect.fetch import FetchConfig, Outcome, fetch_all
from imgnet_tools.collect.plan import read_chunk
from imgnet_tools.collect.state import chunk_path, failed_path, journal_path, part_path
from imgnet_tools.collect.store import Store

# Every collect manifest row has these columns, in this order.
ROW_COLUMNS = ("key", "path", "source_path", "split", "label", "wnid", "bytes", "mtime_ns", "source_bytes",
               "source_mtime_ns", "status", "reason", "url", "final_url", "http_status", "fetched_at",
               "content_type", "caption", "fetch_error", "sha256")


@dataclass(frozen=True)
class ChunkTask:
    """Chunk ``index`` of the run in ``out``; ``retry``: reasons whose rows a finished chunk fetches again."""

    out: str
    index: int
    config: FetchConfig
    retry: tuple[str, ...] = ()


@dataclass
class ChunkResult:
    """What one chunk task did: rows in the chunk, URLs tried now, rows kept from before, counts."""

    index: int
    rows: int
    tried: int
    kept: int
    stored_bytes: int = 0
    status: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)


def run_chunk(task: ChunkTask) -> ChunkResult:
    """Fetch what chunk ``task.index`` still lacks and commit its part. Per-URL problems are rows;
    only a run-level failure (the output folder unwritable) raises."""
    out = Path(task.out)
    part = part_path(out, task.index)
    planned, done = _planned_rows(out, task, part)
    journal = journal_path(out, task.index)
    done.update(_read_journal(journal, planned))
    todo = [i for i, r in enumerate(planned) if i not in done and r["reason"] is None]
    store = Store(out, task.config.max_pixels)
    stored_bytes = 0
    if todo:
        journal.parent.mkdir(parents=True, exist_ok=True)
        with open(journal, "a", encoding="utf-8") as log:
            def record(j: int, outcome: Outcome) -> None:
                row = manifest_row(planned[todo[j]], outcome, out)
                done[todo[j]] = row
                # buffered: a kill loses at most the last few lines, whose URLs are then fetched again
                log.write(json.dumps({"i": todo[j], "row": _jsonable(row)}, separators=(",", ":")) + "\n")

            asyncio.run(fetch_all([planned[i]["url"] for i in todo], task.config, store, on_result=record))
        stored_bytes = store.new_bytes
        store.sync()
    rows = [done.get(i) or manifest_row(r, None, out) for i, r in enumerate(planned)]
    _commit(out, task.index, rows)
    return ChunkResult(
        index=task.index, rows=len(rows), tried=len(todo), kept=len(rows) - len(todo), stored_bytes=stored_bytes,
        status=dict(collections.Counter(r["status"] for r in rows)),
        reasons=dict(collections.Counter(r["reason"] for r in rows if r["reason"])),
    )


def _planned_rows(out: Path, task: ChunkTask, part: Path) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """The chunk's rows, and those already final: from the spooled input, or (a finished chunk
    asked to retry some reasons) from its part, keeping every row whose reason is not retried."""
    if not part.is_file():
        return read_chunk(chunk_path(out, task.index)), {}
    from imgnet_tools.manifest.parquet import read_table

    old: list[dict[str, Any]] = read_table(part, "manifest", columns=list(ROW_COLUMNS)).to_pylist()
    keep = {i: r for i, r in enumerate(old) if r["reason"] not in task.retry}
    planned = [r if i in keep else {**r, "reason": None, "fetch_error": None} for i, r in enumerate(old)]
    return planned, keep


def manifest_row(planned: dict[str, Any], outcome: Outcome | None, out: Path) -> dict[str, Any]:
    """The manifest row of one planned row: fetched (``pending`` for verify), or rejected with its reason."""
    row = {k: planned.get(k) for k in ("key", "split", "label", "wnid", "url", "caption")}
    stored = outcome.stored if outcome is not None else None
    if stored is not None and outcome is not None:
        row.update(path=stored.path, source_path=stored.path, bytes=stored.size, mtime_ns=stored.mtime_ns,
                   source_bytes=stored.size, source_mtime_ns=stored.mtime_ns, status="pending", reason=None,
                   sha256=stored.sha256, fetch_error=None)
    else:
        missing = failed_path(out, planned["key"])
        reason = outcome.reason if outcome is not None else planned.get("reason")
        error = outcome.error if outcome is not None else planned.get("fetch_error")
        row.update(path=missing, source_path=missing, bytes=None, mtime_ns=None, source_bytes=None,
                   source_mtime_ns=None, status="rejected", reason=reason or "connection", sha256=None, fetch_error=error)
    facts = outcome or Outcome()
    row.update(final_url=facts.final_url if outcome is not None and outcome.http_status is not None else None,
               http_status=facts.http_status, fetched_at=facts.fetched_at, content_type=facts.content_type)
    return {k: row.get(k) for k in ROW_COLUMNS}


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    when = row.get("fetched_at")
    return {**row, "fetched_at": when.isoformat() if isinstance(when, datetime.datetime) else None}


def _read_journal(path: Path, planned: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Rows a killed try of this chunk finished, by position. A torn last line is skipped; a
    stored file that is gone (or changed size) makes its row be fetched again."""
    found: dict[int, dict[str, Any]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return found
    except (OSError, UnicodeDecodeError):
        return found
    for line in lines:
        try:
            entry = json.loads(line)
            i, row = entry["i"], entry["row"]
        except (ValueError, TypeError, KeyError):
            continue
        if not isinstance(row, dict) or set(row) != set(ROW_COLUMNS) or not isinstance(i, int):
            continue
        if not 0 <= i < len(planned) or planned[i]["key"] != row["key"]:
            continue
        if row["status"] == "pending" and not _same_file(row["path"], row["bytes"]):
            continue
        when = row.get("fetched_at")
        row["fetched_at"] = datetime.datetime.fromisoformat(when) if when else None
        found[i] = row
    return found


def _same_file(path: str, size: int | None) -> bool:
    try:
        return os.stat(path).st_size == size
    except OSError:
        return False


def _commit(out: Path, index: int, rows: list[dict[str, Any]]) -> None:
    """Write the part atomically (fsynced), then drop the journal and the spooled input."""
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import arrow_schema, write_table

    table = pa.Table.from_pylist(rows, schema=arrow_schema("manifest", ROW_COLUMNS))
    write_table(table, part_path(out, index), "manifest")
    for path in (journal_path(out, index), chunk_path(out, index)):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
