"""``imgnet shard``: a verified, deduplicated manifest -> webdataset shards + indexes + manifests.

Entry point per docs/CONTRACTS.md: :class:`ShardParams`, :func:`shard`, :func:`outputs_complete`.
The run: start the local pool's workers, take the output lock, select the rows to shard chunk by
chunk into the selection file and compact columns (``plan``), check or record the run
(``state``), then write every shard not already done as one chunk of the skeleton
(``execute.chunked``, local pool or Ray, identical output) while ``manifest.parquet`` is written
from the shard slices in shard order (:class:`ManifestStream`), then ``dataset.json`` last.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from imgnet_tools import __version__
from imgnet_tools.errors import ImgnetError, InputError
from imgnet_tools.execute.chunked import Chunk, ChunkJob, run_chunks
from imgnet_tools.execute.params import ExecutorParams, available_cores
from imgnet_tools.execute.tasks import Warm, warm_pool
from imgnet_tools.images.codec import DEFAULT_QUALITY
from imgnet_tools.manifest.atomic import TMP_PREFIX, atomic_write_text, fsync_path, start_writeback
from imgnet_tools.manifest.schemas import format_version, validate_json
from imgnet_tools.shards import state
from imgnet_tools.shards.plan import Selection, ShardPlan, check_prefix, order, plan_shards, select_manifest, selection_path
from imgnet_tools.shards.transform import TransformParams, needs_decode
from imgnet_tools.shards.worker import Columns, ShardTask, probe_sample, write_record, write_shard, write_slice

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

# Parameters that decide the output bytes (a re-run must match them); the rest only decide speed.
OUTPUT_PARAMS = ("size", "max_bytes", "seed", "shuffle", "resize_short", "max_side", "quality", "prefix",
                 "keep_source_paths")


@dataclass(frozen=True)
class ShardParams:
    """Parameters of ``imgnet shard`` (field names are the CLI option names); every rule is checked here."""

    manifest: str
    out: str
    size: int = 1000
    max_bytes: int | None = None
    seed: int = 0
    shuffle: bool = True
    resize_short: int | None = None
    max_side: int | None = None
    quality: int = DEFAULT_QUALITY
    prefix: str = "{split}"
    words: str | None = None
    keep_source_paths: bool = False
    decode_timeout: float = 120.0
    executor: str = "local"
    address: str | None = None
    workers: int | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        checks = [(self.size >= 1, "--size must be at least 1"),
                  (self.max_bytes is None or self.max_bytes > 0, "--max-bytes must be positive"),
                  (self.resize_short is None or self.resize_short >= 1, "--resize-short must be at least 1"),
                  (self.max_side is None or self.max_side >= 1, "--max-side must be at least 1"),
                  (1 <= self.quality <= 100, "--quality must be within 1..100"),
                  (self.decode_timeout > 0, "--decode-timeout must be positive")]
        for ok, message in checks:
            if not ok:
                raise InputError(message + ".")
        check_prefix(self.prefix)
        ExecutorParams(self.executor, self.address, self.workers)

    def output_params(self) -> dict[str, Any]:
        """The parameters recorded in run.json and dataset.json."""
        return {name: getattr(self, name) for name in OUTPUT_PARAMS}

    def transform(self) -> TransformParams:
        return TransformParams(self.resize_short, self.max_side, self.quality)


@dataclass
class ShardResult:
    """What a shard run did (``to_dict`` is what ``--json`` prints)."""

    out: str
    samples: int
    shards: int
    written: int
    resumed: int
    bytes: int
    skipped: dict[str, int]
    failed: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_words(path: str) -> dict[str, str]:
    """ImageNet ``words.txt``: ``wnid<TAB>names`` per line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read --words {path}: {exc.strerror}") from exc
    return dict(line.split("\t", 1) for line in lines if "\t" in line)


def count_selected(manifest: str) -> int:
    """Rows ``imgnet shard`` would take from ``manifest`` (for a progress bar's length)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from imgnet_tools.manifest.stream import iter_chunks

    total = 0
    for table in iter_chunks(manifest, "manifest", 262144, columns=["status"]):
        total += pc.sum(pc.cast(pc.is_in(table.column("status"), value_set=pa.array(["ok", "fixed"])), "int64")).as_py() or 0
    return total


def shard(params: ShardParams, progress: Callable[[int], None] | None = None) -> ShardResult:
    """Write the shard directory ``params.out`` from ``params.manifest``; resume a matching run.

    ``progress`` is called with the number of samples in each shard as it is finished.
    """
    from imgnet_tools.manifest.stream import table_info

    table_info(params.manifest, "manifest")  # a clear error before anything starts
    executor = ExecutorParams(params.executor, params.address, shard_workers(params))
    from imgnet_tools.execute.ray_executor import check_shared_folders

    check_shared_folders([params.out], executor)  # on a cluster it joins: workers write the shards there
    with warm_pool(write_shard, executor) as warm:  # the worker processes start while we read and plan
        return _shard(params, executor, warm, progress)


def shard_workers(params: ShardParams) -> int | None:
    """Worker processes: as asked; else, on the local pool, every core, or twice that in copy
    mode, whose workers wait on the disk part of the time (the fsync that ends each shard, chunk
    writes) while the others use the cores (measured in benchmarks/bench_shard.py)."""
    if params.workers is not None or params.executor == "ray" or needs_decode(params.transform()):
        return params.workers
    return 2 * available_cores()


def _select(params: ShardParams, out: Path) -> tuple[int, Selection]:
    """Select the rows to shard into a temporary selection file in ``out``; (manifest rows, selection)."""
    from imgnet_tools.manifest.stream import table_info

    rows = table_info(params.manifest, "manifest").rows
    tmp = out / f"{TMP_PREFIX}{os.getpid()}-{plan_selection_name()}"
    return rows, select_manifest(params.manifest, tmp, params.seed, params.keep_source_paths, shuffle=params.shuffle)


def plan_selection_name() -> str:
    from imgnet_tools.shards.plan import SELECTION_FILE

    return SELECTION_FILE


def _shard(params: ShardParams, executor: ExecutorParams, warm: Warm,
           progress: Callable[[int], None] | None) -> ShardResult:
    out = Path(params.out)
    with state.locked(out):
        nrows, selection = _select(params, out)
        try:
            if not selection.rows:
                raise InputError(
                    f"{params.manifest} has no rows with status ok or fixed ({nrows} rows: "
                    f"{dict(selection.skipped) or 'empty'}); run `imgnet verify` first, or check the manifest."
                )
            plans = plan_shards(order(selection, params.shuffle), selection.cost, params.size, params.max_bytes,
                                params.prefix)
            state.prepare(out, params.output_params(), selection.fingerprint, len(plans), params.overwrite,
                          keep=(Path(selection.path),))
            final = selection_path(out)
            os.replace(selection.path, final)
        except BaseException:
            Path(selection.path).unlink(missing_ok=True)
            raise
        selection.path = str(final)
        # On the local pool the tars are made durable here, in groups (see _Committer); Ray workers
        # fsync their own, as this process may not share their file system's cache.
        sync = params.executor == "ray"
        tasks = [ShardTask(str(out.resolve()), p, params.transform(), str(final.resolve()), sync,
                           decode_timeout=params.decode_timeout) for p in plans]
        stream = ManifestStream(out, [t.plan.stem for t in tasks])
        records: dict[str, Any] = {}
        try:
            written = _run(out, tasks, executor, warm, records, stream, progress)
            stream.close()
        except BaseException:
            stream.abort()
            raise
        ordered = [records[t.plan.stem] for t in tasks]
        doc = _dataset_doc(params, nrows, selection, plans, ordered)
        atomic_write_text(out / state.DATASET_NAME, state.dump_json(doc))
        final.unlink(missing_ok=True)  # a resumed run makes its own; a finished one needs none
    failed = [f for r in ordered for f in r["failed"]]
    return ShardResult(str(out), doc["samples"], len(plans), written, len(plans) - written,
                       sum(r["bytes"] for r in ordered), dict(sorted(selection.skipped.items())), failed)


class _ShardStore:
    """The skeleton's store for shards: a shard is done when its record says so (``state``); a
    returned shard's slice goes into ``manifest.parquet`` at once and its record to the committer."""

    def __init__(self, out: Path, records: dict[str, Any], stream: "ManifestStream", committer: "_Committer",
                 progress: Callable[[int], None] | None) -> None:
        self.out, self.records, self.stream, self.committer, self.progress = out, records, stream, committer, progress
        self.written = 0
        self._cleared = False

    def load(self, chunk: Chunk[Any]) -> tuple[dict[str, Any], Columns] | None:
        task: ShardTask = chunk.items  # type: ignore[assignment]
        stem = task.plan.stem
        record = None
        if state.record_path(self.out, stem).is_file():  # the common case: no fingerprint needed
            record = state.done_record(self.out, stem, task.fingerprint())
        if record is None:
            if not self._cleared:  # dataset.json must never describe shards that are being rewritten
                (self.out / state.DATASET_NAME).unlink(missing_ok=True)
                self._cleared = True
            return None
        self.records[stem] = record
        self.stream.add(stem, _read_slice(self.out, stem))
        self._tick(record)
        return record, {}

    def commit(self, chunk: Chunk[Any], result: tuple[dict[str, Any], Columns]) -> None:
        record, table = write_slice(self.out, *result)
        self.stream.add(Path(record["file"]).stem, table)
        self.committer.put(record)
        self.written += 1
        self._tick(record)

    def _tick(self, record: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress(record["samples"] + len(record["failed"]))


def _without(chunk: Chunk[Any], lost: list[tuple[int, str, str]]) -> ShardTask:
    """The shard again, leaving out the samples that killed their worker alone."""
    task: ShardTask = chunk.items  # type: ignore[assignment]
    reasons = tuple((position, ("timeout: " if why == "timeout" else "crashed_decoder: ") + detail)
                    for position, why, detail in lost)
    return dataclasses.replace(task, exclude=task.exclude + reasons)


def _run(out: Path, tasks: list[ShardTask], executor: ExecutorParams, warm: Warm, records: dict[str, Any],
         stream: "ManifestStream", progress: Callable[[int], None] | None) -> int:
    """Write the shards not yet done on the executor; the number written. As each shard returns,
    its slice is written and goes on into ``manifest.parquet`` (``stream``); a :class:`_Committer`
    then makes its tar durable and writes its record."""
    committer = _Committer(out, records, fsync=not all(t.sync for t in tasks))
    store = _ShardStore(out, records, stream, committer, progress)
    # a ShardTask is its chunk's sequence of items (one per sample), so the skeleton can probe them
    job: ChunkJob[Any, Any] = ChunkJob(write_shard, probe=functools.partial(probe_sample, tasks[0].decode_timeout),  # type: ignore[arg-type]
                                       without=_without)  # type: ignore[arg-type]
    chunks: list[Chunk[Any]] = [Chunk(i, task, task.plan.stem) for i, task in enumerate(tasks)]  # type: ignore[arg-type]
    timeout = (tasks[0].decode_timeout or 120.0) + 30.0 if tasks else None
    try:
        try:
            for _ in run_chunks(job, chunks, store, executor, warm, item_timeout=timeout):
                pass
        finally:
            committer.close()  # commits what has returned; raises the first commit error
    except OSError as exc:  # disk full, quota, permissions: the run stops, finished shards stay done
        raise ImgnetError(
            f"writing shards to {out} failed: {exc.strerror or exc}; free space or fix the problem and run "
            f"the same command again ({len(records)} finished shards are kept)."
        ) from exc
    return store.written


class _Committer:
    """Marks returned shards done, in a thread: fsyncs each tar (``fsync``: the workers left them
    unsynced), then writes its record (:func:`write_record`), so that a shard counts as done only
    once its tar is on disk.

    Shards that return while an fsync is under way wait and are synced together next: on Linux
    file systems the first fsync of a group commits the journal (and flushes the disk's cache) for
    all of them, and the others find nothing left to do. With several workers that is far fewer
    journal commits and cache flushes than one per shard, each of which stalls the disk's queue
    and the workers' own file creation. A commit error (disk full) stops the committing;
    :meth:`put` and :meth:`close` raise it.
    """

    def __init__(self, out: Path, records: dict[str, Any], fsync: bool) -> None:
        import queue
        import threading

        self._out, self._records, self._fsync = out, records, fsync
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="imgnet-shard-commit", daemon=True)
        self._thread.start()

    def put(self, record: dict[str, Any]) -> None:
        """Mark this shard done soon (its slice is written); raise an earlier commit's error."""
        if self._error is not None:
            raise self._error
        self._queue.put(record)

    def close(self) -> None:
        """Commit everything put so far, stop the thread; raise a commit's error."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        import queue

        while True:
            group = [self._queue.get()]
            while True:  # every shard that has returned by now goes into this group
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [r for r in group if r is not None]
            try:
                for record in records if self._fsync else ():
                    fsync_path(self._out / record["file"])
                for record in records:
                    write_record(self._out, record)
                    self._records[Path(record["file"]).stem] = record
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self._error = exc
                return
            if len(records) < len(group):
                return


def _read_slice(out: Path, stem: str) -> "pa.Table":
    from imgnet_tools.manifest.parquet import read_table

    return read_table(out / f"{stem}.parquet", "shard_manifest")


class ManifestStream:
    """``manifest.parquet``, written while the shards are: each shard's slice goes in as its own
    row group as soon as every shard before it is in, so when the last shard is done only the
    slices still waiting and the footer are left to write. The row groups follow shard order
    whatever order the shards finish in, so the file is the same bytes in every run (and a row
    group holds exactly one shard's rows). Written to a temporary name, fsynced and renamed."""

    def __init__(self, out: Path, stems: list[str]) -> None:
        import pyarrow.parquet as pq

        from imgnet_tools.manifest.parquet import arrow_schema

        self._schema = arrow_schema("shard_manifest")
        self._stems = stems
        self._waiting: dict[str, "pa.Table"] = {}
        self._next = 0
        self._target = out / state.MANIFEST_NAME
        self._tmp = out / f"{TMP_PREFIX}{state.MANIFEST_NAME}.{os.getpid()}"
        # zstd; no dictionaries: most columns are unique per row (keys, paths, hashes, offsets), and
        # without them the file is smaller and a third faster to write
        self._writer = pq.ParquetWriter(self._tmp, self._schema, compression="zstd", use_dictionary=False)
        self._fd = os.open(self._tmp, os.O_RDONLY)  # for starting writeback as the file grows

    def add(self, stem: str, table: "pa.Table") -> None:
        """Shard ``stem``'s slice (conformed to the shard manifest schema)."""
        self._waiting[stem] = table
        while self._next < len(self._stems) and self._stems[self._next] in self._waiting:
            ready = self._waiting.pop(self._stems[self._next])
            if ready.num_rows:
                self._writer.write_table(ready if ready.schema.equals(self._schema) else ready.cast(self._schema))
                start_writeback(self._fd)  # so that close() has little left to fsync
            self._next += 1

    def close(self) -> None:
        """Finish the file and move it into place (every shard must have been added)."""
        if self._next != len(self._stems):
            raise RuntimeError(f"manifest.parquet: {len(self._stems) - self._next} shard slices never came")
        self._writer.close()
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
        os.replace(self._tmp, self._target)

    def abort(self) -> None:
        """Drop the unfinished file (an error closing it, e.g. a full disk, changes nothing)."""
        try:
            self._writer.close()
        except OSError:
            pass
        os.close(self._fd)
        self._tmp.unlink(missing_ok=True)


def _summary(params: ShardParams, selection: Selection, failed_keys: set[str]
             ) -> tuple[list[dict[str, Any]], Counter[tuple[str, int]]]:
    """The class list and the count of shard samples per (split, label) (label -1: none)."""
    import numpy as np

    names = _read_words(params.words) if params.words else {}
    classes = [{"index": i, "wnid": selection.wnid_of[i], "name": names.get(selection.wnid_of[i] or "")}
               for i in sorted(selection.wnid_of)]
    found: Counter[tuple[str, int]] = Counter()
    for split, rows in order(selection, selection.shuffled).items():  # each split's rows are contiguous
        labels, counts = np.unique(selection.label[rows[0]:rows[-1] + 1] if len(rows) else rows, return_counts=True)
        found.update({(split, int(lab)): int(n) for lab, n in zip(labels.tolist(), counts.tolist())})
    if failed_keys:  # samples left out of the shards are not counted
        from imgnet_tools.shards.plan import iter_selected

        for samples in iter_selected(selection):
            found.subtract((s.split, -1 if s.label is None else s.label) for s in samples if s.source_key in failed_keys)
    return classes, found


def _dataset_doc(params: ShardParams, nrows: int, selection: Selection, plans: list[ShardPlan],
                 records: list[dict[str, Any]]) -> dict[str, Any]:
    failed_keys = {f["key"] for r in records for f in r["failed"]}
    classes, counts = _summary(params, selection, failed_keys)
    splits: dict[str, dict[str, Any]] = {}
    for plan, record in zip(plans, records):
        entry = splits.setdefault(plan.split, {"samples": 0, "shards": 0, "bytes": 0, "class_counts": {}})
        entry["samples"] += record["samples"]
        entry["shards"] += 1
        entry["bytes"] += record["bytes"]
    for (split, label), count in sorted(counts.items()):
        if count > 0:
            splits[split]["class_counts"][str(label)] = count
    doc = {
        "format_version": format_version("dataset"), "created_by": f"imgnet {__version__}",
        "params": params.output_params(),
        # the input's name only, unless asked: a published dataset.json names no folder of this machine
        "source": {"manifest": params.manifest if params.keep_source_paths else os.path.basename(params.manifest),
                   "fingerprint": selection.fingerprint, "rows": nrows,
                   "selected": selection.rows, "skipped": dict(sorted(selection.skipped.items()))},
        "samples": sum(r["samples"] for r in records), "splits": splits,
        "classes": classes,
        "shards": [{"file": r["file"], "index": r["index"], "split": r["split"], "samples": r["samples"],
                    "bytes": r["bytes"], "sha256": r["sha256"], "index_file": Path(r["file"]).with_suffix(".idx").name,
                    "manifest_file": Path(r["file"]).with_suffix(".parquet").name} for r in records],
        "failed": [f for r in records for f in r["failed"]], "manifest": state.MANIFEST_NAME,
    }
    validate_json(doc, "dataset", "dataset.json")
    return doc


def outputs_complete(params: ShardParams) -> bool:
    """True when ``params.out`` holds a finished run with these parameters (a re-run would do nothing)."""
    import tempfile

    out = Path(params.out)
    run = state.read_json(out / state.STATE_DIR / state.RUN_NAME, "shard_run")
    doc = state.read_json(out / state.DATASET_NAME, "dataset")
    if run is None or doc is None or run["params"] != params.output_params():
        return False
    try:
        with tempfile.TemporaryDirectory(prefix="imgnet-shard-check-") as scratch:
            selection = select_manifest(params.manifest, Path(scratch) / "selection.arrow", params.seed,
                                        params.keep_source_paths, shuffle=params.shuffle)
    except Exception:
        return False
    return bool(run["fingerprint"] == selection.fingerprint
                and run.get("fingerprint_version", 1) == state.FINGERPRINT_VERSION)
