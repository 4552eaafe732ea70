"""Stage ``scan``: index the candidate pool into ``OUT/manifest.parquet``, one row per file.

Each file is stat-ed and its first bytes sniffed (so zero-byte files, text files, unreadable files,
symlink loops and non-UTF-8 names become ``rejected`` rows with a reason; everything else is
``pending`` for ``verify``). Labels resolve against a class list (:mod:`imgnet_tools.synsets.classlists`).

How it runs (``execute.chunked``): candidates are discovered as a stream and cut into chunks of
paths; workers probe each chunk and return an Arrow table, committed at once to a work folder
(a killed scan resumes from there); the manifest is then assembled chunk by chunk, in discovery
order. Driver memory does not grow with the pool but for two compact indexes: the keys handed out
(8 bytes per row, :class:`~imgnet_tools.manifest.hashset.HashSet64`) and, when an earlier manifest
exists, its rows' path hashes and positions (16 bytes per row).

Re-runs resume: a file already in the manifest keeps its key, and when its size and mtime are
unchanged it also keeps what later stages wrote (verify and dedup columns, a fixed copy).
"""

from __future__ import annotations

import collections
import errno
import functools
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgnet_tools.errors import InputError
from imgnet_tools.execute.chunked import Chunk, ChunkJob, run_chunks
from imgnet_tools.execute.params import ExecutorParams
from imgnet_tools.images import keys as keymod
from imgnet_tools.images.check import REASON_ORDER
from imgnet_tools.images.sniff import HEAD_BYTES, sniff_format
from imgnet_tools.images.sources import Layout, class_names, discover, read_val_labels
from imgnet_tools.synsets.classlists import ClassList, derive_classes, is_wnid, load_classes

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from imgnet_tools.manifest.parts import PartStore

MANIFEST = "manifest.parquet"
SCAN_COLUMNS = ("key", "path", "source_path", "rel_path", "split", "label", "wnid", "bytes", "mtime_ns",
                "source_bytes", "source_mtime_ns", "status", "reason")
SCAN_REASONS = frozenset({"missing", "unreadable", "symlink_loop", "symlink_outside", "not_a_file", "non_utf8_name",
                          "unknown_class", "empty", "not_an_image"})
DEFAULT_CHUNK = 1024
# What a probe chunk carries back: the candidate as discovery saw it, and what stat + sniff found.
PROBE_COLUMNS = (("path", "string"), ("split", "string"), ("class_name", "string"), ("label", "int64"),
                 ("cand_reason", "string"), ("split_defaulted", "bool"), ("bytes", "int64"), ("mtime_ns", "int64"),
                 ("probe_reason", "string"), ("non_utf8", "bool"), ("name", "string"), ("rel_path", "string"))


@dataclass(frozen=True)
class ScanParams:
    """``imgnet scan`` options (field names = CLI option names); every rule is checked here."""

    src: tuple[str, ...]
    out: str
    classes: str | None = None
    preset: str | None = None
    split: str | None = None
    val_labels: str | None = None
    val_id_map: str | None = None
    follow_symlinks: bool = False
    include_background: bool = False
    chunk_rows: int | None = None
    executor: str = "local"
    address: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        if not self.src:
            raise InputError("scan needs at least one SRC: an image folder or a list file.")
        if self.classes and self.preset:
            raise InputError("give --classes or --preset, not both.")
        if self.val_id_map and not self.val_labels:
            raise InputError("--val-id-map only applies together with --val-labels.")
        if str(self.out).endswith(".parquet"):
            parent = os.path.dirname(str(self.out)) or "."
            raise InputError(f"--out names a folder (scan writes FOLDER/{MANIFEST}), not a file; "
                             f"try --out {parent}.")
        if os.path.isfile(self.out):
            raise InputError(f"--out {self.out} is a file; --out names the folder that will hold {MANIFEST}.")
        if self.split is not None and (not self.split or "/" in self.split or self.split.startswith(".")):
            raise InputError(f"--split {self.split!r} is not a usable split name (like train, val or test).")
        if self.chunk_rows is not None and self.chunk_rows < 1:
            raise InputError(f"--chunk-rows must be at least 1, got {self.chunk_rows}.")
        self.executor_params()

    def executor_params(self) -> ExecutorParams:
        return ExecutorParams(self.executor, self.address, self.workers)

    def manifest(self) -> Path:
        return Path(self.out) / MANIFEST


@dataclass
class ScanResult:
    """Summary of a scan (``--json`` prints :meth:`to_dict`)."""

    manifest: str
    rows: int
    new: int
    kept: int
    removed: int
    classes: int
    split_defaulted: int = 0
    resumed_chunks: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def scan(params: ScanParams, progress: Callable[[int], None] | None = None) -> ScanResult:
    """Find, probe and label every candidate file; write ``OUT/manifest.parquet`` atomically."""
    from imgnet_tools.execute.ray_executor import check_shared_folders
    from imgnet_tools.manifest.parts import digest, remove_work, work_folder

    layout, classes = _inputs(params)
    target = params.manifest()
    check_shared_folders([target.parent], params.executor_params())  # on a cluster it joins: --out is shared
    size = params.chunk_rows or DEFAULT_CHUNK
    job = ChunkJob(probe_items, lost_probe, join_probes)
    resumed = 0
    with work_folder(target, "scan", {"stage": "scan", "chunk_rows": size}) as store:
        for outcome in run_chunks(job, _chunks(params, layout, size, digest), store, params.executor_params()):
            resumed += outcome.reused
            if progress is not None:
                progress(len(outcome.chunk.items))
        result = _assemble(params, classes, _stored_parts(store))
    remove_work(target, "scan")
    result.resumed_chunks = resumed
    return result


def outputs_complete(params: ScanParams) -> bool:
    """True when the manifest exists and a re-scan would produce exactly the same rows."""
    from imgnet_tools.errors import SchemaError
    from imgnet_tools.manifest.parts import digest
    from imgnet_tools.manifest.stream import iter_chunks

    target = params.manifest()
    if not target.is_file():
        return False
    layout, classes = _inputs(params)
    size = params.chunk_rows or DEFAULT_CHUNK
    try:
        planned = (probe_items(c.items) for c in _chunks(params, layout, size, digest))
        existing = iter_chunks(target, "manifest", size)
        for new in _Assembler(classes, target).tables(planned):
            old = next(existing, None)
            if old is None or not new.equals(old):
                return False
        return next(existing, None) is None
    except SchemaError:
        return False


def _inputs(params: ScanParams) -> tuple[Layout, ClassList]:
    """How to read the inputs, and the class list (given, or derived from the class folders)."""
    out = Path(params.out)
    labels = read_val_labels(params.val_labels, params.val_id_map) if params.val_labels else None
    layout = Layout(split=params.split, val_labels=labels, exclude=(os.path.abspath(out),),
                    follow_symlinks=params.follow_symlinks, include_background=params.include_background)
    classes = load_classes(params.classes, params.preset)
    if classes is None:
        classes = derive_classes(class_names(tuple(params.src), layout))
    return layout, classes


def _chunks(params: ScanParams, layout: Layout, size: int, digest: Callable[..., str]) -> Iterator[Chunk[tuple[Any, ...]]]:
    """Discovery, cut into chunks of ``size`` candidates (each item a plain tuple)."""
    batch: list[tuple[Any, ...]] = []
    index = 0
    for cand in discover(tuple(params.src), layout):
        batch.append((cand.path, cand.split, cand.class_name, cand.label, cand.reason, cand.split_defaulted, cand.rel))
        if len(batch) == size:
            yield Chunk(index, batch, digest("scan", index, batch))
            batch, index = [], index + 1
    if batch:
        yield Chunk(index, batch, digest("scan", index, batch))


def _stored_parts(store: "PartStore") -> Iterator["pa.Table"]:
    index = 0
    while (part := store.read(index)) is not None:
        yield part
        index += 1


# --- in the worker --------------------------------------------------------------------------------

def probe_items(items: Sequence[tuple[Any, ...]]) -> "pa.Table":
    """stat + sniff every candidate of a chunk (none for candidates discovery already rejected)."""
    rows = []
    for path, split, class_name, label, reason, defaulted, rel in items:
        size, mtime, found = (None, None, None) if reason else probe(path)
        rows.append((path, split, class_name, label, reason, defaulted, size, mtime, found,
                     stored_path(path) != path, os.path.basename(path), rel))
    return _probe_table(rows)


def lost_probe(item: tuple[Any, ...], why: str, detail: str) -> "pa.Table":
    """A candidate whose stat or read killed its worker twice (a hung network mount, say)."""
    path, split, class_name, label, reason, defaulted, rel = item
    return _probe_table([(path, split, class_name, label, reason, defaulted, None, None,
                          "unreadable" if why == "timeout" else "internal_error", stored_path(path) != path,
                          os.path.basename(path), rel)])


def join_probes(parts: list["pa.Table"]) -> "pa.Table":
    import pyarrow as pa

    return pa.concat_tables(parts)


@functools.lru_cache(maxsize=1)
def _probe_schema() -> "pa.Schema":
    import pyarrow as pa

    kinds = {"string": pa.string(), "int64": pa.int64(), "bool": pa.bool_()}
    return pa.schema([pa.field(n, kinds[t]) for n, t in PROBE_COLUMNS])


def _probe_table(rows: list[tuple[Any, ...]]) -> "pa.Table":
    import pyarrow as pa

    columns: list[list[Any]] = [list(c) for c in zip(*rows)] if rows else [[] for _ in PROBE_COLUMNS]
    schema = _probe_schema()
    arrays = []
    for values, f in zip(columns, schema):
        if f.name == "name":  # the raw file name, for the key: surrogates (non-UTF-8 bytes) kept as such
            values = [v.encode("utf-8", "surrogateescape").decode("latin-1") for v in values]
        elif f.type == pa.string():
            values = [None if v is None else stored_path(v) for v in values]
        arrays.append(pa.array(values, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def probe(path: str) -> tuple[int | None, int | None, str | None]:
    """(bytes, mtime_ns, reason) of one file: stat it and sniff its first bytes. Never raises."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return None, None, os_reason(exc)
    except ValueError:  # a path the OS cannot take (an embedded NUL byte)
        return None, None, "unreadable"
    if not stat.S_ISREG(st.st_mode):
        return None, st.st_mtime_ns, "not_a_file"
    if st.st_size == 0:
        return 0, st.st_mtime_ns, "empty"
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        return st.st_size, st.st_mtime_ns, os_reason(exc)
    # formats we name but do not decode stay pending: verify reports them as unsupported_format
    reason = None if sniff_format(head) is not None else "not_an_image"
    return st.st_size, st.st_mtime_ns, reason


def os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink_loop"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "missing"
    if exc.errno == errno.EISDIR:
        return "not_a_file"
    return "unreadable"


def stored_path(path: str) -> str:
    """``path`` as stored in the manifest: bytes of a non-UTF-8 name written as ``\\xNN`` escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# --- assembly -------------------------------------------------------------------------------------

def _assemble(params: ScanParams, classes: ClassList, parts: Iterator["pa.Table"]) -> ScanResult:
    """Write the manifest from the probe parts in order; count what it holds."""
    import pyarrow.compute as pc

    from imgnet_tools.manifest.stream import TableWriter

    from imgnet_tools.images import caltech

    target = params.manifest()
    assembler = _Assembler(classes, target, caltech.wnids_by_name(params.src, classes))
    counts: dict[str, collections.Counter[str]] = {c: collections.Counter() for c in ("split", "status", "reason")}
    rows = 0
    with TableWriter(target, "manifest") as writer:
        for table in assembler.tables(parts):
            rows += table.num_rows
            for column, counter in counts.items():
                for entry in pc.value_counts(table.column(column)).to_pylist():
                    if entry["values"] is not None:
                        counter[entry["values"]] += entry["counts"]
            writer.write(table)
    caltech.write_table(target.parent, params.src, classes, assembler.per_class, params.include_background)
    earlier = assembler.earlier
    # kept: files the earlier manifest had (their keys kept; their later columns too, if unchanged)
    return ScanResult(str(target), rows, rows - earlier.matched, earlier.matched, earlier.rows - earlier.matched,
                      len(classes), split_defaulted=assembler.defaulted,
                      splits=dict(sorted(counts["split"].items())), status=dict(sorted(counts["status"].items())),
                      reasons=dict(sorted(counts["reason"].items())))


def _first_reason(*reasons: str | None) -> str | None:
    """The reason that comes first in the vocabulary's order (None when there is none)."""
    given = [r for r in reasons if r]
    return min(given, key=REASON_ORDER.index) if given else None


class _Assembler:
    """Turns probe parts into manifest rows, in discovery order: labels from the class list, rows
    of an earlier manifest reused where their file is unchanged, unique keys handed out."""

    def __init__(self, classes: ClassList, target: Path, wnids: dict[str, str] | None = None) -> None:
        self.classes = classes
        self.earlier = _Earlier.open(target)
        self.kept = self.defaulted = 0
        self.wnids = wnids or {}  # class name -> wnid for names that are not wnids (Caltech-101 categories)
        self.per_class: collections.Counter[str] = collections.Counter()

    def tables(self, parts: Iterator["pa.Table"]) -> Iterator["pa.Table"]:
        import pyarrow as pa

        from imgnet_tools.manifest.parquet import arrow_schema

        schema = arrow_schema("manifest")
        for part in parts:
            cols = {name: part.column(name).to_pylist() for name, _ in PROBE_COLUMNS}
            olds = self.earlier.lookup(cols["path"])
            rows = [self._row({name: cols[name][i] for name in cols}, olds[i]) for i in range(part.num_rows)]
            self._hand_out_keys(rows)
            yield pa.Table.from_pylist(rows, schema=schema)

    def _row(self, found: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        """The manifest row of one candidate; a new row's key is its base key for now (``_base``)."""
        path, size, mtime = found["path"], found["bytes"], found["mtime_ns"]
        self.defaulted += bool(found["split_defaulted"])
        label, wnid, class_name, label_reason = _resolve(found["class_name"], found["label"], self.classes)
        if class_name is not None:
            self.per_class[class_name] += 1
            wnid = wnid or self.wnids.get(class_name)
        reason = _first_reason(found["cand_reason"], found["probe_reason"],
                               "non_utf8_name" if found["non_utf8"] else None, label_reason)
        if old is not None and reason is None and _unchanged(old, size, mtime) and old.get("reason") not in SCAN_REASONS:
            self.kept += 1
            return {**old, "split": found["split"], "label": label, "wnid": wnid, "rel_path": found["rel_path"]}
        name = found["name"].encode("latin-1").decode("utf-8", "surrogateescape")
        return {
            "key": old["key"] if old is not None else None, "path": path, "source_path": path,
            "rel_path": found["rel_path"], "split": found["split"], "label": label, "wnid": wnid, "bytes": size, "mtime_ns": mtime,
            "source_bytes": size, "source_mtime_ns": mtime, "status": "rejected" if reason else "pending",
            "reason": reason, "_base": keymod.base_key(found["split"], class_name, name),
        }

    def _hand_out_keys(self, rows: list[dict[str, Any]]) -> None:
        """Give every new row a unique key: its base key, else ``-2``, ``-3``, ... (the first free one)."""
        from imgnet_tools.manifest.hashset import hash64

        bases = [row.pop("_base", None) for row in rows]
        new = [(row, base) for row, base in zip(rows, bases) if row["key"] is None]
        if not new:
            return
        taken = self.earlier.keys.contains_hashes(hash64(base for _, base in new)).tolist()
        chosen: set[str] = set()
        for (row, base), clash in zip(new, taken):
            key, n = base, 2
            while key in chosen or (clash if key == base else bool(self.earlier.keys.contains([key])[0])):
                key, n = f"{base}-{n}", n + 1
            chosen.add(key)
            row["key"] = key
        self.earlier.keys.add(list(chosen))


def _unchanged(old: dict[str, Any], size: int | None, mtime: int | None) -> bool:
    before = (old.get("source_bytes") if old.get("source_bytes") is not None else old.get("bytes"),
              old.get("source_mtime_ns") if old.get("source_mtime_ns") is not None else old.get("mtime_ns"))
    return size is not None and before == (size, mtime)


def _resolve(class_name: str | None, given: int | None, classes: ClassList
             ) -> tuple[int | None, str | None, str | None, str | None]:
    """(label, wnid, class name, reason) of a candidate; an unknown class is a row reason."""
    if given is not None:
        if len(classes) and not 0 <= given < len(classes):
            return None, None, None, "unknown_class"
        name = classes.names[given] if len(classes) else class_name
        return given, name if is_wnid(name) else None, name, None
    if class_name is None:
        return None, None, None, None
    index = classes.index(class_name)
    wnid = class_name if is_wnid(class_name) else None
    return index, wnid, class_name, None if index is not None else "unknown_class"


class _Earlier:
    """The manifest of an earlier run, for reuse: its rows found by source path through a compact
    index (path hash -> row number, sorted numpy arrays: 16 bytes a row) and read a row group at a
    time; and every key handed out so far (its keys, then this run's), so new keys never repeat one."""

    def __init__(self, path: Path | None) -> None:
        import numpy as np

        from imgnet_tools.manifest.hashset import HashSet64

        self.path = path
        self.keys = HashSet64()
        self.rows = self.matched = 0
        self._hashes = np.zeros(0, dtype=np.uint64)
        self._positions = np.zeros(0, dtype=np.int64)
        self._matched = np.zeros(0, dtype=bool)
        self._groups: list[tuple[int, int]] = []
        self._cache: tuple[int, "pa.Table"] | None = None

    @classmethod
    def open(cls, path: Path) -> "_Earlier":
        import numpy as np
        import pyarrow.parquet as pq

        from imgnet_tools.manifest.hashset import hash64
        from imgnet_tools.manifest.stream import iter_chunks

        found = cls(path if path.is_file() else None)
        if found.path is None:
            return found
        hashes = []
        for table in iter_chunks(path, "manifest", 65536, columns=["key", "source_path"]):
            hashes.append(hash64(table.column("source_path").to_pylist()))
            found.keys.add(table.column("key").to_pylist())
        every = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
        order = np.argsort(every, kind="stable")
        found._hashes, found._positions = every[order], order.astype(np.int64)
        found.rows = len(every)
        found._matched = np.zeros(found.rows, dtype=bool)
        meta = pq.ParquetFile(path).metadata
        first = 0
        for g in range(meta.num_row_groups):
            found._groups.append((first, first + meta.row_group(g).num_rows))
            first += meta.row_group(g).num_rows
        return found

    def lookup(self, paths: list[str]) -> list[dict[str, Any] | None]:
        """The earlier rows of these source paths (None for files new to this scan)."""
        import numpy as np

        from imgnet_tools.manifest.hashset import hash64

        if not self.rows:
            return [None] * len(paths)
        wanted = hash64(paths)
        at = np.searchsorted(self._hashes, wanted)
        out: list[dict[str, Any] | None] = []
        for path, value, i in zip(paths, wanted.tolist(), at.tolist()):
            row = None
            while i < self.rows and int(self._hashes[i]) == value:
                position = int(self._positions[i])
                candidate = self._fetch(position)
                if candidate["source_path"] == path:
                    row = candidate
                    if not self._matched[position]:
                        self._matched[position] = True
                        self.matched += 1
                    break
                i += 1
            out.append(row)
        return out

    def _fetch(self, position: int) -> dict[str, Any]:
        """Row ``position`` of the earlier manifest (its row group read once and kept)."""
        import bisect

        import pyarrow.parquet as pq

        from imgnet_tools.manifest.parquet import conform

        group = bisect.bisect_right([a for a, _ in self._groups], position) - 1
        if self._cache is None or self._cache[0] != group:
            table = pq.ParquetFile(self.path, page_checksum_verification=True).read_row_group(group)
            self._cache = (group, conform(table, "manifest", str(self.path)))
        row: dict[str, Any] = self._cache[1].slice(position - self._groups[group][0], 1).to_pylist()[0]
        return row
