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

    def fingerprint(self, extra: Any) -> str:
        """sha256 of everything that decides this shard's bytes (``extra``: the transform)."""
        doc = {"stem": self.stem, "extra": extra, "fields": _SAMPLE_FIELDS, "samples": self.samples}  # tuples: JSON arrays
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


# Manifest columns that selection reads (the optional ones may be missing from a manifest).
SELECTED_COLUMNS = ("status", "key", "path", "source_path", "split", "label", "wnid", "width", "height", "sha256",
                    "bytes", "mtime_ns")


def select_table(table: "pa.Table") -> tuple[list[SampleIn], Counter[str]]:
    """Rows to shard (status ok/fixed) as :class:`SampleIn`, and the count of skipped rows by status.

    Works column by column (no row dicts); a missing optional column reads as null. Keys are
    checked for tar safety by Arrow's RE2 and only the unsafe ones are sanitized in Python.
    """
    import pyarrow.compute as pc

    names = set(table.column_names)
    n = table.num_rows
    col: dict[str, list[Any]] = {name: table.column(name).to_pylist() if name in names else [None] * n
                                 for name in SELECTED_COLUMNS}
    status, keys, paths, source_paths = col["status"], col["key"], col["path"], col["source_path"]
    safe = pc.match_substring_regex(table.column("key"), f"^{SAFE_KEY_PATTERN}$").to_pylist()
    safe_keys = [k if ok else sanitize_key(k) for k, ok in zip(keys, safe)]
    skipped: Counter[str] = Counter(s for s in status if s not in TAKEN)
    taken = [
        SampleIn(safe_keys[i], keys[i], paths[i], source_paths[i] or paths[i], col["split"][i], col["label"][i],
                 col["wnid"][i], col["width"][i], col["height"][i], col["sha256"][i], col["bytes"][i],
                 # size and mtime describe the file at path only for ok rows (fixed rows point at a copy)
                 col["mtime_ns"][i] if status[i] == "ok" else None)
        for i in range(n) if status[i] in TAKEN
    ]
    if len({s.key for s in taken}) != len(taken):
        dups = [k for k, c in Counter(s.key for s in taken).items() if c > 1]
        raise InputError(f"the manifest has {len(dups)} repeated keys (first: {dups[0]!r}); keys must be unique.")
    return taken, skipped


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


def selection_fingerprint(samples: Sequence[SampleIn]) -> str:
    """sha256 over the selected rows, independent of their order in the manifest."""
    ordered = sorted(samples, key=_BY_KEY)  # the key is unique; tuples dump as JSON arrays
    return hashlib.sha256(json.dumps([_SAMPLE_FIELDS, ordered]).encode()).hexdigest()
