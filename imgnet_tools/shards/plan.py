"""The shard plan: which manifest rows go into which shard, in which order.

Rows with status ``ok`` or ``fixed`` are taken; every other status is counted and skipped. Within a
split, rows are sorted by key (so the input row order does not matter) and shuffled with a
seeded :class:`random.Random` (stable across Python versions and machines), so every shard mixes
classes. A split of ``n`` rows becomes ``k`` shards whose sample counts differ by at most one:
``k`` is the smallest count that keeps every shard within ``size`` samples and, when asked,
within ``max_bytes`` (estimated from the manifest's byte counts plus tar overhead).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

from imgnet_tools.errors import InputError
from imgnet_tools.shards.keys import SAFE_KEY_PATTERN, sanitize_key

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

TAKEN = ("ok", "fixed")
# Tar bytes besides the image data for one sample: three headers, a .cls block and a .json block
# (a sample's JSON is well under 1 KiB), plus the image's padding to a 512-byte block.
SAMPLE_OVERHEAD = 3 * 512 + 512 + 1024
ARCHIVE_OVERHEAD = 20 * 512
_SAFE_PREFIX = re.compile(r"[A-Za-z0-9_+=,@~-][A-Za-z0-9_.+=,@~-]*")


class SampleIn(NamedTuple):
    """One manifest row to shard (what a worker needs and nothing else).

    A named tuple: a shard plan holds a thousand of these and ImageNet has a thousand plans, so
    building, sorting and pickling them is on the path before the first shard is written.
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


_SAMPLE_FIELDS = SampleIn._fields
_BY_KEY = itemgetter(0)  # SampleIn.key


@dataclass(frozen=True)
class ShardPlan:
    """One shard: its split, index, file stem and samples in member order."""

    split: str
    index: int
    stem: str
    samples: tuple[SampleIn, ...]

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with the samples as plain tuples (a named tuple pickles through a Python-level
        ``__getnewargs__`` per sample: 3x slower, and every task is pickled on its way to a worker)."""
        return _plan_from_tuples, (self.split, self.index, self.stem, list(map(tuple, self.samples)))

    def fingerprint(self, extra: Any) -> str:
        """sha256 of everything that decides this shard's bytes (``extra``: the transform)."""
        doc = {"stem": self.stem, "extra": extra, "fields": _SAMPLE_FIELDS, "samples": self.samples}  # tuples: JSON arrays
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _plan_from_tuples(split: str, index: int, stem: str, rows: list[tuple[Any, ...]]) -> ShardPlan:
    return ShardPlan(split, index, stem, tuple(map(tuple.__new__, repeat(SampleIn), rows)))


# Manifest columns that selection reads (the optional ones may be missing from a manifest).
SELECTED_COLUMNS = ("status", "key", "path", "source_path", "split", "label", "wnid", "width", "height", "sha256",
                    "bytes", "mtime_ns")
_STRING_FIELDS = frozenset(("key", "path", "source_path", "split", "wnid", "sha256"))


class Selection(NamedTuple):
    """What :func:`select_table` takes from a manifest."""

    samples: list[SampleIn]  # status ok/fixed, in manifest order
    skipped: Counter[str]  # the other rows, counted by status
    fingerprint: str  # sha256 of the selected rows' values, whatever their order in the manifest


def select_table(table: "pa.Table") -> Selection:
    """The rows to shard (status ok/fixed) as :class:`SampleIn`, the skipped rows counted by
    status, and the selection's fingerprint.

    Works column by column in Arrow (no row dicts): a missing optional column reads as null, keys
    are checked for tar safety by Arrow's RE2 and only the unsafe ones are sanitized in Python.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    status = table.column("status")
    taken_mask = pc.is_in(status, value_set=pa.array(TAKEN))
    skipped: Counter[str] = Counter(pc.filter(status, pc.invert(taken_mask)).to_pylist())
    taken = table.filter(taken_mask)
    n = taken.num_rows

    def column(name: str) -> "pa.Array":
        kind = pa.string() if name in _STRING_FIELDS else pa.int64()
        if name not in taken.column_names:
            return pa.nulls(n, kind)
        return taken.column(name).combine_chunks().cast(kind)

    cols = {name: column(name) for name in _SOURCE_FIELDS}
    cols["source_path"] = pc.coalesce(cols["source_path"], cols["path"])
    # size and mtime describe the file at path only for ok rows (fixed rows point at a copy)
    is_ok = pc.equal(taken.column("status").combine_chunks(), "ok")
    cols["mtime_ns"] = pc.if_else(is_ok, cols["mtime_ns"], pa.scalar(None, pa.int64()))
    values = {name: array.to_pylist() for name, array in cols.items()}
    keys = values["key"]
    if len(set(keys)) != n:
        dups = [k for k, c in Counter(keys).items() if c > 1]
        raise InputError(f"the manifest has {len(dups)} repeated keys (first: {dups[0]!r}); keys must be unique.")
    safe = pc.match_substring_regex(cols["key"], f"^{SAFE_KEY_PATTERN}$").to_pylist()
    safe_keys = [k if ok else sanitize_key(k) for k, ok in zip(keys, safe)]
    rows = zip(safe_keys, *(values[name] for name in _SOURCE_FIELDS))
    samples = list(map(tuple.__new__, repeat(SampleIn), rows))  # SampleIn(*row), without its Python __new__
    return Selection(samples, skipped, _fingerprint(cols))


# SampleIn's fields that come from manifest columns (all but the first: the sanitized key).
_SOURCE_FIELDS = ("key", "path", "source_path", "split", "label", "wnid", "width", "height", "sha256", "bytes",
                  "mtime_ns")
assert _SAMPLE_FIELDS[1:] == ("source_key", *_SOURCE_FIELDS[1:])


def _fingerprint(cols: dict[str, "pa.Array"]) -> str:
    """sha256 over the selected rows sorted by key, hashed column by column from Arrow's buffers.

    Each column is encoded without ambiguity: its name, a byte per row for null or not, then
    int64 values (nulls as 0), or for strings int64 byte lengths and the UTF-8 bytes of all values
    in a row (nulls as empty); integers in the machine's byte order, little-endian on x86 and ARM. So two selections have the same fingerprint exactly
    when they hold the same rows, in whatever order the manifest lists them (about 20x faster
    than JSON-encoding the rows in Python).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    by_key = pc.sort_indices(cols["key"])
    digest = hashlib.sha256(b"imgnet selection v2\0")
    for name, array in cols.items():
        array = array.take(by_key)
        digest.update(name.encode() + b"\0")
        digest.update(_fixed_bytes(pc.is_valid(array).cast(pa.uint8())))
        if pa.types.is_string(array.type):
            filled = pc.fill_null(array, "")
            digest.update(_fixed_bytes(pc.binary_length(filled).cast(pa.int64())))
            digest.update(_string_bytes(filled))
        else:
            digest.update(_fixed_bytes(pc.fill_null(array, 0)))
    return digest.hexdigest()


def _fixed_bytes(array: "pa.Array") -> memoryview:
    """The values of a fixed-width array without nulls, as bytes (in the machine's byte order)."""
    width = array.type.bit_width // 8
    data = array.buffers()[1]
    return memoryview(data)[array.offset * width:(array.offset + len(array)) * width] if data else memoryview(b"")


def _string_bytes(array: "pa.Array") -> memoryview:
    """The UTF-8 bytes of all values of a string array without nulls, one after the other."""
    _, offsets, data = array.buffers()
    if not len(array) or data is None:
        return memoryview(b"")
    bounds = memoryview(offsets).cast("i")
    return memoryview(data)[bounds[array.offset]:bounds[array.offset + len(array)]]


def order(samples: Sequence[SampleIn], seed: int, shuffle: bool) -> dict[str, list[SampleIn]]:
    """Samples per split (splits in name order): shuffled by ``seed``, or in manifest order."""
    splits: dict[str, list[SampleIn]] = {}
    for sample in samples:
        splits.setdefault(sample.split, []).append(sample)
    for name, items in splits.items():
        if shuffle:
            items.sort(key=_BY_KEY)
            random.Random(f"imgnet-shard:{seed}:{name}").shuffle(items)
    return {name: splits[name] for name in sorted(splits)}


def even_bounds(n: int, k: int) -> list[tuple[int, int]]:
    """``k`` contiguous ranges over ``n`` items whose lengths differ by at most one (longer first)."""
    base, extra = divmod(n, k)
    bounds, start = [], 0
    for i in range(k):
        end = start + base + (1 if i < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def sample_cost(sample: SampleIn) -> int:
    """Estimated tar bytes of one sample."""
    return (sample.bytes or 0) + SAMPLE_OVERHEAD


def shard_count(samples: Sequence[SampleIn], size: int, max_bytes: int | None) -> int:
    """Smallest shard count with at most ``size`` samples and (estimated) ``max_bytes`` per shard."""
    n = len(samples)
    k = math.ceil(n / size)
    if max_bytes is None or n == 0:
        return k
    costs = [sample_cost(s) for s in samples]
    budget = max_bytes - ARCHIVE_OVERHEAD
    if max(costs) > budget:
        raise InputError(
            f"--max-bytes {max_bytes} is smaller than one sample ({max(costs) + ARCHIVE_OVERHEAD} bytes with tar "
            "overhead); raise --max-bytes."
        )
    prefix = [0]
    for cost in costs:
        prefix.append(prefix[-1] + cost)
    k = max(k, math.ceil(prefix[-1] / budget))
    while any(prefix[b] - prefix[a] > budget for a, b in even_bounds(n, k)):
        k += 1
    return k


def plan_shards(by_split: dict[str, list[SampleIn]], size: int, max_bytes: int | None, prefix: str) -> list[ShardPlan]:
    """Cut every split into equal shards named ``{prefix}-{index:06d}`` (prefix may use ``{split}``)."""
    if len(by_split) > 1 and "{split}" not in prefix:
        raise InputError(f"--prefix {prefix!r} must contain {{split}}: the manifest has splits {sorted(by_split)}.")
    plans = []
    for split, samples in by_split.items():
        stem_prefix = prefix.replace("{split}", split)
        if not _SAFE_PREFIX.fullmatch(stem_prefix):
            raise InputError(f"shard prefix {stem_prefix!r} is not a safe file name; use letters, digits and _.+=,@~-.")
        k = shard_count(samples, size, max_bytes)
        for index, (a, b) in enumerate(even_bounds(len(samples), k)):
            plans.append(ShardPlan(split, index, f"{stem_prefix}-{index:06d}", tuple(samples[a:b])))
    return plans
