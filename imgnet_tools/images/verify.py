"""Stage ``verify``: judge every image in a manifest by its content and add the verify columns.

For each row: read the file once, hash those bytes (sha256), sniff the real format, decode fully,
check mode / EXIF / frames / size / bomb limit (:mod:`.check`). The manifest is rewritten
(in place, or to ``out``) with ``format, mode, width, height, sha256, status, reason, issues,
detail, verify_policy``. With ``fix``, fixable images get a normalised RGB JPEG copy at
``FIX/KEY.jpg``; their row becomes ``fixed`` and ``path`` points at the copy (``source_path``
keeps the original, which is only ever read).

How it runs (``execute.chunked``): the manifest is read in chunks of rows; each chunk's rows go to
a worker as paths plus what the manifest recorded of them, and the worker returns, as an Arrow
table, new verify columns for the rows that need them (a row verified under the same policy whose
files still have the recorded size and mtime is left as it is). Each returned chunk is committed
to a work folder at once, so a killed run loses only the chunks in flight and a re-run resumes;
the new manifest is then written chunk by chunk and renamed into place. Memory stays bounded by
a few chunks, whatever the manifest's size.

Per-file problems are rows, never run errors: any unexpected exception while handling one file
makes that row ``rejected`` / ``internal_error`` (the exception in ``detail``); a file whose
decoder kills its worker twice is ``crashed_decoder``; one whose decode runs past
``decode_timeout`` is ``timeout``; header values the manifest cannot hold are ``bad_header``.
Only run-level failures stop the run: a full disk, an unreadable manifest.
"""

from __future__ import annotations

import collections
import errno
import functools
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgnet_tools.errors import ImgnetError, InputError, write_failed
from imgnet_tools.execute.chunked import Chunk, ChunkJob, run_chunks
from imgnet_tools.execute.limits import TimeLimitExceeded, time_limit
from imgnet_tools.execute.params import ExecutorParams
from imgnet_tools.images.check import FIXABLE_REASONS, REASON_ORDER, Check, Policy, check_image
from imgnet_tools.images.fix import DEFAULT_QUALITY, normalize_to_jpeg
from imgnet_tools.images.scan import SCAN_REASONS, os_reason
from imgnet_tools.manifest.atomic import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

VERIFIED = frozenset({"ok", "fixable", "fixed", "rejected", "duplicate"})
DEDUP_COLUMNS = ("phash", "cluster_id", "dup_of", "dup_kind", "dup_distance", "pre_dedup_status")
# What a worker returns for each row it (re)checked, besides the row's offset in its chunk.
RESULT_COLUMNS = ("path", "bytes", "mtime_ns", "source_bytes", "source_mtime_ns", "sha256", "format", "mode",
                  "width", "height", "status", "reason", "issues", "detail", "verify_policy")
# What planning reads of the manifest (the rest of each row is carried over as it is).
PLAN_COLUMNS = ("key", "path", "source_path", "status", "reason", "verify_policy", "bytes", "mtime_ns",
                "source_bytes", "source_mtime_ns", "url")
DEFAULT_DECODE_TIMEOUT = 120.0
TIMEOUT_GRACE = 30.0  # seconds a worker gets beyond the decode limits before it is killed
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
RUN_LEVEL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS})


@dataclass(frozen=True)
class VerifyParams:
    """``imgnet verify`` options (field names = CLI option names); every rule is checked here."""

    manifest: str
    out: str | None = None
    fix: str | None = None
    # The acceptance policy's defaults live in one place, Policy.
    min_size: int = Policy.min_size
    max_size: int = Policy.max_size
    max_aspect: float = Policy.max_aspect
    max_pixels: int = Policy.max_pixels
    allow_grayscale: bool = Policy.allow_grayscale
    reject: tuple[str, ...] = Policy.reject
    fix_quality: int = DEFAULT_QUALITY
    decode_timeout: float = DEFAULT_DECODE_TIMEOUT
    chunk_rows: int | None = None
    executor: str = "local"
    address: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.reject) - set(FIXABLE_REASONS))
        if unknown:
            raise InputError(f"--reject {', '.join(unknown)}: not a fixable reason; choose from "
                             f"{', '.join(FIXABLE_REASONS)}.")
        if self.min_size < 1 or self.max_pixels < 1:
            raise InputError("--min-size and --max-pixels must be at least 1.")
        if self.max_size < 0:
            raise InputError("--max-size must be 0 (no limit) or more.")
        if not self.max_aspect >= 1:
            raise InputError("--max-aspect must be at least 1.0.")
        if not 1 <= self.fix_quality <= 100:
            raise InputError(f"--fix-quality {self.fix_quality} is outside 1..100.")
        if not self.decode_timeout > 0:
            raise InputError(f"--decode-timeout must be positive, got {self.decode_timeout}.")
        if self.chunk_rows is not None and self.chunk_rows < 1:
            raise InputError(f"--chunk-rows must be at least 1, got {self.chunk_rows}.")
        self.executor_params()  # its own rules (--executor, --address, --workers)

    def policy(self) -> Policy:
        """The acceptance policy these options describe."""
        return Policy(min_size=self.min_size, max_size=self.max_size, max_aspect=self.max_aspect,
                      max_pixels=self.max_pixels, allow_grayscale=self.allow_grayscale,
                      reject=tuple(sorted(set(self.reject))))

    def executor_params(self) -> ExecutorParams:
        return ExecutorParams(self.executor, self.address, self.workers)

    def target(self) -> Path:
        """The manifest this run writes: ``out``, or the input itself."""
        return Path(self.out or self.manifest)


@dataclass
class VerifyResult:
    """Summary of a verify run (``--json`` prints :meth:`to_dict`)."""

    manifest: str
    rows: int
    checked: int
    skipped: int
    fixed: int
    resumed_chunks: int = 0
    status: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Settings:
    """What every worker needs besides its chunk's items."""

    policy: Policy
    quality: int
    decode_timeout: float


# One row to look at: (offset in chunk, source_path, path, fix target or None, must re-check,
# recorded source size and mtime, recorded status, recorded size and mtime of path).
Item = tuple[int, str, str, "str | None", bool, "int | None", "int | None", str, "int | None", "int | None"]


def verify(params: VerifyParams, progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Verify every row that needs it and write the manifest (chunk by chunk, resumable)."""
    from imgnet_tools.execute.ray_executor import check_shared_folders
    from imgnet_tools.manifest.parts import digest, remove_work, work_folder
    from imgnet_tools.manifest.stream import chunk_rows_for, table_info

    info = table_info(params.manifest, "manifest")
    if params.fix:
        _check_fix_dir(params.fix, params.manifest)
    size = params.chunk_rows or chunk_rows_for(info.rows)
    settings = Settings(params.policy(), params.fix_quality, params.decode_timeout)
    fix_dir = os.path.abspath(params.fix) if params.fix else None
    identity = {"stage": "verify", "input": os.path.abspath(params.manifest), "file": info.identity,
                "policy": settings.policy.describe(), "fix": fix_dir, "quality": params.fix_quality, "chunk_rows": size}
    target = params.target()
    check_shared_folders([target.parent, fix_dir], params.executor_params())  # workers write fixed copies
    job = ChunkJob(functools.partial(verify_items, settings), functools.partial(lost_item, settings), join_tables)
    with work_folder(target, "verify", identity) as store:
        chunks = _plan(params.manifest, size, settings.policy.describe(), fix_dir, digest(identity), progress)
        resumed = 0
        # a decode past its limit is stopped in the worker (SIGALRM); a chunk whose worker does not
        # come back in time at all (stuck in C code) is killed, then split down to the file
        for outcome in run_chunks(job, chunks, store, params.executor_params(),
                                  item_timeout=params.decode_timeout + TIMEOUT_GRACE):
            resumed += outcome.reused
            if progress is not None:
                progress(len(outcome.chunk.items))
        result = _assemble(params, size, store)
    remove_work(target, "verify")
    result.resumed_chunks = resumed
    return result


def outputs_complete(params: VerifyParams) -> bool:
    """True when every row is verified under this policy and nothing changed on disk."""
    from imgnet_tools.errors import SchemaError

    target = params.target()
    if not target.is_file():
        return False
    fix_dir = os.path.abspath(params.fix) if params.fix else None
    try:
        for chunk in _plan(str(target), 4096, params.policy().describe(), fix_dir, "", None):
            if any(_needs_work(item) for item in chunk.items):
                return False
    except SchemaError:
        return False
    return True


def _check_fix_dir(fix: str, manifest: str) -> None:
    """Refuse a --fix folder that holds sources or sits in a folder of sources: the source tree stays
    untouched (and a later scan would pick the copies up as new candidates)."""
    import pyarrow.compute as pc

    from imgnet_tools.manifest.stream import iter_chunks

    target = os.path.realpath(fix)
    folders: set[str] = set()
    for table in iter_chunks(manifest, "manifest", 65536, columns=["source_path"]):
        dirs = pc.replace_substring_regex(table.column("source_path"), r"/[^/]*$", "")
        folders.update(pc.unique(dirs).to_pylist())
    for folder in sorted(folders):
        real = os.path.realpath(folder or "/")
        if real == target or real.startswith(target + os.sep) or target.startswith(real + os.sep):
            raise InputError(f"--fix {fix} overlaps the source folder {folder}; write fixed copies outside the source tree.")


def _plan(manifest: str, size: int, policy: str, fix_dir: str | None, key: str,
          progress: Callable[[int], None] | None) -> Iterator[Chunk[Item]]:
    """The manifest's chunks, each with the rows a worker must look at (scan rejections are not)."""
    from imgnet_tools.manifest.stream import iter_chunks

    for index, table in enumerate(iter_chunks(manifest, "manifest", size, columns=list(PLAN_COLUMNS))):
        cols = {name: table.column(name).to_pylist() for name in PLAN_COLUMNS}
        items: list[Item] = []
        for offset in range(table.num_rows):
            status = cols["status"][offset]
            if cols["reason"][offset] in SCAN_REASONS:
                continue  # rejected by scan (missing, empty, ...): nothing to decode; re-scan to refresh
            if cols["url"][offset] is not None and status == "rejected" and cols["verify_policy"][offset] is None:
                continue  # rejected by collect (the fetch failed, no file): re-collect with --retry to refresh
            fixing = fix_dir is not None
            force = status not in VERIFIED or cols["verify_policy"][offset] != policy or (status == "fixable" and fixing)
            fix_to = os.path.join(fix_dir, f"{fix_name(cols['key'][offset])}.jpg") if fix_dir else None
            items.append((offset, cols["source_path"][offset], cols["path"][offset], fix_to, force,
                          cols["source_bytes"][offset], cols["source_mtime_ns"][offset], status,
                          cols["bytes"][offset], cols["mtime_ns"][offset]))
        if progress is not None and table.num_rows > len(items):
            progress(table.num_rows - len(items))
        if items:
            yield Chunk(index, items, f"{key}:{index}")


def fix_name(key: str) -> str:
    """The file stem of a row's fixed copy: its key, unless the key (from a manifest made elsewhere)
    could lead out of the --fix folder or past NAME_MAX (``/``, a leading dot, NUL, 200+ bytes);
    then a safe stem with a hash of the key (scan's and collect's keys are always kept)."""
    from imgnet_tools.shards.keys import sanitize_key

    too_long = len(key.encode("utf-8", "surrogatepass")) > 200
    if "/" in key or "\0" in key or key.startswith(".") or not key or too_long:
        return sanitize_key(key)
    return key


def _needs_work(item: Item) -> bool:
    """Whether a row must be (re)checked: asked to, or its files changed since they were recorded."""
    _, source_path, path, _, force, source_bytes, source_mtime, status, size, mtime = item
    if force or not _same_file(source_path, source_bytes, source_mtime):
        return True
    return status == "fixed" and not _same_file(path, size, mtime)


def _same_file(path: str, size: int | None, mtime_ns: int | None) -> bool:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    return (st.st_size, st.st_mtime_ns) == (size, mtime_ns)


# --- in the worker --------------------------------------------------------------------------------

def verify_items(settings: Settings, items: Sequence[Item]) -> "pa.Table":
    """Check the rows of one chunk that need it; their new columns (with ``offset``) as a table."""
    rows = []
    for item in items:
        if _needs_work(item):
            rows.append({**_recorded(item), **verify_file(item[1], item[3], settings)})
    return _result_table(rows)


def _recorded(item: Item) -> dict[str, Any]:
    """What the manifest recorded of the row's files: kept where a check cannot read them again."""
    offset, _, path, _, _, source_bytes, source_mtime, _, size, mtime = item
    return {"offset": offset, "path": path, "bytes": size, "mtime_ns": mtime, "source_bytes": source_bytes,
            "source_mtime_ns": source_mtime}


def lost_item(settings: Settings, item: Item, why: str, detail: str) -> "pa.Table":
    """The row of a file that killed its worker twice (``crashed``) or ran out of time (``timeout``)."""
    reason = "crashed_decoder" if why == "crashed" else "timeout"
    return _result_table([{**_recorded(item), **_rejected(reason, settings, detail)}])


def join_tables(parts: list["pa.Table"]) -> "pa.Table":
    import pyarrow as pa

    return pa.concat_tables(parts) if parts else _result_table([])


def _result_table(rows: list[dict[str, Any]]) -> "pa.Table":
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import arrow_schema

    schema = pa.schema([pa.field("offset", pa.int32()), *arrow_schema("manifest", RESULT_COLUMNS)])
    return pa.Table.from_pylist(rows, schema=schema)


def _rejected(reason: str, settings: Settings, detail: str | None = None) -> dict[str, Any]:
    return {"status": "rejected", "reason": reason, "issues": [reason], "detail": detail,
            "verify_policy": _describe(settings.policy)}


def verify_file(path: str, fix_to: str | None, settings: Settings) -> dict[str, Any]:
    """Verify one file (and write its fixed copy when asked); the manifest columns it sets.

    Never raises for a bad file: every problem, expected or not, becomes a rejected row. A full
    disk (or a read-only one) while writing a fixed copy is a run-level error and is raised.
    """
    try:
        with time_limit(settings.decode_timeout):
            return _verify_file(path, fix_to, settings)
    except TimeLimitExceeded:
        return _rejected("timeout", settings, f"decoding took longer than {settings.decode_timeout:g} s")
    except OSError as exc:
        if exc.errno in RUN_LEVEL_ERRNOS:
            raise
        return _rejected("internal_error", settings, _describe_exc(exc))
    except ImgnetError:  # a full disk while writing the fixed copy: the run's, not the row's
        raise
    except Exception as exc:  # noqa: BLE001 - one file's bug is one row, never the run
        return _rejected("internal_error", settings, _describe_exc(exc))


def _describe_exc(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _verify_file(path: str, fix_to: str | None, settings: Settings) -> dict[str, Any]:
    try:
        with open(path, "rb", buffering=0) as fh:  # one read into one buffer; hashed and decoded from it
            st = os.fstat(fh.fileno())
            data = fh.read()
    except OSError as exc:
        return {**_rejected(os_reason(exc), settings), "format": None, "mode": None, "width": None, "height": None,
                "sha256": None}
    except ValueError as exc:  # a path Python cannot pass to the OS (an embedded NUL)
        return _rejected("unreadable", settings, _describe_exc(exc))
    found = check_image(data, os.path.basename(path), settings.policy)
    bad = _out_of_range(found, len(data))
    if bad:
        found = Check(format=found.format, issues=["bad_header"])
    row = {
        "path": path, "bytes": len(data), "mtime_ns": st.st_mtime_ns, "source_bytes": len(data),
        "source_mtime_ns": st.st_mtime_ns, "sha256": hashlib.sha256(data).hexdigest(),
        "format": found.format, "mode": found.mode, "width": found.width, "height": found.height,
        "status": found.status(settings.policy), "reason": found.reason(settings.policy),
        "issues": sorted(set(found.issues), key=REASON_ORDER.index), "detail": bad,
        "verify_policy": _describe(settings.policy),
    }
    if row["status"] == "fixable" and fix_to is not None:
        row.update(_write_fixed(data, found, fix_to, settings.quality, st.st_mtime_ns))
    return row


def _out_of_range(found: Check, size: int) -> str | None:
    """What of a header the manifest cannot hold (its declared int32 / int64 ranges), or None."""
    for name, value, top in (("width", found.width, INT32_MAX), ("height", found.height, INT32_MAX),
                             ("bytes", size, INT64_MAX)):
        if value is not None and not 0 <= value <= top:
            return f"header {name} {value} is outside 0..{top}"
    return None


@functools.lru_cache(maxsize=8)
def _describe(policy: Policy) -> str:
    return policy.describe()


def _write_fixed(data: bytes, found: Check, target: str, quality: int, source_mtime_ns: int) -> dict[str, Any]:
    """Write the normalised copy atomically; the columns that now describe the copy.

    The copy gets its source's mtime (as ``cp -p`` would), not the time it was written, so the
    manifest is the same bytes whichever run, worker or executor wrote it; a copy changed later
    still gets a new mtime, which a re-run notices.
    """
    try:
        jpeg = normalize_to_jpeg(data, found.orientation, quality)
    except TimeLimitExceeded:
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder that passed the check but fails here: reject the row
        return {"status": "rejected", "reason": "corrupt", "issues": [*found.issues, "corrupt"],
                "detail": f"writing the fixed copy failed: {_describe_exc(exc)}"}
    try:
        atomic_write_bytes(target, jpeg)
    except OSError as exc:
        if exc.errno in RUN_LEVEL_ERRNOS:
            raise write_failed(exc, f"writing the fixed copy {target}") from exc
        raise
    os.utime(target, ns=(source_mtime_ns, source_mtime_ns))
    st = os.stat(target)
    return {"status": "fixed", "path": target, "bytes": len(jpeg), "mtime_ns": st.st_mtime_ns,
            "sha256": hashlib.sha256(jpeg).hexdigest(), "format": "JPEG", "mode": "RGB"}


# --- assembly -------------------------------------------------------------------------------------

def _assemble(params: VerifyParams, size: int, store: Any) -> VerifyResult:
    """Write the new manifest from the input's chunks and the committed results, chunk by chunk."""
    from imgnet_tools.manifest.stream import TableWriter, iter_chunks, table_info

    target = params.target()
    status: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    rows = checked = fixed = 0
    try:
        with TableWriter(target, "manifest") as writer:
            for index, table in enumerate(iter_chunks(params.manifest, "manifest", size)):
                update = store.read(index)
                if update is not None and update.num_rows:
                    table = apply_updates(table, update)
                    checked += update.num_rows
                    fixed += sum(1 for s in update.column("status").to_pylist() if s == "fixed")
                rows += table.num_rows
                _count(table, status, reasons)
                writer.write(table)
    except OSError as exc:
        raise ImgnetError(f"writing {target} failed: {exc.strerror or exc}; free space or fix the problem and run "
                          "the same command again: the checked chunks are kept and will not be checked again.") from exc
    table_info(target, "manifest")
    return VerifyResult(str(target), rows, checked, rows - checked, fixed,
                        status=dict(sorted(status.items())), reasons=dict(sorted(reasons.items())))


def apply_updates(table: "pa.Table", update: "pa.Table") -> "pa.Table":
    """``table`` with the rows at ``update['offset']`` given ``update``'s columns (and their dedup
    columns cleared: their content was checked again, so dedup must look at them again)."""
    import numpy as np
    import pyarrow as pa

    n = table.num_rows
    offsets = update.column("offset").to_numpy()
    take = np.arange(n, dtype=np.int64)
    take[offsets] = n + np.arange(len(offsets), dtype=np.int64)
    columns = {}
    for name in table.column_names:
        base = table.column(name)
        if name in update.column_names:
            values = update.column(name).cast(base.type)
        elif name in DEDUP_COLUMNS:
            values = pa.nulls(len(offsets), base.type)
        else:
            continue
        columns[name] = pa.chunked_array([*base.chunks, *_chunks(values)], type=base.type).take(pa.array(take))
    for name, array in columns.items():
        table = table.set_column(table.column_names.index(name), name, array)
    return table


def _chunks(values: "pa.Array | pa.ChunkedArray") -> list["pa.Array"]:
    return list(values.chunks) if hasattr(values, "chunks") else [values]


def _count(table: "pa.Table", status: collections.Counter[str], reasons: collections.Counter[str]) -> None:
    import pyarrow.compute as pc

    for entry in pc.value_counts(table.column("status")).to_pylist():
        status[entry["values"]] += entry["counts"]
    for entry in pc.value_counts(table.column("reason")).to_pylist():
        if entry["values"] is not None:
            reasons[entry["values"]] += entry["counts"]
