"""The dedup stage: perceptual-hash the manifest, find exact and near duplicates, keep one of each.

What it does to ``manifest.parquet`` (rewritten atomically; source images are only read):

* ``phash`` is filled for usable rows (status ok / fixable / fixed) that lack it, on the chosen
  executor, chunk by chunk (``execute.chunked``: committed as they return, so a killed run
  resumes); rows hashed by an earlier run are not hashed again. A file that cannot be hashed is
  ``rejected`` with a reason (a decoder crash or a decode past ``decode_timeout`` included).
* Rows with the same ``sha256`` are exact duplicates; rows whose hashes are within ``threshold``
  bits are near duplicates (:mod:`imgnet_tools.dedup.search`, no all-pairs comparison). Linked
  rows form a cluster (``cluster_id``, numbered by the smallest key in the cluster).
* Keep policy: inside each keep group (``scope``: ``class`` = same cluster, split and label, the
  default; ``split`` = same cluster and split; ``all`` = the whole cluster) the row with the largest
  resolution (width x height) is kept, ties broken by the smallest key. Every other row becomes
  ``duplicate`` with ``dup_of`` = the keeper's key, ``dup_kind`` (exact / near) and
  ``dup_distance`` (Hamming bits to the keeper); ``pre_dedup_status`` remembers its status, so a
  re-run (say, after more images were scanned) re-clusters everything from the original states.
* A cluster holding two labels in one split is a label conflict (``dedup_label_conflicts.parquet``);
  a cluster spanning splits is train/val leakage (``dedup_split_leakage.parquet``). With the
  default scope both copies stay; the reports list them for a person to decide.
* ``dedup.json`` (written last) records the parameters, counts and a fingerprint of the input,
  which :func:`outputs_complete` uses to tell whether a re-run would change anything.

Memory: the search needs every hash at once, so the driver holds compact numpy columns, 40 bytes
a row (:class:`_Columns`), and during the search about 60 more (docs/CONTRACTS.md "Memory per
row"); keys are read only for the rows that end up in a cluster. The manifest itself is read and
written chunk by chunk.

Why the default threshold is 8: see :data:`DEFAULT_THRESHOLD`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgnet_tools.errors import ImgnetError, InputError
from imgnet_tools.execute.chunked import Chunk, ChunkJob, run_chunks
from imgnet_tools.execute.params import ExecutorParams, resolve_workers

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

    from imgnet_tools.manifest.parts import PartStore

#: Hamming threshold (of 64 bits) under which two images are near duplicates. Chosen by the
#: threshold study (``python -m benchmarks.dedup_threshold_study``: 1,000 generated photo-like
#: images x 7 versions, seed 0, 24,475,500 distinct pairs). At 8: pair precision 0.9999 (1 false
#: pair); share of copies within 8 bits of their original: resized x0.5 / x1.5 1.000,
#: recompressed q40 1.000, 3% centre crop 0.997, resized x0.7 + q60 + 2% crop 0.996, 5% corner
#: crop (a shift) 0.373. At 6 no false pair but 3% crops drop to 0.976; at 10 false pairs rise
#: to 31 and at 12 to 365. 8 also keeps the search over 1.28M hashes well under a minute.
DEFAULT_THRESHOLD = 8
MAX_THRESHOLD = 24
SCOPES = ("class", "split", "all")
CANDIDATE_STATUSES = ("ok", "fixable", "fixed")
REPORT_COLUMNS = ("cluster_id", "split", "key", "label", "wnid", "path", "status", "dup_of", "sha256", "phash")
SUMMARY_FILE = "dedup.json"
CONFLICTS_FILE = "dedup_label_conflicts.parquet"
LEAKAGE_FILE = "dedup_split_leakage.parquet"
DEFAULT_DECODE_TIMEOUT = 120.0
TIMEOUT_GRACE = 30.0
HASH_CHUNK_ROWS = 1024
# What planning and the compact columns read of the manifest.
PLAN_COLUMNS = ("path", "status", "reason", "issues", "pre_dedup_status", "phash", "sha256", "width", "height",
                "label", "split")


@dataclass(frozen=True)
class DedupParams:
    """Parameters of ``imgnet dedup`` (field names are the CLI option names); every rule is checked here."""

    manifest: str
    threshold: int = DEFAULT_THRESHOLD
    scope: str = "class"
    out: str | None = None
    decode_timeout: float = DEFAULT_DECODE_TIMEOUT
    chunk_rows: int | None = None
    executor: str = "local"
    address: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= MAX_THRESHOLD:
            raise InputError(f"threshold {self.threshold} is outside 0..{MAX_THRESHOLD}; "
                             f"the default {DEFAULT_THRESHOLD} was measured (see `imgnet dedup --help`).")
        if self.scope not in SCOPES:
            raise InputError(f"scope {self.scope!r} is not one of {', '.join(SCOPES)}.")
        if not self.decode_timeout > 0:
            raise InputError(f"--decode-timeout must be positive, got {self.decode_timeout}.")
        if self.chunk_rows is not None and self.chunk_rows < 1:
            raise InputError(f"--chunk-rows must be at least 1, got {self.chunk_rows}.")
        self.executor_params()

    def executor_params(self) -> ExecutorParams:
        return ExecutorParams(self.executor, self.address, self.workers)

    def out_dir(self) -> Path:
        """Where the reports go: ``out``, or the manifest's folder."""
        return Path(self.out) if self.out else Path(self.manifest).resolve().parent

    def n_workers(self) -> int:
        return resolve_workers(self.workers)


@dataclass
class DedupResult:
    """Summary of one dedup run (``to_dict`` is what ``--json`` prints and dedup.json holds)."""

    manifest: str
    out: str
    threshold: int
    scope: str
    rows: int = 0
    candidates: int = 0
    hashed: int = 0
    reused: int = 0
    hash_failed: int = 0
    clusters: int = 0
    clustered_rows: int = 0
    duplicates: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    label_conflict_clusters: int = 0
    leakage_clusters: int = 0
    hash_seconds: float = 0.0
    search_seconds: float = 0.0
    reports: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the manifest's states, restored ----------------------------------------------------------------

def _restored(table: "pa.Table") -> tuple["pa.Array", "pa.Array"]:
    """(status, reason) of a chunk with every change of an earlier dedup run undone.

    A row an earlier run changed has ``pre_dedup_status``: its status goes back to that; a row it
    rejected (its perceptual hash had failed) also gets its reason back: none when it was ok, else
    the first of verify's ``issues``. Duplicates kept their reason, so they need nothing.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    status = table.column("status").combine_chunks()
    reason = table.column("reason").combine_chunks()
    pre = table.column("pre_dedup_status").combine_chunks()
    changed = pc.is_valid(pre)
    if not pc.any(changed).as_py():
        return status, reason
    was_rejected = pc.indices_nonzero(pc.fill_null(pc.and_(changed, pc.equal(status, "rejected")), False))
    if len(was_rejected):
        befores = pre.take(was_rejected).to_pylist()
        issues = table.column("issues").take(was_rejected).to_pylist()
        earlier = [None if before == "ok" or not found else found[0] for before, found in zip(befores, issues)]
        values = reason.to_pylist()
        for i, value in zip(was_rejected.to_pylist(), earlier):
            values[i] = value
        reason = pa.array(values, pa.string())
    return pc.coalesce(pre, status), reason


# --- pass 1: hashing ----------------------------------------------------------------------------------

# One row to hash: (offset in chunk, path, whether its sha256 is missing too)
HashItem = tuple[int, str, bool]


def _hash_plan(manifest: str, size: int, key: str, progress: Callable[[int], None] | None) -> Iterator[Chunk[HashItem]]:
    """The manifest's chunks, each with its usable rows that have no perceptual hash yet."""
    import pyarrow.compute as pc

    from imgnet_tools.manifest.stream import iter_chunks

    for index, table in enumerate(iter_chunks(manifest, "manifest", size, columns=list(PLAN_COLUMNS))):
        status, _ = _restored(table)
        todo = pc.and_(pc.is_in(status, value_set=_candidates()), pc.is_null(table.column("phash")))
        offsets = pc.indices_nonzero(pc.fill_null(todo, False))
        paths = table.column("path").take(offsets).to_pylist()
        shas = table.column("sha256").take(offsets).to_pylist()
        offsets = offsets.to_pylist()
        items = [(o, p, s is None) for o, p, s in zip(offsets, paths, shas)]
        if progress is not None:
            progress(0)
        if items:
            yield Chunk(index, items, f"{key}:{index}")


@functools.lru_cache(maxsize=1)
def _candidates() -> "pa.Array":
    import pyarrow as pa

    return pa.array(CANDIDATE_STATUSES)


def hash_items(timeout: float, items: Sequence[HashItem]) -> "pa.Table":
    """In a worker: hash one chunk's rows; per-file failures are rows with a reason."""
    from imgnet_tools.images.phash import HashTask, hash_one_timed

    rows = []
    for offset, path, need_sha in items:
        out = hash_one_timed(HashTask(path, need_sha), timeout)
        rows.append((offset, out.phash, out.width, out.height, out.sha256, out.reason, out.detail))
    return _hash_table(rows)


def lost_hash(item: HashItem, why: str, detail: str) -> "pa.Table":
    """A file whose hashing killed its worker twice, or ran out of time."""
    return _hash_table([(item[0], None, None, None, None, "crashed_decoder" if why == "crashed" else "timeout",
                         detail)])


def join_hashes(parts: list["pa.Table"]) -> "pa.Table":
    import pyarrow as pa

    return pa.concat_tables(parts)


def _hash_table(rows: list[tuple[Any, ...]]) -> "pa.Table":
    import pyarrow as pa

    names = ("offset", "phash", "width", "height", "sha256", "reason", "detail")
    types = (pa.int32(), pa.int64(), pa.int64(), pa.int64(), pa.string(), pa.string(), pa.string())
    columns: list[list[Any]] = [list(c) for c in zip(*rows)] if rows else [[] for _ in names]
    return pa.table({n: pa.array(c, t) for n, c, t in zip(names, columns, types)})


# --- pass 2: compact columns ------------------------------------------------------------------------

@dataclass
class _Columns:
    """What the search and the keep policy need of every row, as numpy arrays (36 bytes a row)."""

    candidate: "np.ndarray"   # bool: usable and hashed
    phash: "np.ndarray"       # int64
    sha_hi: "np.ndarray"      # uint64: first 16 bytes of sha256 (a 128-bit prefix: no false pairs)
    sha_lo: "np.ndarray"
    has_sha: "np.ndarray"     # bool
    area: "np.ndarray"        # int32 pixels (capped at 2**31 - 1), -1 unknown
    label: "np.ndarray"       # int32, -1 none
    split: "np.ndarray"       # int16 code into ``splits``
    splits: list[str]
    hashed_now: int = 0
    failed_now: int = 0
    reused: int = 0


def _load(manifest: str, size: int, store: "PartStore", rows: int) -> _Columns:
    import numpy as np
    import pyarrow.compute as pc

    from imgnet_tools.manifest.stream import iter_chunks

    cols = _Columns(np.zeros(rows, bool), np.zeros(rows, np.int64), np.zeros(rows, np.uint64),
                    np.zeros(rows, np.uint64), np.zeros(rows, bool), np.full(rows, -1, np.int32),
                    np.full(rows, -1, np.int32), np.zeros(rows, np.int16), [])
    codes: dict[str, int] = {}
    start = 0
    for index, table in enumerate(iter_chunks(manifest, "manifest", size, columns=list(PLAN_COLUMNS))):
        n = table.num_rows
        merged = _merge_hashes(table, store.read(index))
        end = start + n
        status = merged["status"]
        usable = np.asarray(pc.fill_null(pc.is_in(status, value_set=_candidates()), False))
        had = np.asarray(pc.is_valid(table.column("phash")))
        cols.reused += int((usable & had).sum())
        cols.hashed_now += merged["hashed_now"]
        cols.failed_now += merged["failed_now"]
        phash = merged["phash"]
        cols.candidate[start:end] = usable & np.asarray(pc.is_valid(phash))
        cols.phash[start:end] = np.asarray(pc.fill_null(phash, 0))
        _sha_prefix(merged["sha256"], cols, start)
        width, height = (np.asarray(pc.fill_null(merged[c], -1)).astype(np.int64) for c in ("width", "height"))
        cols.area[start:end] = np.where((width >= 0) & (height >= 0), np.minimum(width * height, 2**31 - 1), -1)
        cols.label[start:end] = np.asarray(pc.fill_null(table.column("label"), -1)).astype(np.int32)
        for value in pc.unique(table.column("split")).to_pylist():
            codes.setdefault(value, len(codes))
        cols.split[start:end] = [codes[s] for s in table.column("split").to_pylist()] if n else []
        start = end
    cols.splits = sorted(codes, key=codes.__getitem__)
    return cols


def _merge_hashes(table: "pa.Table", hashed: "pa.Table | None") -> dict[str, Any]:
    """A chunk's restored status and reason, phash, sha256 and size, with this run's hashes in."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    status, reason = _restored(table)
    out: dict[str, Any] = {"status": status, "reason": reason, "phash": table.column("phash").combine_chunks(),
                           "sha256": table.column("sha256").combine_chunks(),
                           "width": table.column("width").combine_chunks().cast(pa.int64()),
                           "height": table.column("height").combine_chunks().cast(pa.int64()),
                           "pre": pa.nulls(table.num_rows, pa.string()), "detail": pa.nulls(table.num_rows, pa.string()),
                           "hashed_now": 0, "failed_now": 0}
    if hashed is None or not hashed.num_rows:
        return out
    n = table.num_rows
    offsets = hashed.column("offset").to_numpy()
    ok = np.asarray(pc.is_valid(hashed.column("phash")))
    take = np.arange(n, dtype=np.int64)
    take[offsets] = n + np.arange(len(offsets))
    index = pa.array(take)

    def put(base: "pa.Array", values: "pa.Array") -> "pa.Array":
        return pa.concat_arrays([base, values.cast(base.type)]).take(index)

    failed = ~ok
    failure_reason = pc.if_else(pa.array(failed), hashed.column("reason").combine_chunks(), pa.nulls(len(ok), pa.string()))
    out["phash"] = put(out["phash"], hashed.column("phash").combine_chunks())
    out["sha256"] = pc.coalesce(out["sha256"], put(pa.nulls(n, pa.string()), hashed.column("sha256").combine_chunks()))
    for name in ("width", "height"):
        out[name] = pc.coalesce(out[name], put(pa.nulls(n, pa.int64()), hashed.column(name).combine_chunks()))
    rejected_at = put(pa.array(np.zeros(n, bool)), pa.array(failed))
    out["pre"] = pc.if_else(rejected_at, status, out["pre"])
    out["status"] = pc.if_else(rejected_at, pa.scalar("rejected"), status)
    out["reason"] = pc.if_else(rejected_at, put(pa.nulls(n, pa.string()), failure_reason), reason)
    out["detail"] = put(pa.nulls(n, pa.string()), pc.if_else(pa.array(failed), hashed.column("detail").combine_chunks(),
                                                           pa.nulls(len(ok), pa.string())))
    out["hashed_now"], out["failed_now"] = int(len(offsets)), int(failed.sum())
    return out


def _sha_prefix(sha: "pa.Array", cols: _Columns, start: int) -> None:
    import numpy as np

    values = sha.to_pylist()
    raw = b"".join(bytes.fromhex(v[:32]) if v else bytes(16) for v in values)
    both = np.frombuffer(raw, dtype=">u8").reshape(-1, 2).astype(np.uint64) if values else np.zeros((0, 2), np.uint64)
    end = start + len(values)
    cols.sha_hi[start:end], cols.sha_lo[start:end] = both[:, 0], both[:, 1]
    cols.has_sha[start:end] = [v is not None for v in values]


# --- search and keep policy ---------------------------------------------------------------------------

@dataclass
class _Clusters:
    """Search results for the clustered rows only (global row numbers ``rows``)."""

    rows: "np.ndarray"
    cluster: "np.ndarray"
    keeper: "np.ndarray"      # global row number of the row each is a duplicate of, -1 for keepers
    kind_exact: "np.ndarray"
    distance: "np.ndarray"
    keys: dict[int, str]
    conflicts: "np.ndarray"   # global rows in label-conflict clusters
    leakage: "np.ndarray"     # global rows in clusters spanning splits


def _edges(cols: _Columns, cand: "np.ndarray", threshold: int, threads: int) -> tuple["np.ndarray", "np.ndarray"]:
    """Edges (indices into ``cand``) linking equal sha256, equal phash and near phash rows.

    Each kind of edge is found in its own function, so its temporaries (several 8-byte arrays a
    row) are freed before the next one runs: the near search holds only the distinct hashes.
    """
    import numpy as np

    from imgnet_tools.dedup.search import near_pairs

    left, right = _same_sha(cols, cand)
    values, first_p, same_left, same_right = _same_phash(cols, cand)
    i, j = near_pairs(values, threshold, threads=threads)
    del values
    return (np.concatenate([left, same_left, first_p[i]]), np.concatenate([right, same_right, first_p[j]]))


def _same_sha(cols: _Columns, cand: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """Edges linking each candidate with a sha256 to the first candidate with the same sha256."""
    import numpy as np

    from imgnet_tools.dedup.search import index_type

    with_sha: "np.ndarray" = np.flatnonzero(cols.has_sha[cand]).astype(index_type(len(cand)))
    rows = cand[with_sha]
    hi, lo = cols.sha_hi[rows], cols.sha_lo[rows]
    del rows
    order = np.lexsort((lo, hi))  # stable: the first of equal digests is the smallest position
    hi, lo = hi[order], lo[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
    del hi, lo
    first, member = _link_runs(order, new)
    return with_sha[first], with_sha[member]


def _same_phash(cols: _Columns, cand: "np.ndarray"
                ) -> tuple["np.ndarray", "np.ndarray", "np.ndarray", "np.ndarray"]:
    """The distinct hashes (sorted), the first candidate of each, and edges linking equal hashes to it.

    What ``np.unique(return_index=True, return_inverse=True)`` gives, with fewer arrays the size
    of ``cand`` alive at once (about 25 bytes a row at the peak instead of 65).
    """
    import numpy as np

    from imgnet_tools.dedup.search import index_type

    ph = cols.phash[cand]
    order = np.argsort(ph, kind="stable")
    ph = ph[order]
    new = np.ones(len(ph), dtype=bool)
    np.not_equal(ph[1:], ph[:-1], out=new[1:])
    values = ph[new]
    del ph
    first, member = _link_runs(order, new)
    # held while the near search runs: 4 bytes a hash where that fits
    return values, order[new].astype(index_type(len(cand))), first, member


def _link_runs(order: "np.ndarray", new: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """Edges (first member of its run, member) for every sorted position that starts no run.

    ``order`` sorts the rows; ``new[p]`` is true where sorted position ``p`` holds a new value
    (``new[0]`` always). Only the repeated positions, usually few, get arrays of their own.
    """
    import numpy as np

    repeat = np.flatnonzero(~new)
    if not len(repeat):
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    # the start of each repeat's run: its predecessor if that starts a run, else carried forward
    start = np.maximum.accumulate(np.where(new[repeat - 1], repeat - 1, -1))
    return order[start], order[repeat]


def _search(params: DedupParams, cols: _Columns, manifest: str, size: int) -> _Clusters:
    import numpy as np

    from imgnet_tools.dedup.search import components, index_type

    cand: "np.ndarray" = np.flatnonzero(cols.candidate).astype(index_type(len(cols.candidate)))  # held throughout the search
    left, right = _edges(cols, cand, params.threshold, params.n_workers())
    comp = components(len(cand), left, right)
    sizes = np.bincount(comp, minlength=len(cand))
    inside = np.flatnonzero(sizes[comp] > 1)  # positions in cand of clustered rows
    rows = cand[inside].astype(np.int64)
    keys = _keys_of(manifest, size, rows)
    key_rank = np.empty(len(rows), dtype=np.int64)
    key_rank[np.argsort(np.asarray([keys[int(r)] for r in rows], dtype=object), kind="stable")] = np.arange(len(rows))
    comp_in = comp[inside]
    # clusters numbered 0, 1, ... by their smallest key
    order = np.argsort(key_rank, kind="stable")
    uniq, first_pos = np.unique(comp_in[order], return_index=True)
    number = np.empty(len(uniq), dtype=np.int64)
    number[np.argsort(first_pos, kind="stable")] = np.arange(len(uniq))
    cluster = number[np.searchsorted(uniq, comp_in)]
    keeper, exact, distance = _keep(params.scope, cols, rows, cluster, key_rank)
    split, label = cols.split[rows].astype(np.int64), cols.label[rows].astype(np.int64)
    labelled = np.where(label >= 0, cluster, -1)
    conflicts = rows[_cross_groups(labelled, label, split)]
    leakage = rows[_cross_groups(cluster, split)]
    return _Clusters(rows, cluster, keeper, exact, distance, keys, conflicts, leakage)


def _keep(scope: str, cols: _Columns, rows: "np.ndarray", cluster: "np.ndarray", key_rank: "np.ndarray"
          ) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
    """Per clustered row: the keeper's global row (-1 for keepers), exact copy?, bits to the keeper."""
    import numpy as np

    n = len(rows)
    split_part = cols.split[rows].astype(np.int64) if scope in ("class", "split") else np.zeros(n, np.int64)
    label_part = cols.label[rows].astype(np.int64) if scope == "class" else np.zeros(n, np.int64)
    order = np.lexsort((key_rank, -cols.area[rows], label_part, split_part, cluster))
    g_cluster, g_split, g_label = cluster[order], split_part[order], label_part[order]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (g_cluster[1:] != g_cluster[:-1]) | (g_split[1:] != g_split[:-1]) | (g_label[1:] != g_label[:-1])
    keeper_pos = order[np.maximum.accumulate(np.where(new_group, np.arange(n), 0))]
    keeper = np.full(n, -1, dtype=np.int64)
    dup = order[~new_group]
    keeper[dup] = rows[keeper_pos[~new_group]]
    me, him = rows[dup], keeper[dup]
    exact = np.zeros(n, dtype=bool)
    exact[dup] = cols.has_sha[me] & cols.has_sha[him] & (cols.sha_hi[me] == cols.sha_hi[him]) & (cols.sha_lo[me] == cols.sha_lo[him])
    distance = np.zeros(n, dtype=np.int64)
    distance[dup] = np.bitwise_count(cols.phash[me].view(np.uint64) ^ cols.phash[him].view(np.uint64))
    return keeper, exact, distance


def _cross_groups(cluster: "np.ndarray", a: "np.ndarray", b: "np.ndarray | None" = None) -> "np.ndarray":
    """Mask of clustered rows whose cluster (or cluster and ``b``) holds two or more values of ``a``."""
    import numpy as np

    inside = cluster >= 0
    if not inside.any():
        return inside
    group = cluster if b is None else cluster * (int(b.max(initial=0)) + 1) + b
    pairs = np.unique(np.stack([group[inside], a[inside]], axis=1), axis=0)
    g, counts = np.unique(pairs[:, 0], return_counts=True)
    return inside & np.isin(group, g[counts > 1])


def _keys_of(manifest: str, size: int, rows: "np.ndarray") -> dict[int, str]:
    """The keys of just these global rows (one pass over the key column)."""
    import numpy as np

    from imgnet_tools.manifest.stream import iter_chunks

    wanted = np.sort(rows)
    found: dict[int, str] = {}
    start = 0
    for table in iter_chunks(manifest, "manifest", max(size, 65536), columns=["key"]):
        end = start + table.num_rows
        lo, hi = np.searchsorted(wanted, [start, end])
        if hi > lo:
            picked = wanted[lo:hi]
            keys = table.column("key").take(picked - start).to_pylist()
            found.update(zip(picked.tolist(), keys))
        start = end
    return found


# --- pass 3: the new manifest and the reports ---------------------------------------------------------

def _write(params: DedupParams, size: int, store: "PartStore", clusters: _Clusters) -> tuple[int, int, int]:
    """Write the manifest with the dedup columns; (duplicates, exact, near)."""
    import numpy as np
    import pyarrow as pa

    from imgnet_tools.manifest.stream import TableWriter, iter_chunks

    order = np.argsort(clusters.rows)
    rows, cluster = clusters.rows[order], clusters.cluster[order]
    keeper, exact, distance = clusters.keeper[order], clusters.kind_exact[order], clusters.distance[order]
    counts = [0, 0, 0]
    start = 0
    with TableWriter(params.manifest, "manifest") as writer:
        for index, table in enumerate(iter_chunks(params.manifest, "manifest", size)):
            n = table.num_rows
            merged = _merge_hashes(table, store.read(index))
            lo, hi = np.searchsorted(rows, [start, start + n])
            at = rows[lo:hi] - start
            c_id = np.full(n, -1, np.int64)
            c_id[at] = cluster[lo:hi]
            dup_at = at[keeper[lo:hi] >= 0]
            dup_keeper = keeper[lo:hi][keeper[lo:hi] >= 0]
            is_dup = np.zeros(n, bool)
            is_dup[dup_at] = True
            dup_of = np.full(n, None, object)
            dup_of[dup_at] = [clusters.keys[int(k)] for k in dup_keeper]
            kind = np.full(n, None, object)
            kind[dup_at] = np.where(exact[lo:hi][keeper[lo:hi] >= 0], "exact", "near")
            dist = np.full(n, -1, np.int64)
            dist[dup_at] = distance[lo:hi][keeper[lo:hi] >= 0]
            status = np.asarray(merged["status"].to_pylist(), dtype=object)
            pre = np.asarray(merged["pre"].to_pylist(), dtype=object)
            pre[is_dup] = status[is_dup]
            status[is_dup] = "duplicate"
            counts[0] += int(is_dup.sum())
            counts[1] += int((kind == "exact").sum())
            counts[2] += int((kind == "near").sum())
            updates = {
                "status": pa.array(status.tolist(), pa.string()), "reason": merged["reason"],
                "sha256": merged["sha256"], "phash": merged["phash"], "width": merged["width"], "height": merged["height"],
                "cluster_id": pa.array(c_id, pa.int64(), mask=c_id < 0),
                "dup_of": pa.array(dup_of.tolist(), pa.string()), "dup_kind": pa.array(kind.tolist(), pa.string()),
                "dup_distance": pa.array(np.maximum(dist, 0), pa.int32(), mask=dist < 0),
                "pre_dedup_status": pa.array(pre.tolist(), pa.string()),
            }
            if merged["hashed_now"]:
                updates["detail"] = pa.array([d if d is not None else old for d, old in
                                              zip(merged["detail"].to_pylist(), table.column("detail").to_pylist())],
                                             pa.string())
            for name, array in updates.items():
                table = table.set_column(table.column_names.index(name), name, array.cast(table.schema.field(name).type))
            writer.write(table)
            start += n
    return counts[0], counts[1], counts[2]


def _report(manifest: str, size: int, rows: "np.ndarray", path: Path, name: str) -> None:
    """Write the member rows ``rows`` of a report (read back from the new manifest), by cluster then key."""
    import numpy as np
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import write_table
    from imgnet_tools.manifest.stream import iter_chunks

    wanted = np.sort(rows)
    pieces, start = [], 0
    for table in iter_chunks(manifest, "manifest", max(size, 65536), columns=list(REPORT_COLUMNS)):
        lo, hi = np.searchsorted(wanted, [start, start + table.num_rows])
        if hi > lo:
            pieces.append(table.take(pa.array(wanted[lo:hi] - start)))
        start += table.num_rows
    from imgnet_tools.manifest.parquet import arrow_schema

    picked = pa.concat_tables(pieces) if pieces else arrow_schema(name).empty_table()
    if picked.num_rows:
        picked = picked.sort_by([("cluster_id", "ascending"), ("key", "ascending")])
    write_table(picked, path, name)


def dedup(params: DedupParams, progress: Callable[[int], None] | None = None) -> DedupResult:
    """Run the dedup stage on ``params.manifest``; ``progress(n)`` is called as n images are hashed."""
    from imgnet_tools.execute.ray_executor import check_shared_folders
    from imgnet_tools.manifest.atomic import atomic_write_text
    from imgnet_tools.manifest.parts import digest, remove_work, work_folder
    from imgnet_tools.manifest.schemas import format_version, validate_json
    from imgnet_tools.manifest.stream import chunk_rows_for, table_info

    info = table_info(params.manifest, "manifest")
    out_dir = params.out_dir()
    size = params.chunk_rows or chunk_rows_for(info.rows, hi=HASH_CHUNK_ROWS)
    result = DedupResult(str(Path(params.manifest).resolve()), str(out_dir.resolve()), params.threshold,
                         params.scope, rows=info.rows)
    identity = {"stage": "dedup", "input": os.path.abspath(params.manifest), "file": info.identity, "chunk_rows": size}
    check_shared_folders([Path(params.manifest).resolve().parent, out_dir], params.executor_params())
    job = ChunkJob(functools.partial(hash_items, params.decode_timeout), lost_hash, join_hashes)
    try:
        with work_folder(params.manifest, "dedup", identity) as store:
            t0 = time.perf_counter()
            for outcome in run_chunks(job, _hash_plan(params.manifest, size, digest(identity), None), store,
                                      params.executor_params(), item_timeout=params.decode_timeout + TIMEOUT_GRACE):
                if progress is not None:
                    progress(len(outcome.chunk.items))
            cols = _load(params.manifest, size, store, info.rows)
            result.hashed, result.hash_failed, result.reused = cols.hashed_now, cols.failed_now, cols.reused
            result.hash_seconds = round(time.perf_counter() - t0, 3)
            t0 = time.perf_counter()
            result.candidates = int(cols.candidate.sum())
            clusters = _search(params, cols, params.manifest, size)
            result.search_seconds = round(time.perf_counter() - t0, 3)
            del cols
            _release_freed_memory()
            result.duplicates, result.exact_duplicates, result.near_duplicates = _write(params, size, store, clusters)
    except OSError as exc:
        raise ImgnetError(f"writing {params.manifest} failed: {exc.strerror or exc}; free space or fix the problem "
                          "and run the same command again: the hashed chunks are kept.") from exc
    remove_work(params.manifest, "dedup")
    result.clusters = len(set(clusters.cluster.tolist()))
    result.clustered_rows = len(clusters.rows)
    result.label_conflict_clusters = len(set(_cluster_of(clusters, clusters.conflicts)))
    result.leakage_clusters = len(set(_cluster_of(clusters, clusters.leakage)))
    _report(params.manifest, size, clusters.conflicts, out_dir / CONFLICTS_FILE, "dedup_label_conflicts")
    _report(params.manifest, size, clusters.leakage, out_dir / LEAKAGE_FILE, "dedup_split_leakage")
    result.reports = {"label_conflicts": str(out_dir / CONFLICTS_FILE), "split_leakage": str(out_dir / LEAKAGE_FILE)}
    doc = {"format_version": format_version("dedup"), "params": asdict(params),
           "fingerprint": fingerprint(params.manifest), "complete": result.hash_failed == 0, "result": result.to_dict()}
    validate_json(doc, "dedup", SUMMARY_FILE)
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(doc, indent=2) + "\n")
    return result


def _release_freed_memory() -> None:
    """Give the memory the search freed back to the system (glibc keeps freed blocks of up to 32 MB
    in its heap), so the manifest writer's buffers (Arrow's own allocator) do not stack on top of it
    and the driver's peak stays the search's. A no-op where the C library has no ``malloc_trim``."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _cluster_of(clusters: _Clusters, rows: "np.ndarray") -> list[int]:
    import numpy as np

    position = np.searchsorted(np.sort(clusters.rows), rows)
    by_row = clusters.cluster[np.argsort(clusters.rows)]
    return by_row[position].tolist() if len(rows) else []


def fingerprint(manifest: str) -> str:
    """Digest of what dedup depends on besides its own outputs: keys, paths, sizes, restored states."""
    import pyarrow as pa

    from imgnet_tools.manifest.stream import iter_chunks, update_digest

    digest = hashlib.sha256(b"imgnet dedup input v2\0")
    wanted = ["key", "path", "bytes", "mtime_ns", "status", "reason", "issues", "pre_dedup_status"]
    for table in iter_chunks(manifest, "manifest", 65536, columns=wanted):
        status, _ = _restored(table)
        update_digest(digest, pa.table({"key": table.column("key"), "path": table.column("path"),
                                        "bytes": table.column("bytes"), "mtime_ns": table.column("mtime_ns"),
                                        "status": status}))
    return digest.hexdigest()


def count_to_hash(params: DedupParams) -> int:
    """How many rows a run would perceptual-hash (usable rows without a phash): a progress total."""
    import pyarrow.compute as pc

    from imgnet_tools.manifest.stream import iter_chunks

    total = 0
    for table in iter_chunks(params.manifest, "manifest", 65536, columns=list(PLAN_COLUMNS)):
        status, _ = _restored(table)
        todo = pc.and_(pc.is_in(status, value_set=_candidates()), pc.is_null(table.column("phash")))
        total += pc.sum(pc.cast(pc.fill_null(todo, False), "int64")).as_py() or 0
    return total


def outputs_complete(params: DedupParams) -> bool:
    """True when dedup ran with these parameters on this manifest and a re-run would change nothing."""
    from imgnet_tools.errors import SchemaError

    summary = params.out_dir() / SUMMARY_FILE
    if not summary.is_file() or not Path(params.manifest).is_file():
        return False
    try:
        doc = json.loads(summary.read_text(encoding="utf-8"))
        same = {k: doc.get("params", {}).get(k) for k in ("threshold", "scope")} == {"threshold": params.threshold,
                                                                                     "scope": params.scope}
        return bool(same and doc.get("complete") and doc.get("fingerprint") == fingerprint(params.manifest))
    except (ValueError, SchemaError):
        return False
