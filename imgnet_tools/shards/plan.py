"""The shard plan: which manifest rows go into which shard, in which order.

Rows with status ``ok`` or ``fixed`` are taken; every other status is counted and skipped. The
manifest is read chunk by chunk (:func:`select_manifest`): the taken rows' sample columns go to a
selection file (Arrow IPC, ``DIR/_state/selection.arrow``) that workers read their samples from,
and the driver keeps only compact numpy columns of them (split 2, size 8, label 8: 18 bytes a row;
about 60 while selecting), so planning ImageNet-21k's 14M rows needs a few hundred MB.

Within a split, rows are put in the order of a seeded 64-bit hash of their key (a seeded random
permutation that does not depend on the manifest's row order or on the machine), so every shard
mixes classes; ``--no-shuffle`` keeps the manifest order. The selection file is written in that
plan order (splits by name, each split's rows contiguous), so a shard's samples are a contiguous
range of it: a worker reads the one or two record batches they lie in (with ``pread``; nothing is
memory-mapped or read at random, so no process's memory grows with the file). A split of ``n``
rows becomes ``k`` shards whose sample counts differ by at most one: ``k`` is the smallest count
that keeps every shard within ``size`` samples and, when asked, within ``max_bytes`` (estimated
from the manifest's byte counts plus tar overhead).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from imgnet_tools.errors import InputError
from imgnet_tools.shards.keys import SAFE_KEY_PATTERN, sanitize_key

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

TAKEN = ("ok", "fixed")
# Tar bytes besides the image data for one sample: three headers, a .cls block and a .json block
# (a sample's JSON is well under 1 KiB), plus the image's padding to a 512-byte block.
SAMPLE_OVERHEAD = 3 * 512 + 512 + 1024
ARCHIVE_OVERHEAD = 20 * 512
_SAFE_PREFIX = re.compile(r"[A-Za-z0-9_+=,@~-][A-Za-z0-9_.+=,@~-]*")
SELECTION_FILE = "selection.arrow"


class SampleIn(NamedTuple):
    """One manifest row to shard (what a worker needs and nothing else).

    ``source_path`` is the path the shard records (``KEY.json``, its manifest): the row's path
    relative to where it was scanned, or the absolute one with ``--keep-source-paths``.
    """

    key: str
    source_key: str
    path: str
    source_path: str
    split: str
    label: int | None
    wnid: str | None
    width: int | None
    height: int | None
    sha256: str | None
    bytes: int | None
    mtime_ns: int | None

    def values(self) -> list[Any]:
        """Field values in declared order."""
        return list(self)


SAMPLE_FIELDS = SampleIn._fields
# Manifest columns that selection reads (the optional ones may be missing from a format 1 manifest).
SELECTED_COLUMNS = ("status", "key", "path", "source_path", "rel_path", "split", "label", "wnid", "width", "height",
                    "sha256", "bytes", "mtime_ns")
_STRING_FIELDS = frozenset(("key", "source_key", "path", "source_path", "split", "wnid", "sha256"))


@dataclass(frozen=True)
class ShardPlan:
    """One shard: its split, index, file stem, and its samples as row numbers of the selection file
    (in member order)."""

    split: str
    index: int
    stem: str
    rows: "np.ndarray"

    def __len__(self) -> int:
        return len(self.rows)


def fingerprint_samples(stem: str, extra: Any, samples: Sequence[SampleIn]) -> str:
    """sha256 of everything that decides a shard's bytes (``extra``: the transform and path policy)."""
    doc = {"stem": stem, "extra": extra, "fields": SAMPLE_FIELDS, "samples": list(samples)}  # tuples: JSON arrays
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


# --- selection ------------------------------------------------------------------------------------------

def select_chunk(table: "pa.Table", keep_source_paths: bool = False) -> tuple["pa.Table", Counter[str]]:
    """The rows of one manifest chunk to shard (status ok/fixed) as a table of :data:`SAMPLE_FIELDS`,
    and the skipped rows counted by status.

    Works column by column in Arrow: a missing optional column reads as null; keys are checked for
    tar safety by Arrow's RE2 and only the unsafe ones are sanitized in Python; size and mtime
    describe the file at ``path`` only for ok rows (fixed rows point at a copy), so fixed rows
    carry no mtime (their sha256 is checked instead).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    status = table.column("status")
    taken_mask = pc.is_in(status, value_set=pa.array(TAKEN))
    skipped: Counter[str] = Counter(pc.filter(status, pc.invert(taken_mask)).to_pylist())
    taken = table.filter(taken_mask)
    n = taken.num_rows

    def column(name: str) -> "pa.Array":
        kind = pa.string() if name in _STRING_FIELDS or name == "rel_path" else pa.int64()
        if name not in taken.column_names:
            return pa.nulls(n, kind)
        return taken.column(name).combine_chunks().cast(kind)

    cols = {name: column(name) for name in ("key", "path", "source_path", "rel_path", "split", "label", "wnid",
                                            "width", "height", "sha256", "bytes", "mtime_ns")}
    absolute = pc.coalesce(cols["source_path"], cols["path"])
    if keep_source_paths:
        published = absolute
    else:  # never the machine's absolute path: where it was scanned from, or its name alone
        published = pc.coalesce(cols["rel_path"], pc.replace_substring_regex(absolute, r"^.*/", ""))
    is_ok = pc.equal(taken.column("status").combine_chunks(), "ok")
    cols["mtime_ns"] = pc.if_else(is_ok, cols["mtime_ns"], pa.scalar(None, pa.int64()))
    safe = pc.match_substring_regex(cols["key"], f"^{SAFE_KEY_PATTERN}$")
    if pc.all(safe).as_py() is False:
        keys = cols["key"].to_pylist()
        shard_keys = pa.array([k if ok else sanitize_key(k) for k, ok in zip(keys, safe.to_pylist())], pa.string())
    else:
        shard_keys = cols["key"]
    out = {"key": shard_keys, "source_key": cols["key"], "path": cols["path"], "source_path": published}
    out.update({name: cols[name] for name in SAMPLE_FIELDS[4:]})
    return pa.table(out, schema=_sample_schema()), skipped


@functools.lru_cache(maxsize=1)
def _sample_schema() -> "pa.Schema":
    import pyarrow as pa

    return pa.schema([pa.field(n, pa.string() if n in _STRING_FIELDS else pa.int64()) for n in SAMPLE_FIELDS])


@dataclass
class Selection:
    """What :func:`select_manifest` took: the selection file and compact columns of its rows, both
    in plan order (each split's rows contiguous, splits in name order)."""

    path: str
    rows: int
    skipped: Counter[str]
    fingerprint: str
    split_code: "np.ndarray"   # int16 code into ``splits`` per row
    splits: list[str]
    cost: "np.ndarray"          # int64 estimated tar bytes per sample
    label: "np.ndarray"         # int64, -1 for none
    wnid_of: dict[int, str | None]
    shuffled: bool = True       # the order within a split: seeded key hash (True) or manifest order

    def samples(self, rows: Sequence[int] | "np.ndarray") -> list[SampleIn]:
        return read_samples(self.path, rows)


# Rows a record batch of the selection file holds (the last may hold fewer): a worker reads the one
# or two batches its shard's contiguous rows lie in, about 1 MB each. The fingerprint hashes the
# file batch by batch, so changing this changes it: bump state.FINGERPRINT_VERSION with it.
BATCH_ROWS = 4096
_BATCH_ROWS_KEY = b"imgnet.batch_rows"
# Rows a bucket of the sorting pass holds at most, on average: the driver sorts one bucket at a time.
BUCKET_ROWS = 1 << 17


_SHUFFLE = "_shuffle"  # the seeded key hash, a column of the bucket files only


class _KeyHashes:
    """The 64-bit hashes of every selected key, in one preallocated array (room for every manifest
    row, grown if the manifest grows while being read): what the repeated-key check sorts."""

    def __init__(self, capacity: int) -> None:
        import numpy as np

        self.n = 0
        self.values = np.zeros(capacity, np.uint64)

    def add(self, hashes: "np.ndarray") -> None:
        a, b = self.n, self.n + len(hashes)
        if b > len(self.values):
            self.values.resize(max(b, 2 * len(self.values)), refcheck=False)
        self.values[a:b] = hashes
        self.n = b

    def sorted(self) -> "np.ndarray":
        self.values.resize(self.n, refcheck=False)
        self.values.sort()
        return self.values


def select_manifest(manifest: str, target: str | os.PathLike[str], seed: int,
                    keep_source_paths: bool = False, chunk_rows: int = 16384, shuffle: bool = True) -> Selection:
    """Read ``manifest`` chunk by chunk, write the rows to shard to ``target`` (Arrow IPC, atomically)
    in plan order, and return the compact columns the plan needs (see the module docstring).

    Two passes, neither of which touches a row of a file at random: the manifest's chunks are
    spread into bucket files (``TARGET.parts/``) by split and, when shuffling, by the top bits of
    the seeded key hash, so that every bucket holds a contiguous range of the plan order; then
    each bucket in turn (splits by name, hash ranges in order) is read, sorted in memory and
    appended to ``target``, and its compact columns filled in. The fingerprint is taken of
    ``target`` as it is written. Raises :class:`InputError` when two taken rows share a key.
    """
    import shutil

    import numpy as np
    import pyarrow as pa

    from imgnet_tools.manifest.atomic import atomic_path
    from imgnet_tools.manifest.hashset import hash64
    from imgnet_tools.manifest.stream import iter_chunks, table_info

    capacity = table_info(manifest, "manifest").rows
    bits = max(0, (max(capacity, 1) - 1) // BUCKET_ROWS).bit_length() if shuffle else 0
    skipped: Counter[str] = Counter()
    codes: dict[str, int] = {}
    wnid_of: dict[int, str | None] = {}
    key_hashes = _KeyHashes(capacity)
    counts: Counter[int] = Counter()
    parts = Path(f"{target}.parts")
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True)
    writers: dict[int, tuple[Any, Any]] = {}
    try:
        for chunk in iter_chunks(manifest, "manifest", chunk_rows, columns=list(SELECTED_COLUMNS)):
            table, seen = select_chunk(chunk, keep_source_paths)
            skipped.update(seen)
            if not table.num_rows:
                continue
            keys = table.column("source_key").to_pylist()
            splits = table.column("split").to_pylist()
            for name in dict.fromkeys(splits):
                codes.setdefault(name, len(codes))
            split = np.fromiter((codes[s] for s in splits), np.int64, len(splits))
            shuffle_hash = hash64(f"imgnet-shard:{seed}:{k}" for k in keys)
            key_hashes.add(hash64(keys))
            labels = table.column("label").to_pylist()
            for label, wnid in zip(labels, table.column("wnid").to_pylist()):
                if label is not None and label >= 0:
                    wnid_of.setdefault(label, wnid)
            bucket = split << bits
            if bits:
                bucket |= (shuffle_hash >> np.uint64(64 - bits)).astype(np.int64)
            _spread(table.append_column(_SHUFFLE, pa.array(shuffle_hash)), bucket, parts, writers, counts)
            del keys, splits, labels, table
        _close(writers)
        names = sorted(codes)
        order_of = [((codes[name] << bits) | h, codes[name]) for name in names for h in range(1 << bits)]
        with atomic_path(target, fsync=False) as tmp:
            columns = _write_ordered(tmp, parts, order_of, counts, sum(counts.values()), shuffle)
    finally:
        _close(writers)
        shutil.rmtree(parts, ignore_errors=True)
    _refuse_repeated_keys(str(target), key_hashes.sorted())
    return Selection(str(target), len(columns.split), skipped, columns.digest.hexdigest(), columns.split,
                     sorted(codes, key=codes.__getitem__), columns.cost, columns.label, wnid_of, shuffle)


def _close(writers: dict[int, tuple[Any, Any]]) -> None:
    """Close the bucket files (a writer and its file)."""
    while writers:
        writer, sink = writers.popitem()[1]
        try:
            writer.close()
        finally:
            sink.close()


def _spread(table: "pa.Table", bucket: "np.ndarray", parts: Path, writers: dict[int, tuple[Any, Any]],
            counts: Counter[int]) -> None:
    """Append each row of ``table`` to its bucket's file (Arrow IPC stream), in manifest order."""
    import numpy as np
    import pyarrow as pa

    present, inverse, sizes = np.unique(bucket, return_inverse=True, return_counts=True)
    if len(present) == 1:
        groups = [(int(present[0]), table)]
    else:
        grouped = table.take(pa.array(np.argsort(inverse, kind="stable")))  # one take, then slices
        ends = np.cumsum(sizes)
        groups = [(int(b), grouped.slice(end - n, n)) for b, n, end in zip(present.tolist(), sizes.tolist(),
                                                                             ends.tolist())]
    for b, rows in groups:
        if b not in writers:
            sink = pa.OSFile(str(parts / f"{b}.arrows"), "wb")
            writers[b] = (pa.ipc.new_stream(sink, rows.schema), sink)
        writers[b][0].write_table(rows)
        counts[b] += rows.num_rows


def _write_ordered(tmp: Path, parts: Path, order_of: list[tuple[int, int]], counts: Counter[int], total: int,
                   shuffle: bool) -> "_Ordered":
    """Write the buckets (``order_of``: bucket and split code), each put in plan order (a stable
    sort by the seeded key hash: ties keep the manifest's order), to ``tmp`` in batches of
    :data:`BATCH_ROWS` rows; return the compact columns in plan order and the fingerprint."""
    import numpy as np
    import pyarrow as pa

    schema = _sample_schema().with_metadata({_BATCH_ROWS_KEY: str(BATCH_ROWS).encode()})
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        ordered = _Ordered(writer, total)
        for b, code in order_of:
            if not counts.get(b, 0):
                continue
            path = parts / f"{b}.arrows"
            with pa.OSFile(str(path), "rb") as source:
                reader = pa.ipc.open_stream(source)
                if not shuffle:  # a split in manifest order: the bucket is in plan order already
                    for batch in reader:
                        ordered.add(pa.Table.from_batches([batch]).drop_columns([_SHUFFLE]), code)
                else:
                    table = reader.read_all()
                    by_hash = np.argsort(table.column(_SHUFFLE).to_numpy(), kind="stable")
                    ordered.add(table.drop_columns([_SHUFFLE]).take(pa.array(by_hash)), code)
                    del table
            path.unlink()
        ordered.finish()
    return ordered


class _Ordered:
    """The plan-ordered rows as they come: cut into record batches of exactly :data:`BATCH_ROWS`
    rows (the last may be shorter), written and fed to the fingerprint (sha256 of the rows in plan
    order, column by column from Arrow's buffers: the manifest's row order does not matter when
    shuffling; any change of a selected value does); their compact columns filled in."""

    def __init__(self, writer: Any, total: int) -> None:
        import numpy as np

        self.writer = writer
        self.digest = hashlib.sha256(b"imgnet selection v4\0")
        self.pending: list["pa.Table"] = []
        self.held = 0
        self.at = 0
        self.split = np.zeros(total, np.int16)
        self.cost = np.zeros(total, np.int64)
        self.label = np.zeros(total, np.int64)

    def add(self, table: "pa.Table", code: int) -> None:
        a, b = self.at, self.at + table.num_rows
        self.split[a:b] = code
        self.cost[a:b] = table.column("bytes").fill_null(0).to_numpy()
        self.cost[a:b] += SAMPLE_OVERHEAD
        self.label[a:b] = table.column("label").fill_null(-1).to_numpy()
        self.at = b
        if table.num_rows:
            self.pending.append(table)
            self.held += table.num_rows
        while self.held >= BATCH_ROWS:
            self._write(BATCH_ROWS)

    def finish(self) -> None:
        if self.held:
            self._write(self.held)

    def _write(self, size: int) -> None:
        import pyarrow as pa

        from imgnet_tools.manifest.stream import update_digest

        joined = pa.concat_tables(self.pending)  # no copy: only the batch written is made contiguous
        batch = joined.slice(0, size).combine_chunks()
        update_digest(self.digest, batch)
        self.writer.write_table(batch)
        rest = joined.slice(size)
        self.pending = [rest] if rest.num_rows else []
        self.held -= size


def _refuse_repeated_keys(path: str, sorted_key_hash: "np.ndarray") -> None:
    """Equal key hashes are a repeated key (or, once in 10^19 pairs, a hash collision: checked by
    reading the keys whose hash repeats from the selection file)."""
    import numpy as np

    from imgnet_tools.manifest.hashset import hash64

    same = sorted_key_hash[1:][sorted_key_hash[1:] == sorted_key_hash[:-1]]
    if not len(same):
        return
    wanted = np.unique(same)
    found: Counter[str] = Counter()
    reader, _ = _reader(path)
    for i in range(reader.num_record_batches):
        keys = reader.get_batch(i).column("source_key").to_pylist()
        found.update(k for k, hit in zip(keys, np.isin(hash64(keys), wanted).tolist()) if hit)
    repeated = sorted(k for k, c in found.items() if c > 1)
    if repeated:
        raise InputError(f"the manifest has {len(repeated)} repeated keys among the rows to shard (first: "
                         f"{repeated[0]!r}); keys must be unique: scan the sources again.")


@functools.lru_cache(maxsize=2)
def _reader_cached(path: str, identity: tuple[int, int, int]) -> tuple["pa.ipc.RecordBatchFileReader", int]:
    import pyarrow as pa

    reader = pa.ipc.open_file(pa.OSFile(path, "rb"))
    metadata = reader.schema.metadata or {}
    return reader, int(metadata.get(_BATCH_ROWS_KEY, BATCH_ROWS))


def _reader(path: str) -> tuple["pa.ipc.RecordBatchFileReader", int]:
    """The selection file's reader (read with ``pread``, not memory-mapped: a process holds only the
    batches it reads) and its rows per batch."""
    st = os.stat(path)
    return _reader_cached(path, (st.st_size, st.st_mtime_ns, st.st_ino))


def read_samples(path: str, rows: Sequence[int] | "np.ndarray") -> list[SampleIn]:
    """Rows ``rows`` of a selection file as :class:`SampleIn`, in that order (what a worker runs on).

    Reads only the record batches the rows lie in: a shard's rows are contiguous, one or two batches."""
    import numpy as np
    import pyarrow as pa

    wanted = np.asarray(rows, dtype=np.int64)
    if not len(wanted):
        return []
    reader, per = _reader(path)
    batch_of = wanted // per
    present = np.unique(batch_of)
    table = pa.Table.from_batches([reader.get_batch(int(b)) for b in present.tolist()])
    picked = table.take(pa.array(np.searchsorted(present, batch_of) * per + wanted % per))
    columns = [picked.column(name).to_pylist() for name in SAMPLE_FIELDS]
    return list(map(tuple.__new__, repeat(SampleIn), zip(*columns)))  # SampleIn(*row), without its Python __new__


def iter_selected(selection: Selection, chunk: int = 65536) -> Iterator[list[SampleIn]]:
    """Every selected sample, in plan order, a chunk at a time."""
    for start in range(0, selection.rows, chunk):
        yield read_samples(selection.path, range(start, min(selection.rows, start + chunk)))


# --- order and plan ---------------------------------------------------------------------------------------

def order(selection: Selection, shuffle: bool) -> dict[str, "np.ndarray"]:
    """Selection rows per split (splits in name order). The selection file is in plan order
    already (by the seeded key hash, or in manifest order: ``shuffle``, as it was selected), so
    each split's rows are one contiguous range."""
    import numpy as np

    if shuffle != selection.shuffled:
        raise ValueError(f"the selection was made with shuffle={selection.shuffled}, not {shuffle}")
    by_split: dict[str, np.ndarray] = {}
    start = 0
    for name in sorted(selection.splits):
        n = int(np.count_nonzero(selection.split_code == selection.splits.index(name)))
        by_split[name] = np.arange(start, start + n, dtype=np.int64)
        start += n
    return by_split


def even_bounds(n: int, k: int) -> list[tuple[int, int]]:
    """``k`` contiguous ranges over ``n`` items whose lengths differ by at most one (longer first)."""
    base, extra = divmod(n, k)
    bounds, start = [], 0
    for i in range(k):
        end = start + base + (1 if i < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def shard_count(costs: "np.ndarray", size: int, max_bytes: int | None) -> int:
    """Smallest shard count with at most ``size`` samples and (estimated) ``max_bytes`` per shard."""
    import numpy as np

    n = len(costs)
    k = math.ceil(n / size)
    if max_bytes is None or n == 0:
        return k
    budget = max_bytes - ARCHIVE_OVERHEAD
    if int(costs.max()) > budget:
        raise InputError(
            f"--max-bytes {max_bytes} is smaller than one sample ({int(costs.max()) + ARCHIVE_OVERHEAD} bytes with tar "
            "overhead); raise --max-bytes."
        )
    prefix = np.concatenate([[0], np.cumsum(costs)])
    k = max(k, math.ceil(int(prefix[-1]) / budget))
    while True:
        bounds = np.asarray(even_bounds(n, k), dtype=np.int64)
        if not (prefix[bounds[:, 1]] - prefix[bounds[:, 0]] > budget).any():
            return k
        k += 1


def plan_shards(by_split: dict[str, "np.ndarray"], costs: "np.ndarray", size: int, max_bytes: int | None,
                prefix: str) -> list[ShardPlan]:
    """Cut every split into equal shards named ``{prefix}-{index:06d}`` (prefix may use ``{split}``)."""
    check_prefix(prefix, sorted(by_split))
    plans = []
    for split, rows in by_split.items():
        stem_prefix = prefix.replace("{split}", split)
        if not _SAFE_PREFIX.fullmatch(stem_prefix):
            raise InputError(f"shard prefix {stem_prefix!r} is not a safe file name; use letters, digits and _.+=,@~-.")
        k = shard_count(costs[rows], size, max_bytes)
        for index, (a, b) in enumerate(even_bounds(len(rows), k)):
            plans.append(ShardPlan(split, index, f"{stem_prefix}-{index:06d}", rows[a:b]))
    return plans


def check_prefix(prefix: str, splits: Sequence[str] | None = None) -> None:
    """The rules of ``--prefix``: only ``{split}`` in braces; ``{split}`` needed for several splits."""
    if set("{}") & set(prefix.replace("{split}", "")):
        raise InputError(f"--prefix {prefix!r}: only {{split}} may appear in braces.")
    if splits is not None and len(splits) > 1 and "{split}" not in prefix:
        raise InputError(f"--prefix {prefix!r} must contain {{split}}: the manifest has splits {list(splits)}.")


def selection_path(out: str | os.PathLike[str]) -> Path:
    from imgnet_tools.shards import state

    return Path(out) / state.STATE_DIR / SELECTION_FILE
