"""The dedup stage: perceptual-hash the manifest, find exact and near duplicates, keep one of each.

What it does to ``manifest.parquet`` (rewritten atomically; source images are only read):

* ``phash`` is filled for usable rows (status ok / fixable / fixed) that lack it, on every core;
  rows hashed by an earlier run are not hashed again (resume).
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

Why the default threshold is 8: see :data:`DEFAULT_THRESHOLD`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgnet_tools.errors import InputError
from imgnet_tools.execute.params import resolve_workers

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

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
HASH_BATCH = 64


@dataclass(frozen=True)
class DedupParams:
    """Parameters of ``imgnet dedup`` (field names are the CLI option names)."""

    manifest: str
    threshold: int = DEFAULT_THRESHOLD
    scope: str = "class"
    workers: int | None = None
    out: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= MAX_THRESHOLD:
            raise InputError(f"threshold {self.threshold} is outside 0..{MAX_THRESHOLD}; "
                             f"the default {DEFAULT_THRESHOLD} was measured (see `imgnet dedup --help`).")
        if self.scope not in SCOPES:
            raise InputError(f"scope {self.scope!r} is not one of {', '.join(SCOPES)}.")
        if self.workers is not None and self.workers < 1:
            raise InputError(f"workers must be at least 1, got {self.workers}.")

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


def _restored(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(status, pre_dedup_status) with every change of an earlier dedup run undone."""
    import numpy as np

    status = np.asarray(table.column("status").to_pylist(), dtype=object)
    if "pre_dedup_status" in table.column_names:
        pre = np.asarray(table.column("pre_dedup_status").to_pylist(), dtype=object)
        changed = pre != None
        status[changed] = pre[changed]
    return status, np.full(len(status), None, dtype=object)


def _fingerprint(table: pa.Table, status: np.ndarray) -> str:
    """Digest of what dedup depends on besides its own outputs: keys, paths, sizes, states."""
    digest = hashlib.sha256()
    parts = [table.column(c).to_pylist() for c in ("key", "path", "bytes", "mtime_ns") if c in table.column_names]
    for row in zip(*parts, status.tolist()):
        digest.update(repr(row).encode())
    return digest.hexdigest()


def _optional(table: pa.Table, name: str, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(values with nulls as 0, present mask) of a numeric column that may be missing."""
    import numpy as np

    if name not in table.column_names:
        return np.zeros(table.num_rows, dtype=dtype), np.zeros(table.num_rows, dtype=bool)
    col = table.column(name)
    present = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    values = np.asarray(col.fill_null(0).to_numpy(zero_copy_only=False)).astype(dtype)
    return values, present


def _strings(table: pa.Table, name: str) -> np.ndarray:
    import numpy as np

    if name not in table.column_names:
        return np.full(table.num_rows, None, dtype=object)
    return np.asarray(table.column(name).to_pylist(), dtype=object)


@dataclass
class _Rows:
    """The manifest as numpy columns, and the dedup columns being filled."""

    key: np.ndarray
    path: np.ndarray
    split: np.ndarray
    status: np.ndarray
    pre: np.ndarray
    reason: np.ndarray
    sha: np.ndarray
    phash: np.ndarray
    hashed: np.ndarray
    area: np.ndarray
    label: np.ndarray
    cluster: np.ndarray
    dup_of: np.ndarray
    dup_kind: np.ndarray
    dup_distance: np.ndarray


def _restore_reasons(table: pa.Table, reason: np.ndarray) -> None:
    """Undo the reason an earlier run gave a row it rejected (its perceptual hash had failed).

    Such a row was ok (no reason) or fixable/fixed (reason = the first of verify's ``issues``).
    Duplicates kept their reason, so they need nothing.
    """
    if "pre_dedup_status" not in table.column_names:
        return
    pre = table.column("pre_dedup_status").to_pylist()
    status = table.column("status").to_pylist()
    issues: list[Any] = table.column("issues").to_pylist() if "issues" in table.column_names else [None] * len(pre)
    for i, (before, now) in enumerate(zip(pre, status)):
        if before is not None and now == "rejected":
            found = issues[i] or []
            reason[i] = found[0] if before != "ok" and found else None


def _load(table: pa.Table) -> _Rows:
    import numpy as np

    n = table.num_rows
    status, pre = _restored(table)
    phash, hashed = _optional(table, "phash", "int64")
    width, has_w = _optional(table, "width", "int64")
    height, has_h = _optional(table, "height", "int64")
    label, has_label = _optional(table, "label", "int64")
    label[~has_label] = -1
    reason = _strings(table, "reason")
    _restore_reasons(table, reason)
    return _Rows(
        key=_strings(table, "key"), path=_strings(table, "path"), split=_strings(table, "split"),
        status=status, pre=pre, reason=reason, sha=_strings(table, "sha256"), phash=phash, hashed=hashed,
        area=np.where(has_w & has_h, width * height, -1), label=label,
        cluster=np.full(n, -1, dtype=np.int64), dup_of=np.full(n, None, dtype=object),
        dup_kind=np.full(n, None, dtype=object), dup_distance=np.full(n, -1, dtype=np.int64),
    )


def _hash_missing(rows: _Rows, workers: int, progress: Callable[[int], None] | None) -> tuple[int, int]:
    """Perceptual-hash usable rows without a hash; failures become rejected rows. Returns (done, failed)."""
    import numpy as np

    from imgnet_tools.execute.params import ExecutorParams
    from imgnet_tools.execute.tasks import run_tasks
    from imgnet_tools.images.phash import HashTask, hash_batch

    usable = np.isin(rows.status, CANDIDATE_STATUSES)
    todo = np.flatnonzero(usable & ~rows.hashed)
    tasks = [HashTask(str(rows.path[i]), rows.sha[i] is None) for i in todo]
    batches = [tasks[s:s + HASH_BATCH] for s in range(0, len(tasks), HASH_BATCH)]
    failed = 0
    pos = 0
    for outcomes in run_tasks(hash_batch, batches, ExecutorParams(workers=min(workers, max(1, len(batches))))):
        for out in outcomes:
            i = todo[pos]
            pos += 1
            if out.phash is None:
                rows.pre[i], rows.status[i], rows.reason[i] = rows.status[i], "rejected", out.reason
                failed += 1
                continue
            rows.phash[i], rows.hashed[i] = out.phash, True
            if out.sha256 is not None:
                rows.sha[i] = out.sha256
            if rows.area[i] < 0 and out.width is not None and out.height is not None:
                rows.area[i] = out.width * out.height
        if progress is not None:
            progress(len(outcomes))
    return len(todo), failed


def _edges(rows: _Rows, cand: np.ndarray, threshold: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges (indices into ``cand``) linking equal sha256, equal phash and near phash rows."""
    import numpy as np

    from imgnet_tools.dedup.search import near_pairs

    left, right = [], []
    sha = rows.sha[cand]
    has_sha = np.flatnonzero(sha != None)
    if len(has_sha):
        _, first, inv = np.unique(sha[has_sha].astype(str), return_index=True, return_inverse=True)
        left.append(has_sha[first[inv]])
        right.append(has_sha)
    values, first, inv = np.unique(rows.phash[cand], return_index=True, return_inverse=True)
    left.append(first[inv])
    right.append(np.arange(len(cand)))
    i, j = near_pairs(values, threshold, threads=threads)
    left.append(first[i])
    right.append(first[j])
    return np.concatenate(left), np.concatenate(right)


def _cluster_ids(labels: np.ndarray, key_rank: np.ndarray) -> np.ndarray:
    """Number components with two or more rows 0, 1, ... by their smallest key; others -1."""
    import numpy as np

    sizes = np.bincount(labels, minlength=len(labels))
    order = np.argsort(key_rank, kind="stable")
    comp_in_key_order = labels[order]
    multi = sizes[comp_in_key_order] > 1
    uniq, first_pos = np.unique(comp_in_key_order[multi], return_index=True)
    ids = np.full(len(labels), -1, dtype=np.int64)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first_pos, kind="stable")] = np.arange(len(uniq))
    lookup = np.full(len(labels), -1, dtype=np.int64)
    lookup[uniq] = rank
    ids[:] = lookup[labels]
    return ids


def _mark_duplicates(rows: _Rows, cand: np.ndarray, cluster: np.ndarray, key_rank: np.ndarray,
                     split_code: np.ndarray, scope: str) -> None:
    """Apply the keep policy inside each keep group of each cluster."""
    import numpy as np

    inside = np.flatnonzero(cluster >= 0)
    if len(inside) == 0:
        return
    split_part = split_code[inside] if scope in ("class", "split") else np.zeros(len(inside), dtype=np.int64)
    label_part = rows.label[cand[inside]] if scope == "class" else np.zeros(len(inside), dtype=np.int64)
    order = np.lexsort((key_rank[inside], -rows.area[cand[inside]], label_part, split_part, cluster[inside]))
    idx = inside[order]
    g_cluster, g_split, g_label = cluster[idx], split_part[order], label_part[order]
    new_group = np.ones(len(idx), dtype=bool)
    new_group[1:] = (g_cluster[1:] != g_cluster[:-1]) | (g_split[1:] != g_split[:-1]) | (g_label[1:] != g_label[:-1])
    keeper = idx[np.maximum.accumulate(np.where(new_group, np.arange(len(idx)), 0))]
    dup = ~new_group
    rows_dup, rows_keep = cand[idx[dup]], cand[keeper[dup]]
    rows.pre[rows_dup] = rows.status[rows_dup]
    rows.status[rows_dup] = "duplicate"
    rows.dup_of[rows_dup] = rows.key[rows_keep]
    same_bytes = (rows.sha[rows_dup] == rows.sha[rows_keep]) & (rows.sha[rows_dup] != None)
    rows.dup_kind[rows_dup] = np.where(same_bytes, "exact", "near")
    xor = rows.phash[rows_dup].view(np.uint64) ^ rows.phash[rows_keep].view(np.uint64)
    rows.dup_distance[rows_dup] = np.bitwise_count(xor).astype(np.int64)


def _cross_groups(cluster: np.ndarray, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Mask of clustered rows whose cluster (or cluster and ``b``) holds two or more values of ``a``."""
    import numpy as np

    inside = cluster >= 0
    group = cluster if b is None else cluster * (int(b.max(initial=0)) + 1) + b
    pairs = np.unique(np.stack([group[inside], a[inside]], axis=1), axis=0)
    g, counts = np.unique(pairs[:, 0], return_counts=True)
    return inside & np.isin(group, g[counts > 1])


def _report(rows: _Rows, table_rows: np.ndarray, wnid: np.ndarray, path: Path, name: str) -> None:
    """Write the member rows ``table_rows`` of a report, sorted by cluster then key."""
    import numpy as np
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import write_table

    order = np.lexsort((rows.key[table_rows].astype(str), rows.cluster[table_rows]))
    sel = table_rows[order]
    data = {
        "cluster_id": pa.array(rows.cluster[sel], pa.int64()),
        "split": pa.array(rows.split[sel].tolist(), pa.string()),
        "key": pa.array(rows.key[sel].tolist(), pa.string()),
        "label": pa.array(np.where(rows.label[sel] >= 0, rows.label[sel], 0), pa.int32(), mask=rows.label[sel] < 0),
        "wnid": pa.array(wnid[sel].tolist(), pa.string()),
        "path": pa.array(rows.path[sel].tolist(), pa.string()),
        "status": pa.array(rows.status[sel].tolist(), pa.string()),
        "dup_of": pa.array(rows.dup_of[sel].tolist(), pa.string()),
        "sha256": pa.array(rows.sha[sel].tolist(), pa.string()),
        "phash": pa.array(rows.phash[sel], pa.int64()),
    }
    write_table(pa.table(data), path, name)


def _updated_table(table: pa.Table, rows: _Rows) -> pa.Table:
    """The manifest with the dedup columns (and restored/changed states) replaced or added."""
    import numpy as np
    import pyarrow as pa

    clustered = rows.cluster >= 0
    columns = {
        "status": pa.array(rows.status.tolist(), pa.string()),
        "reason": pa.array(rows.reason.tolist(), pa.string()),
        "sha256": pa.array(rows.sha.tolist(), pa.string()),
        "phash": pa.array(rows.phash, pa.int64(), mask=~rows.hashed),
        "cluster_id": pa.array(rows.cluster, pa.int64(), mask=~clustered),
        "dup_of": pa.array(rows.dup_of.tolist(), pa.string()),
        "dup_kind": pa.array(rows.dup_kind.tolist(), pa.string()),
        "dup_distance": pa.array(np.maximum(rows.dup_distance, 0), pa.int32(), mask=rows.dup_distance < 0),
        "pre_dedup_status": pa.array(rows.pre.tolist(), pa.string()),
    }
    for name, array in columns.items():
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, array)
        else:
            table = table.append_column(name, array)
    return table


def dedup(params: DedupParams, progress: Callable[[int], None] | None = None) -> DedupResult:
    """Run the dedup stage on ``params.manifest``; ``progress(n)`` is called as n images are hashed."""
    import numpy as np

    from imgnet_tools.dedup.search import components
    from imgnet_tools.manifest.atomic import atomic_write_text
    from imgnet_tools.manifest.parquet import read_table, write_table
    from imgnet_tools.manifest.schemas import format_version, validate_json

    table = read_table(params.manifest, "manifest")
    out_dir = params.out_dir()
    result = DedupResult(str(Path(params.manifest).resolve()), str(out_dir.resolve()), params.threshold,
                         params.scope, rows=table.num_rows)
    rows = _load(table)
    fingerprint = _fingerprint(table, rows.status)
    result.reused = int((np.isin(rows.status, CANDIDATE_STATUSES) & rows.hashed).sum())
    t0 = time.perf_counter()
    result.hashed, result.hash_failed = _hash_missing(rows, params.n_workers(), progress)
    result.hash_seconds = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    cand = np.flatnonzero(np.isin(rows.status, CANDIDATE_STATUSES) & rows.hashed)
    result.candidates = len(cand)
    key_rank = np.argsort(np.argsort(rows.key[cand].astype(str), kind="stable"), kind="stable")
    left, right = _edges(rows, cand, params.threshold, params.n_workers())
    cluster = _cluster_ids(components(len(cand), left, right), key_rank)
    rows.cluster[cand] = cluster
    _, split_code = np.unique(rows.split[cand].astype(str), return_inverse=True)
    _mark_duplicates(rows, cand, cluster, key_rank, split_code.astype(np.int64), params.scope)
    result.search_seconds = round(time.perf_counter() - t0, 3)

    labelled = np.where(rows.label[cand] >= 0, cluster, -1)
    conflicts = cand[_cross_groups(labelled, rows.label[cand], split_code.astype(np.int64))]
    leakage = cand[_cross_groups(cluster, split_code.astype(np.int64))]
    result.clusters = len(np.unique(cluster[cluster >= 0]))
    result.clustered_rows = int((cluster >= 0).sum())
    result.duplicates = int((rows.status == "duplicate").sum())
    result.exact_duplicates = int((rows.dup_kind == "exact").sum())
    result.near_duplicates = int((rows.dup_kind == "near").sum())
    result.label_conflict_clusters = len(np.unique(rows.cluster[conflicts]))
    result.leakage_clusters = len(np.unique(rows.cluster[leakage]))

    write_table(_updated_table(table, rows), params.manifest, "manifest")
    wnid = _strings(table, "wnid")
    _report(rows, conflicts, wnid, out_dir / CONFLICTS_FILE, "dedup_label_conflicts")
    _report(rows, leakage, wnid, out_dir / LEAKAGE_FILE, "dedup_split_leakage")
    result.reports = {"label_conflicts": str(out_dir / CONFLICTS_FILE), "split_leakage": str(out_dir / LEAKAGE_FILE)}
    doc = {"format_version": format_version("dedup"), "params": asdict(params), "fingerprint": fingerprint,
           "complete": result.hash_failed == 0, "result": result.to_dict()}
    validate_json(doc, "dedup", SUMMARY_FILE)
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(doc, indent=2) + "\n")
    return result


def count_to_hash(params: DedupParams) -> int:
    """How many rows a run would perceptual-hash (usable rows without a phash): a progress total."""
    import numpy as np
    import pyarrow.parquet as pq

    from imgnet_tools.manifest.parquet import read_table

    present = set(pq.read_schema(params.manifest).names) if Path(params.manifest).is_file() else set()
    wanted = [c for c in ("status", "pre_dedup_status", "phash") if c in present]
    table = read_table(params.manifest, "manifest", columns=wanted or None)
    status, _ = _restored(table)
    _, hashed = _optional(table, "phash", "int64")
    return int((np.isin(status, CANDIDATE_STATUSES) & ~hashed).sum())


def outputs_complete(params: DedupParams) -> bool:
    """True when dedup ran with these parameters on this manifest and a re-run would change nothing."""
    from imgnet_tools.errors import SchemaError
    from imgnet_tools.manifest.parquet import read_table

    summary = params.out_dir() / SUMMARY_FILE
    if not summary.is_file() or not Path(params.manifest).is_file():
        return False
    try:
        doc = json.loads(summary.read_text(encoding="utf-8"))
        table = read_table(params.manifest, "manifest")
    except (ValueError, SchemaError):
        return False
    same = {k: doc.get("params", {}).get(k) for k in ("threshold", "scope")} == {"threshold": params.threshold,
                                                                                 "scope": params.scope}
    status, _ = _restored(table)
    return bool(same and doc.get("complete") and doc.get("fingerprint") == _fingerprint(table, status))
