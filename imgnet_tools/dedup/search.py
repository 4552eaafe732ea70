"""Near-duplicate search over many 64-bit hashes without comparing all pairs, and clustering.

What: :func:`near_pairs` returns every pair of hashes within Hamming distance ``k`` (exactly: no
pair is missed, none is invented), :func:`components` groups rows linked by pairs.

How (multi-index hashing, Norouzi et al. 2012): split the 64 bits into ``m`` blocks. Write
``k = m*r + a`` with ``0 <= a < m``. If two hashes are within ``k`` bits, then one of the first
``a+1`` blocks differs by at most ``r`` bits or one of the others by at most ``r-1`` (otherwise the
distance would be at least ``(a+1)(r+1) + (m-a-1)r = k+1``). With ``m = k+1`` this is the plain
pigeonhole rule "some block matches exactly". For each block we index the block values
(a dense CSR table when the block has <= 24 bits, else a sorted array), probe each hash's block
value XOR every flip mask of weight <= its radius, and verify each candidate with a popcount
of the 64-bit XOR (``np.bitwise_count``). :func:`plan` picks ``m`` to minimise the modelled cost
(probes plus candidates) for the number of hashes, so ``k = 8`` over 1.28M hashes uses three
21-bit blocks with radius 2 instead of nine 7-bit buckets holding ~10,000 hashes each.

Everything is vectorised numpy over chunks of queries; chunks run on a thread pool (numpy
releases the GIL in the heavy loops). No Python loop runs over pairs.
"""

from __future__ import annotations

import functools
import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

START_SLICE = 1 << 16  # block values whose start positions are found at once
DENSE_MAX_BITS = 24  # blocks up to this width are indexed by a dense table (2**24 int64 = 128 MiB)
TARGET_PROBES = 1 << 21  # probes (plus the rows they find, if hashes were spread) per chunk of queries
#: Rows found by a chunk's probes are verified this many at a time (about 80 bytes each while verified).
#: Real hashes are not spread evenly (flat or similar images share block values), so the rows a
#: chunk's probes find can be many times the modelled count; pieces keep memory bounded whatever
#: the data (a piece grows past this only by the rows of its last probe: one block value's rows).
CANDIDATES_PER_PIECE = 1 << 17


@dataclass(frozen=True)
class Block:
    """Bits ``[shift, shift + width)`` of the hash, searched with flip radius ``radius``."""

    shift: int
    width: int
    radius: int


def _ball(width: int, radius: int) -> int:
    return sum(math.comb(width, d) for d in range(radius + 1))


def _blocks(m: int, k: int) -> list[Block]:
    widths = [64 // m + (1 if b < 64 % m else 0) for b in range(m)]
    r, a = divmod(k, m)
    shifts = np.concatenate([[0], np.cumsum(widths)[:-1]])
    return [Block(int(s), w, r if b <= a else r - 1) for b, (s, w) in enumerate(zip(shifts, widths))]


def plan(n: int, k: int) -> list[Block]:
    """Blocks for searching ``n`` hashes at threshold ``k``, by a cost model assuming spread hashes."""
    if not 0 <= k < 64:
        raise ValueError(f"threshold must be in 0..63, got {k}")
    best: tuple[float, list[Block]] | None = None
    for m in range(1, min(k + 1, 16) + 1):
        blocks = _blocks(m, k)
        if any(b.width > 32 and b.radius > 0 for b in blocks):
            continue
        probes = sum(_ball(b.width, b.radius) for b in blocks if b.radius >= 0) * max(n, 1)
        candidates = sum(_ball(b.width, b.radius) * n / 2.0 ** b.width for b in blocks if b.radius >= 0) * n
        cost = probes * (1.0 if all(b.width <= DENSE_MAX_BITS for b in blocks) else 4.0) + 2.0 * candidates
        if best is None or cost < best[0]:
            best = (cost, blocks)
    assert best is not None  # m = k + 1 always qualifies
    return best[1]


def _flip_masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit mask with at most ``radius`` bits set (0 first)."""
    masks = [0]
    for d in range(1, radius + 1):
        masks.extend(sum(1 << p for p in combo) for combo in itertools.combinations(range(width), d))
    return np.asarray(masks, dtype=np.uint64)


class _BlockIndex:
    """Rows grouped by one block's value: ``order[start[v]:start[v+1]]`` hold value ``v``.

    Dense blocks also keep an occupancy bitmap (2**24 bits = 2 MiB at most, cache-resident), so
    the many probes that hit an empty value never touch the large ``start`` table.
    """

    def __init__(self, h: np.ndarray, shift: int, width: int) -> None:
        small = index_type(len(h))
        values = _block_values(h, shift, width)
        self.order = np.argsort(values, kind="stable").astype(small)
        self.dense = width <= DENSE_MAX_BITS
        ordered = values[self.order]
        del values
        if self.dense:
            # start[v] = rows with a value below v, a slice of v at a time: no 2**width table of 8-byte counts
            self.start = np.empty((1 << width) + 1, dtype=small)
            for v in range(0, (1 << width) + 1, START_SLICE):
                wanted = np.arange(v, min(v + START_SLICE, (1 << width) + 1), dtype=np.uint32)
                self.start[v:v + len(wanted)] = np.searchsorted(ordered, wanted, side="left")
            self.occupied = np.packbits(np.greater(self.start[1:], self.start[:-1]), bitorder="little")
        else:
            self.sorted = ordered

    def lookup(self, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indices of probes that match some row, first position in ``order``, number of rows)."""
        if self.dense:
            byte = self.occupied[probes >> 3]
            hit = np.flatnonzero((byte >> (probes & 7).astype(np.uint8)) & 1)
            p = probes[hit]
            lo = self.start[p]
            return hit, lo.astype(np.int64), (self.start[p + 1] - lo).astype(np.int64)
        lo = np.searchsorted(self.sorted, probes, side="left")
        count = np.searchsorted(self.sorted, probes, side="right") - lo
        hit = np.flatnonzero(count)
        return hit, lo[hit].astype(np.int64), count[hit].astype(np.int64)


def index_type(n: int) -> type[np.signedinteger]:
    """The narrowest integer type for positions into ``n`` rows (4 bytes up to 2**31 rows)."""
    return np.int32 if n < 2**31 else np.int64


VALUE_SLICE = 1 << 20  # hashes whose block values are taken at once


def _block_values(h: np.ndarray, shift: int, width: int) -> np.ndarray:
    """Bits ``[shift, shift + width)`` of every hash, as 4-byte values when they fit, a slice at a
    time: no 8-byte temporary the size of ``h`` while an index is built (10 MiB at 1.28M hashes)."""
    values = np.empty(len(h), dtype=np.uint32 if width <= 32 else np.uint64)
    mask = np.uint64((1 << width) - 1)
    for start in range(0, len(h), VALUE_SLICE):
        values[start:start + VALUE_SLICE] = (h[start:start + VALUE_SLICE] >> np.uint64(shift)) & mask
    return values


def _expand(lo: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(lo[i], lo[i] + count[i])`` for every i, vectorised."""
    total = int(count.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    ends = np.cumsum(count)
    return np.arange(total, dtype=np.int64) + np.repeat(lo - (ends - count), count)


def _search_chunk(h: np.ndarray, block: Block, index: _BlockIndex, masks: np.ndarray,
                  queries: np.ndarray, k: int) -> np.ndarray:
    """Verified pairs (as ``i * n + j`` with ``i < j``) for ``queries`` against one block.

    Each pair is generated once: a flip mask links block values ``v`` and ``v ^ mask``, so only
    the side with the smaller value probes (``v ^ mask > v``); equal values (mask 0) keep ``i < j``.
    The rows the probes find are verified :data:`CANDIDATES_PER_PIECE` at a time (see there).
    """
    vtype = np.uint32 if block.width <= 32 else np.uint64
    values = ((h[queries] >> np.uint64(block.shift)) & np.uint64((1 << block.width) - 1)).astype(vtype)
    probes = values[:, None] ^ masks.astype(vtype)[None, :]
    upward = probes > values[:, None]
    upward[:, 0] = True  # mask 0: same value, filtered by index below
    flat = np.flatnonzero(upward)  # probe p is (query p // len(masks), mask p % len(masks))
    found, lo, count = index.lookup(probes.ravel()[flat])
    del values, probes, upward
    flat = flat[found]
    query, flipped = queries[flat // len(masks)], flat % len(masks) != 0
    del flat, found
    ends = np.cumsum(count)
    # pieces of consecutive probes finding about CANDIDATES_PER_PIECE rows together
    cuts = np.unique(np.searchsorted(ends, np.arange(0, int(ends[-1]) if len(ends) else 0, CANDIDATES_PER_PIECE),
                                     side="right"))
    bounds = [*cuts.tolist(), len(ends)] if len(cuts) and cuts[0] == 0 else [0, *cuts.tolist(), len(ends)]
    pieces = [_verify(h, index, query[a:b], flipped[a:b], lo[a:b], count[a:b], k)
              for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    return np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int64)


def _verify(h: np.ndarray, index: _BlockIndex, query: np.ndarray, flipped: np.ndarray, lo: np.ndarray,
            count: np.ndarray, k: int) -> np.ndarray:
    """Pairs within ``k`` bits among the rows probe ``p`` found (``order[lo[p]:lo[p] + count[p]]``)
    and its query row ``query[p]`` (``flipped``: found by a flip mask, else by the same value)."""
    cand = index.order[_expand(lo, count)]
    qi = np.repeat(query, count)
    keep = np.repeat(flipped, count) | (cand > qi)
    qi, cand = qi[keep], cand[keep]
    close = np.bitwise_count(h[qi] ^ h[cand]) <= k
    qi, cand = qi[close].astype(np.int64), cand[close].astype(np.int64)
    n = np.int64(len(h))
    return np.minimum(qi, cand) * n + np.maximum(qi, cand)


def near_pairs(hashes: np.ndarray, k: int, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs ``(i, j)``, ``i < j``, with ``popcount(hashes[i] ^ hashes[j]) <= k``.

    ``hashes`` are 64-bit (``int64`` or ``uint64``); equal hashes count as distance 0. The pairs
    come back sorted by ``(i, j)``, each once.
    """
    h = np.ascontiguousarray(np.asarray(hashes).view(np.uint64) if np.asarray(hashes).dtype == np.int64
                             else np.asarray(hashes, dtype=np.uint64))
    n = len(h)
    if n < 2:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    found: list[np.ndarray] = []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for block in plan(n, k):  # one block's index at a time: it is freed before the next is built
            if block.radius < 0:
                continue
            masks = _flip_masks(block.width, block.radius)
            index = _BlockIndex(h, block.shift, block.width)
            # a chunk's arrays hold its probes and the rows they find, about n / 2**width rows a probe
            # (3.4 for a 22-bit block of 14.2M hashes): both bound its size, so memory does not grow with n
            step = max(1, int(TARGET_PROBES // (len(masks) * (1.0 + n / 2.0 ** block.width))))
            search = functools.partial(_search_chunk, h, block, index, masks, k=k)
            found.extend(pool.map(lambda start: search(np.arange(start, min(n, start + step), dtype=np.int64)),  # noqa: B023
                                  range(0, n, step)))  # (consumed before the loop goes on)
            del index
    codes = np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)
    return codes // n, codes % n


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``n`` nodes given edges ``left[e] -- right[e]``.

    A vectorised union-find: every edge hooks the larger root under the smaller one, then
    pointer jumping compresses paths, until no edge joins two roots. The label of a component is
    its smallest node index.
    """
    parent = np.arange(n, dtype=np.int64)
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    while True:
        a, b = parent[left], parent[right]
        differ = a != b
        if not differ.any():
            return parent
        lo, hi = np.minimum(a[differ], b[differ]), np.maximum(a[differ], b[differ])
        np.minimum.at(parent, hi, lo)
        while True:  # pointer jumping until every node points at a root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
