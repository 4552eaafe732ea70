"""One chunk of URLs, as the chunked skeleton's work function: a worker fetches it in its own event loop.

The skeleton (:func:`imgnet_tools.execute.chunked.run_chunks`) hands a worker a chunk's items,
``(chunk index, offset in the chunk, URL)`` for every row of the chunk that is to be fetched, and
commits what :func:`fetch_items` returns: a table with one row per item, its ``offset`` and what
the fetch found (:data:`RESULT_COLUMNS`). Assembly (:mod:`.assemble`) lays those over the plan.

Within a chunk, resume is per URL: each finished URL is appended to the chunk's journal in the
work folder (a few lines at a time), so a worker killed half-way, the skeleton's retry of the
chunk, or the next run after a kill fetches only what is not in it. A journalled stored body is
trusted only if its file still holds the bytes its sha256 names (read back and hashed: a power
cut may have lost it). Every file a result names is made durable before the result is committed:
on Ray by the worker (:meth:`.store.ObjectStore.sync`, since the files may be on another node's
disk), on the local pool by the driver's commit thread (``run._Committer``: one ``syncfs``, while
the worker already fetches its next chunk; ``Settings.sync`` False). A chunk's journal is removed
once its result is committed.

A URL whose fetch kills the worker twice (the skeleton then runs each item alone) becomes a
rejected row, ``internal_error`` (or ``timeout``, for a time limit), from :func:`lost_item`.
"""

from __future__ import annotations

import datetime
import json
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from imgnet_tools.collect.fetch import FetchConfig, Outcome, fetch_chunk
from imgnet_tools.collect.store import ObjectStore, file_digest

# (chunk index, offset of the row in its chunk, URL)
Item = tuple[int, int, str]
# What a worker returns per item (besides ``offset``): manifest columns, and two counters for the
# summary (fetched by this try rather than taken from the journal; wrote a new file).
RESULT_COLUMNS = ("path", "bytes", "mtime_ns", "status", "reason", "final_url", "http_status", "fetched_at",
                  "content_type", "fetch_error", "sha256")
JOURNAL_FLUSH = 32  # journal lines written at once (a kill loses at most these, which are then fetched again)


@dataclass(frozen=True)
class Settings:
    """What every worker needs besides its chunk's items: how to fetch, where to store, where
    the journals go (the stage's work folder)."""

    config: FetchConfig
    root: str
    work: str
    sync: bool = True  # make the chunk's files durable before returning (else the driver does: run._Committer)


def journal_path(work: str, chunk: int) -> str:
    return f"{work}/journal-{chunk:06d}.jsonl"


def fetch_items(settings: Settings, items: Sequence[Item]) -> "pa.Table":
    """Fetch every item of one chunk not already in its journal; one result row per item, in item
    order. Per-URL problems are rows; only a run-level failure (the output folder unwritable) raises."""
    in_worker = multiprocessing.parent_process() is not None
    if not items:
        return result_table([])
    journal = journal_path(settings.work, items[0][0])
    done = read_journal(journal, items)
    todo = [item for item in items if item[1] not in done]
    store = ObjectStore(settings.root, settings.config.max_pixels)
    if todo:
        with _JournalWriter(journal) as log:
            def record(i: int, outcome: Outcome) -> None:
                offset = todo[i][1]
                row = result_row(offset, outcome)
                done[offset] = row
                log.add(offset, todo[i][2], row)

            fetch_chunk([item[2] for item in todo], settings.config, store, on_result=record, keep=in_worker)
    if settings.sync:
        store.sync()
    return result_table([done[item[1]] for item in items])


def result_row(offset: int, outcome: Outcome, tried: bool = True) -> dict[str, Any]:
    """One item's result row: stored (``pending``, for verify), or rejected with its reason."""
    stored = outcome.stored
    row: dict[str, Any] = {
        "offset": offset, "path": None, "bytes": None, "mtime_ns": None, "status": "rejected",
        "reason": outcome.reason or "connection", "fetch_error": outcome.error, "sha256": None,
        "final_url": outcome.final_url if outcome.http_status is not None else None,
        "http_status": outcome.http_status, "fetched_at": outcome.fetched_at, "content_type": outcome.content_type,
        "tried": tried, "new_file": False,
    }
    if stored is not None:
        row.update(path=stored.path, bytes=stored.size, mtime_ns=stored.mtime_ns, status="pending", reason=None,
                   fetch_error=None, sha256=stored.sha256, new_file=stored.new)
    return row


def lost_item(settings: Settings, item: Item, why: str, detail: str) -> "pa.Table":
    """The result of a URL whose fetch killed its worker twice (``crashed``) or ran out of time."""
    reason = "timeout" if why == "timeout" else "internal_error"
    outcome = Outcome(reason=reason, error=f"the worker fetching this URL {detail} twice"[:500])
    return result_table([result_row(item[1], outcome, tried=True)])


def join_results(parts: list["pa.Table"]) -> "pa.Table":
    return pa.concat_tables(parts) if parts else result_table([])


def result_table(rows: list[dict[str, Any]]) -> "pa.Table":
    return pa.Table.from_pylist(rows, schema=result_schema())


def result_schema() -> "pa.Schema":
    from imgnet_tools.manifest.parquet import arrow_schema

    return pa.schema([pa.field("offset", pa.int32()), *arrow_schema("manifest", RESULT_COLUMNS),
                      pa.field("tried", pa.bool_()), pa.field("new_file", pa.bool_())])


# --- the journal ----------------------------------------------------------------------------------

class _JournalWriter:
    """Appends finished URLs to a chunk's journal, :data:`JOURNAL_FLUSH` lines per write."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: list[str] = []
        self.fd = -1

    def __enter__(self) -> "_JournalWriter":
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self.fd = os.open(self.path, flags, 0o644)
        return self

    def add(self, offset: int, url: str, row: dict[str, Any]) -> None:
        when = row["fetched_at"]
        entry = {k: v for k, v in row.items() if k in RESULT_COLUMNS}
        entry["fetched_at"] = when.isoformat() if isinstance(when, datetime.datetime) else None
        self.lines.append(json.dumps({"o": offset, "u": url, "r": entry}, separators=(",", ":")) + "\n")
        if len(self.lines) >= JOURNAL_FLUSH:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            data = "".join(self.lines).encode("utf-8", "surrogateescape")
            self.lines = []
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.flush()
        finally:
            os.close(self.fd)


def read_journal(path: str, items: Sequence[Item]) -> dict[int, dict[str, Any]]:
    """Result rows a killed try of this chunk finished, by offset. A torn or foreign line is
    skipped; a stored body whose file no longer holds its bytes is fetched again."""
    found: dict[int, dict[str, Any]] = {}
    try:
        with open(path, "rb") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return found
    urls = {offset: url for _, offset, url in items}
    for line in lines:
        try:
            entry = json.loads(line)
            offset, url, row = entry["o"], entry["u"], entry["r"]
        except (ValueError, TypeError, KeyError):
            continue
        if not isinstance(row, dict) or set(row) != set(RESULT_COLUMNS) or urls.get(offset) != url:
            continue
        if row["status"] == "pending":
            if not isinstance(row["path"], str) or file_digest(row["path"], row["bytes"]) != row["sha256"]:
                continue
            try:  # the file that is there now (an identical copy may have replaced the one journalled)
                row["mtime_ns"] = os.stat(row["path"]).st_mtime_ns
            except OSError:
                continue
        try:
            when = row["fetched_at"]
            row["fetched_at"] = datetime.datetime.fromisoformat(when) if when else None
        except (TypeError, ValueError):
            continue
        found[offset] = {"offset": offset, **row, "tried": False, "new_file": False}
    return found
