"""Stage ``collect``: download every URL of the input lists into ``OUT`` and write ``OUT/manifest.parquet``.

The run (each step resumes where a killed run stopped):

1. Take ``OUT/.lock``; compare the inputs' fingerprint with ``_state/run.json``: the same plan is
   resumed, a different one is refused unless ``overwrite`` (which keeps the stored images).
2. Plan: read the lists a block at a time and spool chunks of ``chunk_size`` rows
   (:mod:`.plan`); skipped when the record says the plan is spooled.
3. Fetch: every chunk without a part is one task on :func:`imgnet_tools.execute.tasks.run_tasks`
   (the local pool, or Ray); each worker process runs its chunk in its own event loop
   (:mod:`.chunk`) and commits the chunk's part as it finishes. ``retry`` re-opens finished
   chunks holding rows rejected for those reasons.
4. Assemble ``manifest.parquet`` from the parts in chunk order (:mod:`.assemble`) and mark the
   record complete. A re-run with the same inputs then does nothing.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgnet_tools.collect.chunk import ChunkResult, ChunkTask, run_chunk
from imgnet_tools.collect.fetch import USER_AGENT, FetchConfig
from imgnet_tools.collect.inputs import check_inputs
from imgnet_tools.collect.state import (MANIFEST, chunk_path, clean_tmp, file_digest, fingerprint, input_facts,
                                        locked, part_path, read_run, reset_plan, write_run)
from imgnet_tools.collect.urls import AddressPolicy
from imgnet_tools.errors import InputError, OutputExistsError
from imgnet_tools.execute.params import EXECUTORS, ExecutorParams, resolve_workers
from imgnet_tools.execute.tasks import run_tasks
from imgnet_tools.images.check import COLLECT_REASONS, DEFAULT_MAX_PIXELS

PER_WORKER_CONCURRENCY = 128
PER_WORKER_PER_HOST = 16
# Reasons --retry accepts: every outcome of a fetch (unknown_class is decided by the input).
RETRY_REASONS = COLLECT_REASONS + ("empty", "not_an_image", "too_large", "truncated", "bomb")


@dataclass(frozen=True)
class CollectParams:
    """``imgnet collect`` options (field names = CLI option names)."""

    urls: tuple[str, ...]
    out: str
    classes: str | None = None
    preset: str | None = None
    split: str = "train"
    chunk_size: int = 1000
    concurrency: int | None = None
    per_host: int | None = None
    connect_timeout: float = 10.0
    timeout: float = 30.0
    retries: int = 3
    max_retry_wait: float = 60.0
    max_redirects: int = 10
    max_bytes: int = 32 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    ignore_opt_out: bool = False
    allow_private_hosts: bool = False
    allow_host: tuple[str, ...] = ()
    user_agent: str = USER_AGENT
    retry: tuple[str, ...] = ()
    overwrite: bool = False
    executor: str = "local"
    address: str | None = None
    workers: int | None = None


@dataclass
class CollectResult:
    """Summary of a collect run (``--json`` prints :meth:`to_dict`)."""

    manifest: str
    rows: int
    chunks: int
    chunks_run: int
    tried: int
    stored_bytes: int
    classes: int
    status: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


Tally = Callable[[dict[str, Any]], None]


def collect(params: CollectParams, progress: Callable[[int], None] | None = None,
            tally: Tally | None = None) -> CollectResult:
    """Run (or resume) a collection into ``params.out``. ``progress(n)``: n more URLs are done
    (rows of finished chunks). ``tally(snapshot)``: once the plan is known and after every chunk,
    ``{"rows", "done", "tried", "status", "reasons"}`` (counts of this run's chunks), for a
    progress display that shows rates and failure counts."""
    from imgnet_tools.collect.assemble import assemble, summarize

    _validate(params)
    paths = check_inputs(params.urls)
    out = Path(os.path.abspath(params.out))
    executor = ExecutorParams(params.executor, params.address, params.workers)
    with locked(out):
        clean_tmp(out)
        record, classes = _plan(params, paths, out, progress)
        todo = _chunks_to_run(out, record["chunks"], params.retry)
        if progress is not None:
            progress(record["rows"] - sum(_chunk_rows(record, i) for i in todo))
        config = fetch_config(params)
        tasks = [ChunkTask(str(out), i, config, tuple(sorted(set(params.retry)))) for i in todo]
        results: list[ChunkResult] = []
        counts = _Counts(rows=record["rows"], done=record["rows"] - sum(_chunk_rows(record, i) for i in todo))
        if tally is not None:
            tally(counts.snapshot())

        def done(_: int, result: ChunkResult) -> None:
            results.append(result)
            counts.add(result)
            if progress is not None:
                progress(result.rows)
            if tally is not None:
                tally(counts.snapshot())

        run_tasks(run_chunk, tasks, executor, on_done=done)
        if todo or not record["complete"] or not (out / MANIFEST).is_file():
            assemble(out, record["chunks"])
        record.update(complete=True, params=run_params(params))
        write_run(out, record)
    status, reasons = summarize(out / MANIFEST)
    return CollectResult(
        manifest=str(Path(params.out) / MANIFEST), rows=record["rows"], chunks=record["chunks"], chunks_run=len(todo),
        tried=sum(r.tried for r in results), stored_bytes=sum(r.stored_bytes for r in results),
        classes=record.get("classes", 0), status=status, reasons=reasons, params=run_params(params),
    )


@dataclass
class _Counts:
    """Running totals for ``tally``."""

    rows: int
    done: int
    tried: int = 0
    status: collections.Counter[str] = field(default_factory=collections.Counter)
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)

    def add(self, result: ChunkResult) -> None:
        self.done += result.rows
        self.tried += result.tried
        self.status.update(result.status)
        self.reasons.update(result.reasons)

    def snapshot(self) -> dict[str, Any]:
        return {"rows": self.rows, "done": self.done, "tried": self.tried, "status": dict(self.status),
                "reasons": dict(self.reasons)}


def outputs_complete(params: CollectParams) -> bool:
    """True when the manifest is complete for these inputs and no ``retry`` reason is left in it."""
    try:
        paths = check_inputs(params.urls)
    except InputError:
        return False
    out = Path(os.path.abspath(params.out))
    record = read_run(out)
    if record is None or not record["complete"] or not (out / MANIFEST).is_file():
        return False
    if record["fingerprint"] != fingerprint(input_facts(paths), plan_facts(params)):
        return False
    if params.retry:
        from imgnet_tools.collect.assemble import summarize

        return not set(params.retry) & set(summarize(out / MANIFEST)[1])
    return True


def _validate(params: CollectParams) -> None:
    if params.executor not in EXECUTORS:
        raise InputError(f"unknown executor {params.executor!r}; use one of {', '.join(EXECUTORS)}.")
    if params.chunk_size < 1:
        raise InputError("--chunk-size must be at least 1.")
    for name in ("concurrency", "per_host"):
        value = getattr(params, name)
        if value is not None and value < (1 if name == "concurrency" else 0):
            raise InputError(f"--{name.replace('_', '-')} {value} is too small (concurrency >= 1, per-host >= 0: no limit).")
    if min(params.connect_timeout, params.timeout) <= 0 or params.retries < 0 or params.max_redirects < 0:
        raise InputError("timeouts must be above 0; --retries and --max-redirects at least 0.")
    if params.max_bytes < 1 or params.max_pixels < 1:
        raise InputError("--max-bytes and --max-pixels must be at least 1.")
    unknown = sorted(set(params.retry) - set(RETRY_REASONS))
    if unknown:
        raise InputError(f"--retry {', '.join(unknown)}: not a fetch reason; choose from {', '.join(RETRY_REASONS)}.")
    bad_hosts = [h for h in params.allow_host if not h.strip() or "/" in h]
    if bad_hosts:
        raise InputError(f"--allow-host {bad_hosts[0]!r}: give HOST or HOST:PORT (e.g. 10.0.0.5:8080).")


def plan_facts(params: CollectParams) -> dict[str, Any]:
    """The parameters that shape the chunk plan (the fingerprint covers them)."""
    return {"classes": file_digest(params.classes), "preset": params.preset, "split": params.split,
            "chunk_size": params.chunk_size}


def run_params(params: CollectParams) -> dict[str, Any]:
    """The run's parameters as recorded in run.json and the result (paths and options, the
    opt-out policy and User-Agent included)."""
    doc = dataclasses.asdict(params)
    doc["urls"] = list(params.urls)
    doc["allow_host"] = list(params.allow_host)
    doc["retry"] = list(params.retry)
    doc["honour_opt_out"] = not params.ignore_opt_out
    return doc


def _plan(params: CollectParams, paths: list[Path], out: Path,
          progress: Callable[[int], None] | None) -> tuple[dict[str, Any], int]:
    """The run record: the earlier one when its fingerprint matches, else a new plan, spooled."""
    from imgnet_tools.collect.plan import class_list, spool

    facts = input_facts(paths)
    fp = fingerprint(facts, plan_facts(params))
    record = read_run(out)
    if record is not None and record["fingerprint"] != fp:
        if not params.overwrite:
            raise OutputExistsError(
                f"{out} holds a collect run of other inputs or options (URL lists, --classes/--preset, --split or "
                "--chunk-size changed); pass --overwrite to start a new plan there (stored images are kept and "
                "not written again), or choose another --out.")
        reset_plan(out)
        record = None
    elif record is None and (out / MANIFEST).exists() and not params.overwrite:
        raise OutputExistsError(f"{out}/{MANIFEST} exists but was not written by collect; pass --overwrite or choose another --out.")
    if record is not None and record["spooled"] and _plan_intact(out, record["chunks"]):
        return record, record.get("classes", 0)
    classes = class_list(paths, params.classes, params.preset)
    record = {"fingerprint": fp, "inputs": facts, "rows": 0, "chunks": 0, "chunk_size": params.chunk_size,
              "classes": len(classes), "spooled": False, "complete": False, "params": run_params(params)}
    write_run(out, record)
    rows, chunks = spool(paths, classes, params.split, params.chunk_size, out)
    for i in range(chunks):  # spooled again after a loss: finished chunks keep their parts
        if part_path(out, i).is_file():
            chunk_path(out, i).unlink()
    record.update(rows=rows, chunks=chunks, spooled=True)
    write_run(out, record)
    return record, len(classes)


def _plan_intact(out: Path, chunks: int) -> bool:
    """True when every chunk has its part or its spooled input (a lost file means spooling again)."""
    return all(part_path(out, i).is_file() or chunk_path(out, i).is_file() for i in range(chunks))


def _chunks_to_run(out: Path, chunks: int, retry: tuple[str, ...]) -> list[int]:
    """Chunks without a part, and (with ``retry``) finished chunks holding a row with a retried reason."""
    todo = []
    for i in range(chunks):
        part = part_path(out, i)
        if not part.is_file():
            todo.append(i)
        elif retry and _has_reason(part, set(retry)):
            todo.append(i)
    return todo


def _has_reason(part: Path, reasons: set[str]) -> bool:
    from imgnet_tools.manifest.parquet import read_table

    column = read_table(part, "manifest", columns=["reason"]).column("reason").to_pylist()
    return any(r in reasons for r in column)


def _chunk_rows(record: dict[str, Any], index: int) -> int:
    """Rows in chunk ``index`` (every chunk is full but the last)."""
    size = record["chunk_size"]
    return min(size, record["rows"] - index * size)


def fetch_config(params: CollectParams) -> FetchConfig:
    """Per-worker-process settings: the run's totals divided among the worker processes."""
    workers = resolve_workers(params.workers)
    total = params.concurrency if params.concurrency is not None else PER_WORKER_CONCURRENCY * workers
    per_worker = max(1, min(math.ceil(total / workers), _descriptor_budget()))
    if params.per_host is None:
        per_host = min(PER_WORKER_PER_HOST, per_worker)
    else:
        per_host = 0 if params.per_host == 0 else max(1, math.ceil(params.per_host / workers))
    return FetchConfig(
        concurrency=per_worker, per_host=per_host, connect_timeout=params.connect_timeout, timeout=params.timeout,
        retries=params.retries, max_retry_wait=params.max_retry_wait, max_redirects=params.max_redirects,
        max_bytes=params.max_bytes, max_pixels=params.max_pixels, ignore_opt_out=params.ignore_opt_out,
        user_agent=params.user_agent,
        policy=AddressPolicy(allow_private=params.allow_private_hosts, allow_hosts=tuple(params.allow_host)),
    )


def _descriptor_budget() -> int:
    """Requests one process can keep in flight: a socket and a temporary file each, within its
    open-file limit (less some for everything else)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(8, (soft - 64) // 2)
