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
from dataclasses import dataclass, fields
from typing import Any, Iterable, Sequence

from imgnet_tools.errors import InputError
from imgnet_tools.shards.keys import sanitize_key

TAKEN = ("ok", "fixed")
# Tar bytes besides the image data for one sample: three headers, a .cls block and a .json block
# (a sample's JSON is well under 1 KiB), plus the image's padding to a 512-byte block.
SAMPLE_OVERHEAD = 3 * 512 + 512 + 1024
ARCHIVE_OVERHEAD = 20 * 512
_SAFE_PREFIX = re.compile(r"[A-Za-z0-9_+=,@~-][A-Za-z0-9_.+=,@~-]*")


@dataclass(frozen=True)
class SampleIn:
    """One manifest row to shard (picklable; what a worker needs and nothing else)."""

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
        """Field values in declared order (cheaper than ``dataclasses.asdict`` for fingerprints)."""
        return list(self.__dict__.values())  # declared order; a frozen dataclass without slots


_SAMPLE_FIELDS = tuple(f.name for f in fields(SampleIn))


@dataclass(frozen=True)
class ShardPlan:
    """One shard: its split, index, file stem and samples in member order."""

    split: str
    index: int
    stem: str
    samples: tuple[SampleIn, ...]

    def fingerprint(self, extra: Any) -> str:
        """sha256 of everything that decides this shard's bytes (``extra``: the transform)."""
        doc = {"stem": self.stem, "extra": extra, "fields": _SAMPLE_FIELDS, "samples": [s.values() for s in self.samples]}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def select(rows: Iterable[dict[str, Any]]) -> tuple[list[SampleIn], Counter[str]]:
    """Rows to shard (status ok/fixed) as :class:`SampleIn`, and the count of skipped rows by status."""
    taken: list[SampleIn] = []
    skipped: Counter[str] = Counter()
    for row in rows:
        if row["status"] not in TAKEN:
            skipped[row["status"]] += 1
            continue
        taken.append(SampleIn(
            key=sanitize_key(row["key"]), source_key=row["key"], path=row["path"],
            source_path=row.get("source_path") or row["path"], split=row["split"],
            label=_opt_int(row.get("label")), wnid=row.get("wnid"), width=_opt_int(row.get("width")),
            height=_opt_int(row.get("height")), sha256=row.get("sha256"), bytes=_opt_int(row.get("bytes")),
            # size and mtime describe the file at path only for ok rows (fixed rows point at a copy)
            mtime_ns=_opt_int(row.get("mtime_ns")) if row["status"] == "ok" else None,
        ))
    keys = Counter(s.key for s in taken)
    dups = [k for k, n in keys.items() if n > 1]
    if dups:
        raise InputError(f"the manifest has {len(dups)} repeated keys (first: {dups[0]!r}); keys must be unique.")
    return taken, skipped


def order(samples: Sequence[SampleIn], seed: int, shuffle: bool) -> dict[str, list[SampleIn]]:
    """Samples per split (splits in name order): shuffled by ``seed``, or in manifest order."""
    splits: dict[str, list[SampleIn]] = {}
    for sample in samples:
        splits.setdefault(sample.split, []).append(sample)
    for name, items in splits.items():
        if shuffle:
            items.sort(key=lambda s: s.key)
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
    ordered = sorted((s.values() for s in samples), key=lambda v: v[0])  # v[0] is the unique key
    return hashlib.sha256(json.dumps([_SAMPLE_FIELDS, ordered]).encode()).hexdigest()
