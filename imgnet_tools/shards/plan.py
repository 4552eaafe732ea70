"""The shard plan: which manifest rows go into which shard, in which order.

Rows with status ``ok`` or ``fixed`` are taken; every other status is counted and skipped. The
manifest is read chunk by chunk (:func:`select_manifest`): the taken rows' sample columns go to a
selection file (Arrow IPC, ``DIR/_state/selection.arrow``) that workers read their samples from,
and the driver keeps only compact numpy columns of them (split, two 64-bit key hashes, size,
label: about 30 bytes a row), so planning ImageNet-21k's 14M rows needs a few hundred MB.

Within a split, rows are put in the order of a seeded 64-bit hash of their key (a seeded random
permutation that does not depend on the manifest's row order or on the machine), so every shard
mixes classes; ``--no-shuffle`` keeps the manifest order. A split of ``n`` rows becomes ``k``
shards whose sample counts differ by at most one: ``k`` is the smallest count that keeps every
shard within ``size`` samples and, when asked, within ``max_bytes`` (estimated from the
manifest's byte counts plus tar overhead).
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
    """What :func:`select_manifest` took: the selection file and compact columns of its rows."""

    path: str
    rows: int
    skipped: Counter[str]
    fingerprint: str
    split_code: "np.ndarray"   # int16 code into ``splits`` per row
    splits: list[str]
    shuffle_hash: "np.ndarray"  # uint64, seeded: the order within a split
    cost: "np.ndarray"          # int64 estimated tar bytes per sample
    label: "np.ndarray"         # int64, -1 for none
    wnid_of: dict[int, str | None]

    def samples(self, rows: Sequence[int] | "np.ndarray") -> list[SampleIn]:
        return read_samples(self.path, rows)


def select_manifest(manifest: str, target: str | os.PathLike[str], seed: int,
                    keep_source_paths: bool = False, chunk_rows: int = 65536) -> Selection:
    """Read ``manifest`` chunk by chunk, write the rows to shard to ``target`` (Arrow IPC, atomically)
    and return the compact columns the plan needs (see the module docstring).

    Raises :class:`InputError` when two taken rows share a key.
    """
    import numpy as np
    import pyarrow as pa

    from imgnet_tools.manifest.atomic import atomic_path
    from imgnet_tools.manifest.hashset import hash64
    from imgnet_tools.manifest.stream import iter_chunks

    skipped: Counter[str] = Counter()
    codes: dict[str, int] = {}
    wnid_of: dict[int, str | None] = {}
    parts: dict[str, list[Any]] = {"split": [], "key_hash": [], "shuffle": [], "cost": [], "label": []}
    rows = 0
    with atomic_path(target, fsync=False) as tmp:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, _sample_schema()) as writer:
            for chunk in iter_chunks(manifest, "manifest", chunk_rows, columns=list(SELECTED_COLUMNS)):
                table, seen = select_chunk(chunk, keep_source_paths)
                skipped.update(seen)
                if not table.num_rows:
                    continue
                writer.write_table(table)
                rows += table.num_rows
                keys = table.column("source_key").to_pylist()
                splits = table.column("split").to_pylist()
                for name in dict.fromkeys(splits):
                    codes.setdefault(name, len(codes))
                parts["split"].append(np.fromiter((codes[s] for s in splits), np.int16, len(splits)))
                parts["key_hash"].append(hash64(keys))
                parts["shuffle"].append(hash64(f"imgnet-shard:{seed}:{k}" for k in keys))
                size = np.asarray(table.column("bytes").fill_null(0).to_numpy(zero_copy_only=False), np.int64)
                parts["cost"].append(size + SAMPLE_OVERHEAD)
                labels = np.asarray(table.column("label").fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
                parts["label"].append(labels)
                for label, wnid in zip(labels.tolist(), table.column("wnid").to_pylist()):
                    if label >= 0:
                        wnid_of.setdefault(label, wnid)
    joined = {k: np.concatenate(v) if v else np.zeros(0, dtype=np.uint64 if "hash" in k or k == "shuffle" else np.int64)
              for k, v in parts.items()}
    selection = Selection(str(target), rows, skipped, "", joined["split"].astype(np.int16),
                          sorted(codes, key=codes.__getitem__), joined["shuffle"].astype(np.uint64),
                          joined["cost"].astype(np.int64), joined["label"].astype(np.int64), wnid_of)
    by_key = np.argsort(joined["key_hash"].astype(np.uint64), kind="stable")
    _refuse_repeated_keys(selection, joined["key_hash"].astype(np.uint64), by_key)
    selection.fingerprint = _fingerprint(selection.path, by_key)
    return selection


def _refuse_repeated_keys(selection: Selection, key_hash: "np.ndarray", by_key: "np.ndarray") -> None:
    """Equal key hashes are a repeated key (or, once in 10^19 pairs, a hash collision: checked)."""
    import numpy as np

    ordered = key_hash[by_key]
    same = np.flatnonzero(ordered[1:] == ordered[:-1])
    if not len(same):
        return
    pairs = by_key[np.unique(np.concatenate([same, same + 1]))]
    keys = [s.source_key for s in read_samples(selection.path, np.sort(pairs))]
    repeated = sorted(k for k, c in Counter(keys).items() if c > 1)
    if repeated:
        raise InputError(f"the manifest has {len(repeated)} repeated keys among the rows to shard (first: "
                         f"{repeated[0]!r}); keys must be unique: scan the sources again.")


def _fingerprint(path: str, by_key: "np.ndarray") -> str:
    """sha256 of the selected rows in key-hash order, column by column from Arrow's buffers (the
    manifest's row order does not matter; any change of a selected value does)."""
    import pyarrow as pa

    from imgnet_tools.manifest.stream import update_digest

    digest = hashlib.sha256(b"imgnet selection v3\0")
    table = _open(path)
    for start in range(0, len(by_key), 65536):
        update_digest(digest, table.take(pa.array(by_key[start:start + 65536])))
    return digest.hexdigest()


@functools.lru_cache(maxsize=2)
def _open_cached(path: str, identity: tuple[int, int, int]) -> "pa.Table":
    import pyarrow as pa

    return pa.ipc.open_file(pa.memory_map(path)).read_all()


def _open(path: str) -> "pa.Table":
    """The selection file, memory-mapped (pages are shared with every process that reads it)."""
    st = os.stat(path)
    return _open_cached(path, (st.st_size, st.st_mtime_ns, st.st_ino))


def read_samples(path: str, rows: Sequence[int] | "np.ndarray") -> list[SampleIn]:
    """Rows ``rows`` of a selection file as :class:`SampleIn`, in that order (what a worker runs on)."""
    import pyarrow as pa

    picked = _open(path).take(pa.array(rows, pa.int64()))
    columns = [picked.column(name).to_pylist() for name in SAMPLE_FIELDS]
    return list(map(tuple.__new__, repeat(SampleIn), zip(*columns)))  # SampleIn(*row), without its Python __new__


def iter_selected(selection: Selection, chunk: int = 65536) -> Iterator[list[SampleIn]]:
    """Every selected sample, in manifest order, a chunk at a time."""
    for start in range(0, selection.rows, chunk):
        yield read_samples(selection.path, range(start, min(selection.rows, start + chunk)))


# --- order and plan ---------------------------------------------------------------------------------------

def order(selection: Selection, shuffle: bool) -> dict[str, "np.ndarray"]:
    """Selection rows per split (splits in name order): by the seeded key hash, or in manifest order."""
    import numpy as np

    by_split: dict[str, np.ndarray] = {}
    for code, name in enumerate(selection.splits):
        rows = np.flatnonzero(selection.split_code == code)
        if shuffle:
            rows = rows[np.argsort(selection.shuffle_hash[rows], kind="stable")]
        by_split[name] = rows
    return {name: by_split[name] for name in sorted(by_split)}


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
