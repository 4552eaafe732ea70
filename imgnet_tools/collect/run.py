"""Stage ``collect``: download every URL of the input lists into ``OUT`` and write ``OUT/manifest.parquet``.

How it runs (``execute.chunked``, like scan and verify):

1. Compare the inputs' fingerprint with ``_state/run.json``: a finished collection of the same
   inputs does nothing; a different one is refused unless ``overwrite`` (stored images are kept).
2. Plan pass: the lists are read a block at a time and cut into chunks of ``chunk_rows`` rows
   (:mod:`.plan`); each chunk's fetchable rows, ``(chunk, offset, URL)``, go to a worker
   (:func:`.chunk.fetch_items`, in the worker's event loop and aiohttp session, kept from chunk
   to chunk), and its result is committed to the work folder as it returns (``manifest.parts``:
   a killed run redoes only the chunks in flight, and within those only the URLs their journals
   lack). Then the manifest is
   assembled chunk by chunk (:mod:`.assemble`): the plan made again, the results laid over it.
3. Retry pass (``retry``): once the manifest is complete, rows rejected for those reasons are
   fetched again, chunk by chunk over the manifest itself, and the manifest rewritten the same way.

Memory stays at a few chunks plus 8 bytes per row (the keys), whatever the list's length.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import os
import resource
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgnet_tools.collect.fetch import USER_AGENT, FetchConfig
from imgnet_tools.collect.inputs import check_inputs
from imgnet_tools.collect.state import (MANIFEST, STAGE, clean_tmp, file_digest, fingerprint, input_facts, read_run,
                                        write_run)
from imgnet_tools.collect.urls import AddressPolicy
from imgnet_tools.errors import ImgnetError, InputError, OutputExistsError
from imgnet_tools.execute.chunked import Chunk, ChunkJob, Outcome, run_chunks
from imgnet_tools.execute.params import ExecutorParams, resolve_workers
from imgnet_tools.images.check import COLLECT_REASONS, DEFAULT_MAX_PIXELS

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from imgnet_tools.collect.assemble import Assembler
    from imgnet_tools.collect.chunk import Item
    from imgnet_tools.execute.tasks import Warm
    from imgnet_tools.manifest.parts import PartStore

WORK_MODULE = "imgnet_tools.collect.worker"  # what the workers import before their first chunk
DEFAULT_CHUNK_ROWS = 1000
PER_WORKER_CONCURRENCY = 256
PER_WORKER_PER_HOST = 16
# Reasons --retry accepts: every outcome of a fetch (unknown_class is decided by the input).
RETRY_REASONS = COLLECT_REASONS + ("empty", "not_an_image", "too_large", "truncated", "bomb", "internal_error")
RETRY_COLUMNS = ["url", "status", "reason", "verify_policy"]


@dataclass(frozen=True)
class CollectParams:
    """``imgnet collect`` options (field names = CLI option names); every rule is checked here."""

    urls: tuple[str, ...]
    out: str
    classes: str | None = None
    preset: str | None = None
    split: str = "train"
    chunk_rows: int | None = None
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

    def __post_init__(self) -> None:
        if not self.urls:
            raise InputError("give at least one URL list (.csv, .tsv, .parquet, .jsonl, or fall11_urls.txt).")
        if self.classes and self.preset:
            raise InputError("give --classes or --preset, not both.")
        if not self.split or "/" in self.split or self.split.startswith("."):
            raise InputError(f"--split {self.split!r} is not a usable split name (like train, val or test).")
        if self.chunk_rows is not None and self.chunk_rows < 1:
            raise InputError(f"--chunk-rows must be at least 1, got {self.chunk_rows}.")
        if self.concurrency is not None and self.concurrency < 1:
            raise InputError(f"--concurrency must be at least 1, got {self.concurrency}.")
        if self.per_host is not None and self.per_host < 0:
            raise InputError(f"--per-host must be at least 0 (0: no limit), got {self.per_host}.")
        if not (self.connect_timeout > 0 and self.timeout > 0):
            raise InputError("--connect-timeout and --timeout must be above 0.")
        if self.retries < 0 or self.max_redirects < 0 or self.max_retry_wait < 0:
            raise InputError("--retries, --max-redirects and --max-retry-wait must be at least 0.")
        if self.max_bytes < 1 or self.max_pixels < 1:
            raise InputError("--max-bytes and --max-pixels must be at least 1.")
        unknown = sorted(set(self.retry) - set(RETRY_REASONS))
        if unknown:
            raise InputError(f"--retry {', '.join(unknown)}: not a fetch reason; choose from {', '.join(RETRY_REASONS)}.")
        bad_hosts = [h for h in self.allow_host if not h.strip() or "/" in h]
        if bad_hosts:
            raise InputError(f"--allow-host {bad_hosts[0]!r}: give HOST or HOST:PORT (e.g. 10.0.0.5:8080).")
        self.executor_params()  # its own rules (--executor, --address, --workers)

    def executor_params(self) -> ExecutorParams:
        return ExecutorParams(self.executor, self.address, self.workers)

    def chunk_size(self) -> int:
        return self.chunk_rows or DEFAULT_CHUNK_ROWS


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
    resumed_chunks: int = 0
    status: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


Tally = Callable[[dict[str, Any]], None]


@dataclass
class _Totals:
    """What this run did, for the result and the progress display."""

    rows: int = 0
    done: int = 0
    chunks_run: int = 0
    resumed: int = 0
    tried: int = 0
    stored_bytes: int = 0
    status: collections.Counter[str] = field(default_factory=collections.Counter)
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)

    def skipped(self, base: "pa.Table", fetched: int) -> None:
        """Rows of a plan chunk that are rejected before any fetch (unknown class, bad line)."""
        rejected = base.num_rows - fetched
        if rejected:
            import pyarrow.compute as pc

            from imgnet_tools.collect.assemble import count_rows

            self.done += rejected
            count_rows(base.filter(pc.not_equal(base.column("status"), "pending")), self.status, self.reasons)

    def add(self, outcome: "Outcome[Item, pa.Table]") -> None:
        import pyarrow.compute as pc

        from imgnet_tools.collect.assemble import count_rows

        result = outcome.result
        self.done += result.num_rows
        if outcome.reused:
            self.resumed += 1
        else:
            self.chunks_run += 1
            self.tried += int(pc.sum(result.column("tried")).as_py() or 0)
            self.stored_bytes += int(pc.sum(result.filter(result.column("new_file")).column("bytes")).as_py() or 0)
        count_rows(result, self.status, self.reasons)

    def snapshot(self) -> dict[str, Any]:
        return {"rows": self.rows, "done": self.done, "tried": self.tried, "status": dict(self.status),
                "reasons": dict(self.reasons)}


def collect(params: CollectParams, progress: Callable[[int], None] | None = None,
            tally: Tally | None = None) -> CollectResult:
    """Run (or resume) a collection into ``params.out``. ``progress(n)``: n more rows are done.
    ``tally(snapshot)``: once the plan is known and after every chunk, ``{"rows", "done",
    "tried", "status", "reasons"}`` (counts of this run), for a display with rates and failures."""
    from imgnet_tools.collect.assemble import summarize
    from imgnet_tools.execute.ray_executor import check_shared_folders

    paths = check_inputs(params.urls)
    out = Path(os.path.abspath(params.out))
    facts = input_facts(paths)
    fp = fingerprint(facts, plan_facts(params))
    record = read_run(out)
    totals = _Totals()
    finished = record is not None and record["complete"] and record["fingerprint"] == fp and (out / MANIFEST).is_file()
    if not finished:
        _refuse_other(params, record, fp, out)
        check_shared_folders([out], params.executor_params())  # workers store the images there
        record = _plan_pass(params, paths, out, fp, facts, totals, progress, tally)
    assert record is not None
    if params.retry and _has_retry_rows(out / MANIFEST, params.retry):
        record = _retry_pass(params, out, record, totals, progress, tally)
    status, reasons = summarize(out / MANIFEST)
    return CollectResult(
        manifest=str(Path(params.out) / MANIFEST), rows=record["rows"], chunks=record["chunks"],
        chunks_run=totals.chunks_run, tried=totals.tried, stored_bytes=totals.stored_bytes,
        classes=record.get("classes", 0), resumed_chunks=totals.resumed, status=status, reasons=reasons,
        params=run_params(params))


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
    return not (params.retry and _has_retry_rows(out / MANIFEST, params.retry))


def plan_facts(params: CollectParams) -> dict[str, Any]:
    """The parameters that decide the manifest's rows (the fingerprint covers them). The chunk
    size does not: it changes how the work is cut, not the manifest."""
    return {"classes": file_digest(params.classes), "preset": params.preset, "split": params.split}


def run_params(params: CollectParams) -> dict[str, Any]:
    """The run's parameters as recorded in run.json and the result (paths and options, the
    opt-out policy and User-Agent included)."""
    doc = dataclasses.asdict(params)
    doc["urls"] = list(params.urls)
    doc["allow_host"] = list(params.allow_host)
    doc["retry"] = list(params.retry)
    doc["honour_opt_out"] = not params.ignore_opt_out
    return doc


def _refuse_other(params: CollectParams, record: dict[str, Any] | None, fp: str, out: Path) -> None:
    """Refuse to write over another collection (other inputs) or a manifest collect did not write."""
    if params.overwrite:
        return
    if record is not None and record["fingerprint"] != fp:
        raise OutputExistsError(
            f"{out} holds a collect run of other inputs or options (URL lists, --classes/--preset or --split "
            "changed); pass --overwrite to start a new plan there (stored images are kept and not written "
            "again), or choose another --out.")
    if record is None and (out / MANIFEST).exists():
        raise OutputExistsError(f"{out}/{MANIFEST} exists but was not written by this version of collect; pass "
                                "--overwrite (stored images are kept) or choose another --out.")


# --- the plan pass --------------------------------------------------------------------------------

def _plan_pass(params: CollectParams, paths: list[Path], out: Path, fp: str, facts: list[dict[str, Any]],
               totals: _Totals, progress: Callable[[int], None] | None, tally: Tally | None) -> dict[str, Any]:
    """Fetch every planned row not committed yet, assemble the manifest; the complete run record."""
    from imgnet_tools.execute.tasks import warm_pool

    # The workers' imports (:mod:`.worker`: aiohttp, pyarrow, the work function's module), which
    # the local pool's fork server makes before it forks them, named rather than imported here.
    with warm_pool(WORK_MODULE, params.executor_params()) as warm:  # workers start while the lists are read
        from imgnet_tools.manifest.parquet import arrow_without_pandas

        arrow_without_pandas()  # in the console script: the plan's first table then costs no pandas import
        return _planned_pass(params, paths, out, fp, facts, totals, progress, tally, warm)


def _planned_pass(params: CollectParams, paths: list[Path], out: Path, fp: str, facts: list[dict[str, Any]],
                  totals: _Totals, progress: Callable[[int], None] | None, tally: Tally | None,
                  warm: "Warm") -> dict[str, Any]:
    from imgnet_tools.collect.assemble import Assembler
    from imgnet_tools.collect.plan import plan_tables, survey
    from imgnet_tools.manifest.parts import digest, remove_work, work_folder

    classes, rows = survey(paths, params.classes, params.preset)
    size = params.chunk_size()
    identity = {"stage": STAGE, "pass": "plan", "fingerprint": fp, "chunk_rows": size, "out": str(out)}
    ident = digest(identity)
    record = {"fingerprint": fp, "inputs": facts, "rows": rows, "chunks": math.ceil(rows / size), "chunk_rows": size,
              "classes": len(classes), "complete": False, "params": run_params(params)}
    target = out / MANIFEST
    out.mkdir(parents=True, exist_ok=True)

    def chunks(store: "PartStore") -> Iterator[Chunk[Item]]:
        for index, base in enumerate(plan_tables(paths, classes, params.split, size)):
            items = _plan_items(index, base)
            totals.skipped(base, len(items))
            if progress is not None and base.num_rows > len(items):
                progress(base.num_rows - len(items))
            if items:
                yield Chunk(index, items, digest(ident, index, items))

    def entries() -> Iterator[tuple[int, "pa.Table", list[Item]]]:
        for index, base in enumerate(plan_tables(paths, classes, params.split, size)):
            yield index, base, _plan_items(index, base)

    totals.rows = rows
    with work_folder(target, STAGE, identity) as store:
        write_run(out, record)
        clean_tmp(out)
        with _StreamedManifest(target, entries(), Assembler(out, unique=True), store, ident) as manifest:
            _fetch(params, out, store, chunks(store), totals, progress, tally, warm, on_result=manifest.add)
        record["complete"] = True
        write_run(out, record)
    remove_work(target, STAGE)
    return record


def _plan_items(index: int, base: "pa.Table") -> list[Item]:
    """The rows of a plan chunk to fetch: every row the plan did not reject."""
    urls = base.column("url").to_pylist()
    status = base.column("status").to_pylist()
    return [(index, offset, url) for offset, (url, st) in enumerate(zip(urls, status)) if st == "pending"]


# --- the retry pass -------------------------------------------------------------------------------

def _retry_pass(params: CollectParams, out: Path, record: dict[str, Any], totals: _Totals,
                progress: Callable[[int], None] | None, tally: Tally | None) -> dict[str, Any]:
    """Fetch again the rows collect rejected for a ``retry`` reason; rewrite the manifest."""
    from imgnet_tools.collect.assemble import Assembler
    from imgnet_tools.manifest.parts import digest, remove_work, work_folder
    from imgnet_tools.manifest.stream import iter_chunks, table_info

    target = out / MANIFEST
    size = params.chunk_size()
    reasons = frozenset(params.retry)
    identity = {"stage": STAGE, "pass": "retry", "reasons": sorted(reasons), "manifest": table_info(target, "manifest").identity,
                "chunk_rows": size, "out": str(out)}
    ident = digest(identity)

    def chunks(store: "PartStore") -> Iterator[Chunk[Item]]:
        for index, table in enumerate(iter_chunks(target, "manifest", size, columns=RETRY_COLUMNS)):
            items = _retry_items(index, table, reasons)
            if progress is not None and table.num_rows > len(items):
                progress(table.num_rows - len(items))
            if items:
                yield Chunk(index, items, digest(ident, index, items))

    def entries() -> Iterator[tuple[int, "pa.Table", list[Item]]]:
        for index, base in enumerate(iter_chunks(target, "manifest", size)):
            yield index, base, _retry_items(index, base.select(RETRY_COLUMNS), reasons)

    totals.rows, totals.done = record["rows"], 0
    with work_folder(target, STAGE, identity) as store:
        clean_tmp(out)
        with _StreamedManifest(target, entries(), Assembler(out, unique=False), store, ident) as manifest:
            _fetch(params, out, store, chunks(store), totals, progress, tally, on_result=manifest.add)
        record = {**record, "complete": True, "params": run_params(params)}
        write_run(out, record)
    remove_work(target, STAGE)
    return record


def _retry_items(index: int, table: "pa.Table", reasons: frozenset[str]) -> list[Item]:
    """Rows collect itself rejected (a URL, no file, never verified) for one of ``reasons``."""
    cols = {name: table.column(name).to_pylist() for name in RETRY_COLUMNS}
    return [(index, offset, url) for offset, (url, status, reason, policy)
            in enumerate(zip(cols["url"], cols["status"], cols["reason"], cols["verify_policy"]))
            if url is not None and status == "rejected" and policy is None and reason in reasons]


def _has_retry_rows(manifest: Path, retry: Sequence[str]) -> bool:
    from imgnet_tools.manifest.stream import iter_chunks

    reasons = frozenset(retry)
    return any(_retry_items(0, table, reasons)
               for table in iter_chunks(manifest, "manifest", 65536, columns=RETRY_COLUMNS))


# --- shared by both passes --------------------------------------------------------------------------

def _fetch(params: CollectParams, out: Path, store: "PartStore", chunks: Iterator["Chunk[Item]"], totals: _Totals,
           progress: Callable[[int], None] | None, tally: Tally | None, warm: "Warm | None" = None,
           on_result: Callable[[int, "pa.Table"], None] | None = None) -> None:
    """Run every chunk not committed yet on the executor; count, report, and drop finished journals.
    ``on_result(chunk index, result)`` for every chunk's result (committed, or being committed)."""
    from imgnet_tools.collect.chunk import Settings, fetch_items, join_results, journal_path, lost_item
    from imgnet_tools.collect.store import HAS_SYNCFS

    # Durability before commit: by the driver where every worker writes to this machine's page
    # cache (the local pool), in a thread of its own, so that neither a worker nor the driver
    # waits for the disk; by each worker on Ray (its files may be on another node's disk).
    by_driver = HAS_SYNCFS and params.executor != "ray"
    settings = Settings(fetch_config(params), str(out), str(store.folder), sync=not by_driver)
    job = ChunkJob(functools.partial(fetch_items, settings), functools.partial(lost_item, settings), join_results)
    if tally is not None:
        tally(totals.snapshot())
    committer = _Committer(store, str(out), lambda index: journal_path(settings.work, index), background=by_driver)
    try:
        for outcome in run_chunks(job, chunks, committer, params.executor_params(), warm=warm):
            if outcome.reused:  # committed by an earlier run, which was stopped before it dropped the journal
                Path(journal_path(settings.work, outcome.chunk.index)).unlink(missing_ok=True)
            totals.add(outcome)
            if on_result is not None:
                on_result(outcome.chunk.index, outcome.result)
            if progress is not None:
                progress(len(outcome.chunk.items))
            if tally is not None:
                tally(totals.snapshot())
    except BaseException:
        committer.close(raise_error=False)  # what finished is committed; the run's own error is the one to show
        raise
    committer.close()


class _Committer:
    """Commits chunk results to the work folder's part store, then drops each chunk's journal.

    ``background`` (the local pool): a thread makes the output's file system durable (one
    ``syncfs`` for every result waiting) and then commits those results, so that the driver goes
    on handing out chunks meanwhile. The files a result names were written by a local worker
    before it returned, so they are on disk before the result that names them is. A failure
    (a full disk) is raised by the next :meth:`commit` or by :meth:`close`, which waits until
    every result handed in is committed. Without ``background`` (Ray: the workers made their
    files durable) a result is committed at once."""

    def __init__(self, store: "PartStore", root: str, journal: Callable[[int], str], background: bool) -> None:
        import queue
        import threading

        self.store, self.root, self.journal = store, root, journal
        self._queue: "queue.SimpleQueue[tuple[Chunk[Any], pa.Table] | None]" = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="imgnet-commit", daemon=True) if background else None
        if self._thread is not None:
            self._thread.start()

    @property
    def folder(self) -> Path:
        return self.store.folder

    def load(self, chunk: "Chunk[Any]") -> "pa.Table | None":
        return self.store.load(chunk)

    def commit(self, chunk: "Chunk[Any]", result: "pa.Table") -> None:
        self._raise()
        if self._thread is None:
            self._commit(chunk, result)
        else:
            self._queue.put((chunk, result))

    def close(self, raise_error: bool = True) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if raise_error:
            self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _commit(self, chunk: "Chunk[Any]", result: "pa.Table") -> None:
        self.store.commit(chunk, result)
        Path(self.journal(chunk.index)).unlink(missing_ok=True)

    def _run(self) -> None:
        import queue

        from imgnet_tools.collect.store import sync_file_system
        from imgnet_tools.errors import write_failed

        stop = False
        while not stop:
            batch = [self._queue.get()]
            while True:  # everything else already waiting: one syncfs covers it all
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            waiting = [entry for entry in batch if entry is not None]
            if not waiting or self._error is not None:
                continue
            try:
                sync_file_system(self.root)
                for chunk, result in waiting:
                    try:
                        self._commit(chunk, result)
                    except OSError as exc:
                        raise write_failed(exc, f"committing chunk {chunk.index} to {self.folder}") from exc
            except BaseException as exc:  # noqa: BLE001 - handed to the driver's thread, which raises it
                self._error = exc


def _committed(store: "PartStore", ident: str, index: int, items: list[Item]) -> "pa.Table | None":
    """The committed results of chunk ``index`` (None when it had nothing to fetch)."""
    from imgnet_tools.manifest.parts import digest

    if not items:
        return None
    found = store.read(index, digest(ident, index, items))
    if found is None or found.num_rows != len(items):
        raise ImgnetError(f"the results of chunk {index} are missing from {store.folder} (an input list changed "
                          "during the run, or the work folder was touched); run the same command again.")
    return found


class _StreamedManifest:
    """The manifest, written while the chunks are fetched: each chunk of the plan (or of the
    earlier manifest, for the retry pass) is assembled and written as soon as its result and every
    earlier chunk's have come in, so that little is left to do once the last chunk is fetched.

    Results that come in early (out of order) wait in memory, at most :attr:`HELD` of them; the
    others are read back from the work folder at the end, when every result is committed. The file
    is written to a temporary name and moved over ``target`` on leaving the block without an
    error (else dropped: a run that stops writes no manifest, and the next one assembles it again).
    """

    HELD = 64

    def __init__(self, target: Path, entries: Iterator[tuple[int, "pa.Table", list[Item]]], assembler: "Assembler",
                 store: "PartStore", ident: str) -> None:
        from imgnet_tools.manifest.stream import TableWriter

        self.target, self._entries, self._assembler, self._store, self._ident = target, entries, assembler, store, ident
        self._writer = TableWriter(target, "manifest")
        self._next = next(entries, None)
        self._held: dict[int, "pa.Table"] = {}

    def __enter__(self) -> "_StreamedManifest":
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None:
            self._writer.abort()
            return
        try:
            self._advance(final=True)  # every result is committed by now: the rest is read back
            self._writer.close()
        except OSError as exc:
            self._writer.abort()
            raise self._failed(exc) from exc
        except BaseException:
            self._writer.abort()
            raise

    def add(self, index: int, result: "pa.Table") -> None:
        """Chunk ``index``'s result came in: write every chunk now complete."""
        if len(self._held) < self.HELD:
            self._held[index] = result
        try:
            self._advance(final=False)
        except OSError as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: OSError) -> ImgnetError:
        return ImgnetError(f"writing {self.target} failed: {exc.strerror or exc}; free space or fix the problem and "
                           "run the same command again: the fetched chunks are kept and will not be fetched again.")

    def _advance(self, final: bool) -> None:
        while self._next is not None:
            index, base, items = self._next
            result = None
            if items:
                result = self._held.pop(index, None)
                if result is None:
                    if not final:
                        return
                    result = _committed(self._store, self._ident, index, items)
            self._writer.write(self._assembler.chunk(base, result))
            self._next = next(self._entries, None)


def fetch_config(params: CollectParams) -> FetchConfig:
    """Per-worker-process settings: the run's totals divided among the worker processes."""
    workers = 1 if params.executor == "inline" else resolve_workers(params.workers)
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
    """Requests one process can keep in flight: a socket and a file being written each, within
    its open-file limit (less some for everything else)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(8, (soft - 64) // 2)
