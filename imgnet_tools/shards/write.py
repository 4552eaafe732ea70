"""``imgnet shard``: a verified, deduplicated manifest -> webdataset shards + indexes + manifests.

Entry point per docs/CONTRACTS.md: :class:`ShardParams`, :func:`shard`, :func:`outputs_complete`.
The run: start the local pool's workers, select and plan (``plan``), take the output lock and
check or record the run (``state``), write every shard not already done as one task each on the
chosen executor (``worker``; local pool or Ray, identical output) while ``manifest.parquet`` is
written from the shard slices in shard order (:class:`ManifestStream`), then ``dataset.json`` last.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from imgnet_tools import __version__
from imgnet_tools.errors import ImgnetError, InputError
from imgnet_tools.execute.params import ExecutorParams, available_cores
from imgnet_tools.execute.tasks import Warm, run_tasks, warm_pool
from imgnet_tools.manifest.atomic import TMP_PREFIX, atomic_write_text, fsync_path, start_writeback
from imgnet_tools.manifest.schemas import format_version, validate_json
from imgnet_tools.shards import state
from imgnet_tools.shards.plan import SELECTED_COLUMNS, SampleIn, Selection, ShardPlan, order, plan_shards, select_table
from imgnet_tools.shards.transform import TransformParams, needs_decode
from imgnet_tools.shards.worker import Columns, ShardTask, write_record, write_shard, write_slice

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

# Parameters that decide the output bytes (a re-run must match them); the rest only decide speed.
OUTPUT_PARAMS = ("size", "max_bytes", "seed", "shuffle", "resize_short", "max_side", "quality", "prefix")


@dataclass(frozen=True)
class ShardParams:
    """Parameters of ``imgnet shard`` (field names are the CLI option names)."""

    manifest: str
    out: str
    size: int = 1000
    max_bytes: int | None = None
    seed: int = 0
    shuffle: bool = True
    resize_short: int | None = None
    max_side: int | None = None
    quality: int = 90
    prefix: str = "{split}"
    words: str | None = None
    executor: str = "local"
    address: str | None = None
    workers: int | None = None
    overwrite: bool = False

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


def _validate(params: ShardParams) -> None:
    checks = [(params.size >= 1, "--size must be at least 1"),
              (params.max_bytes is None or params.max_bytes > 0, "--max-bytes must be positive"),
              (params.resize_short is None or params.resize_short >= 1, "--resize-short must be at least 1"),
              (params.max_side is None or params.max_side >= 1, "--max-side must be at least 1"),
              (1 <= params.quality <= 100, "--quality must be within 1..100")]
    for ok, message in checks:
        if not ok:
            raise InputError(message)


def _read_selection(path: str) -> tuple[int, Selection]:
    """The manifest's row count, and what :func:`select_table` takes from it."""
    import pyarrow.parquet as pq

    from imgnet_tools.manifest.parquet import read_table

    try:
        present = set(pq.read_schema(path).names)
    except Exception:  # read_table says what is wrong with the file
        present = set(SELECTED_COLUMNS)
    table = read_table(path, "manifest", columns=[c for c in SELECTED_COLUMNS if c in present])
    return table.num_rows, select_table(table)


class _Summary:
    """What ``dataset.json`` says of the selection (class list, class counts per split), computed
    once, while the shards are being written (:meth:`compute` is called as each shard returns)
    rather than after the last one."""

    def __init__(self, samples: list[SampleIn], words: str | None) -> None:
        self._samples, self._words = samples, words
        self._done: tuple[list[dict[str, Any]], Counter[tuple[str, int]]] | None = None

    def compute(self) -> tuple[list[dict[str, Any]], Counter[tuple[str, int]]]:
        """The class list and the count of samples per (split, label) (label -1: none)."""
        if self._done is None:
            names = _read_words(self._words) if self._words else {}
            seen: dict[int, str | None] = {}
            for sample in self._samples:
                if sample.label is not None:
                    seen.setdefault(sample.label, sample.wnid)
            classes = [{"index": i, "wnid": seen[i], "name": names.get(seen[i] or "")} for i in sorted(seen)]
            counts = Counter((s.split, -1 if s.label is None else s.label) for s in self._samples)
            self._done = classes, counts
        return self._done


def _read_words(path: str) -> dict[str, str]:
    """ImageNet ``words.txt``: ``wnid<TAB>names`` per line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read --words {path}: {exc.strerror}") from exc
    return dict(line.split("\t", 1) for line in lines if "\t" in line)


def count_selected(manifest: str) -> int:
    """Rows ``imgnet shard`` would take from ``manifest`` (for a progress bar's length)."""
    from imgnet_tools.manifest.parquet import read_table

    statuses = read_table(manifest, "manifest", columns=["status"]).column("status").to_pylist()
    return sum(1 for s in statuses if s in ("ok", "fixed"))


def shard(params: ShardParams, progress: Callable[[int], None] | None = None) -> ShardResult:
    """Write the shard directory ``params.out`` from ``params.manifest``; resume a matching run.

    ``progress`` is called with the number of samples in each shard as it is finished.
    """
    _validate(params)
    executor = ExecutorParams(params.executor, params.address, shard_workers(params))
    with warm_pool(write_shard, executor) as warm:  # the worker processes start while we read and plan
        return _shard(params, executor, warm, progress)


def shard_workers(params: ShardParams) -> int | None:
    """Worker processes: as asked; else, on the local pool, every core, or twice that in copy
    mode, whose workers wait on the disk part of the time (the fsync that ends each shard, chunk
    writes) while the others use the cores (measured in benchmarks/bench_shard.py)."""
    if params.workers is not None or params.executor == "ray" or needs_decode(params.transform()):
        return params.workers
    return 2 * available_cores()


def _shard(params: ShardParams, executor: ExecutorParams, warm: Warm,
           progress: Callable[[int], None] | None) -> ShardResult:
    nrows, (samples, skipped, fingerprint) = _read_selection(params.manifest)
    if not samples:
        raise InputError(
            f"{params.manifest} has no rows with status ok or fixed ({nrows} rows: "
            f"{dict(skipped) or 'empty'}); run `imgnet verify` first, or check the manifest."
        )
    plans = plan_shards(order(samples, params.seed, params.shuffle), params.size, params.max_bytes, params.prefix)
    transform = params.transform()
    # On the local pool the tars are made durable here, in groups (see _Committer); Ray workers
    # fsync their own, as this process may not share their file system's cache.
    sync = params.executor == "ray"
    tasks = [ShardTask(str(Path(params.out).resolve()), p, transform, sync) for p in plans]
    out = Path(params.out)
    with state.locked(out):
        state.prepare(out, params.output_params(), fingerprint, len(plans), params.overwrite)
        records, todo = _done(out, tasks, progress)
        if todo:  # dataset.json must never describe shards that are being rewritten
            (out / state.DATASET_NAME).unlink(missing_ok=True)
        stream = ManifestStream(out, [t.plan.stem for t in tasks])
        summary = _Summary(samples, params.words)
        try:
            for task in tasks:  # shards done by an earlier run: their slices, read back
                if task.plan.stem in records:
                    stream.add(task.plan.stem, _read_slice(out, task.plan.stem))
            _run(out, [tasks[i] for i in todo], executor, warm, records, stream, progress, summary.compute)
            stream.close()
        except BaseException:
            stream.abort()
            raise
        ordered = [records[t.plan.stem] for t in tasks]
        doc = _dataset_doc(params, nrows, samples, skipped, plans, ordered, fingerprint, summary)
        atomic_write_text(out / state.DATASET_NAME, state.dump_json(doc))
    failed = [f for r in ordered for f in r["failed"]]
    return ShardResult(str(out), doc["samples"], len(plans), len(todo), len(plans) - len(todo),
                       sum(r["bytes"] for r in ordered), dict(sorted(skipped.items())), failed)


def _run(out: Path, tasks: list[ShardTask], executor: ExecutorParams, warm: Warm, records: dict[str, Any],
         stream: "ManifestStream", progress: Callable[[int], None] | None, meanwhile: Callable[[], object]) -> None:
    """Write ``tasks`` on the executor. As each shard returns, its slice is written and goes on
    into ``manifest.parquet`` (``stream``); a :class:`_Committer` then makes its tar durable and
    writes its record. ``meanwhile`` is called as each shard returns (work for the end of the
    run that can be done while the shards are written)."""
    committer = _Committer(out, records, fsync=not all(t.sync for t in tasks))

    def done(_: int, result: tuple[dict[str, Any], Columns]) -> None:
        record, table = write_slice(out, *result)
        stream.add(Path(record["file"]).stem, table)
        committer.put(record)
        if progress is not None:
            progress(record["samples"] + len(record["failed"]))
        meanwhile()

    try:
        try:
            run_tasks(write_shard, tasks, executor, on_done=done, warm=warm)
        finally:
            committer.close()  # commits what has returned; raises the first commit error
    except OSError as exc:  # disk full, quota, permissions: the run stops, finished shards stay done
        raise ImgnetError(
            f"writing shards to {out} failed: {exc.strerror or exc}; free space or fix the problem and run "
            f"the same command again ({len(records)} finished shards are kept)."
        ) from exc


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


def _done(out: Path, tasks: list[ShardTask], progress: Callable[[int], None] | None) -> tuple[dict[str, Any], list[int]]:
    """Records of shards already done with this plan, and the task numbers still to run."""
    records: dict[str, Any] = {}
    todo = []
    for i, task in enumerate(tasks):
        if not state.record_path(out, task.plan.stem).is_file():  # the common case: no fingerprint needed
            todo.append(i)
            continue
        record = state.done_record(out, task.plan.stem, task.fingerprint)
        if record is None:
            todo.append(i)
        else:
            records[task.plan.stem] = record
            if progress is not None:
                progress(len(task.plan.samples))
    return records, todo


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


def _dataset_doc(params: ShardParams, nrows: int, samples: list[SampleIn], skipped: Counter[str],
                 plans: list[ShardPlan], records: list[dict[str, Any]], fingerprint: str,
                 summary: _Summary) -> dict[str, Any]:
    classes, selected_counts = summary.compute()
    counts = Counter(selected_counts)
    failed_keys = {f["key"] for r in records for f in r["failed"]}
    if failed_keys:  # samples left out of the shards are not counted
        counts.subtract((s.split, -1 if s.label is None else s.label) for s in samples if s.source_key in failed_keys)
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
        "source": {"manifest": params.manifest, "fingerprint": fingerprint, "rows": nrows,
                   "selected": len(samples), "skipped": dict(sorted(skipped.items()))},
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
    out = Path(params.out)
    run = state.read_json(out / state.STATE_DIR / state.RUN_NAME, "shard_run")
    doc = state.read_json(out / state.DATASET_NAME, "dataset")
    if run is None or doc is None or run["params"] != params.output_params():
        return False
    try:
        _, selection = _read_selection(params.manifest)
    except Exception:
        return False
    return bool(run["fingerprint"] == selection.fingerprint)
