"""Multi-index hashing search and the vectorised union-find, against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgnet_tools.dedup.search import components, near_pairs, plan


def _brute(hashes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    h = hashes.view(np.uint64)
    i, j = np.triu_indices(len(h), k=1)
    close = np.bitwise_count(h[i] ^ h[j]) <= k
    return i[close], j[close]


def _with_planted_neighbours(n: int, k: int, seed: int) -> np.ndarray:
    """Random hashes where a third are copies of others with 0..k+2 bits flipped (some just outside)."""
    rng = np.random.default_rng(seed)
    h = rng.integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64).view(np.uint64)
    m = n // 3
    src = rng.integers(0, n - m, size=m)
    flipped = h[src].copy()
    for row, d in enumerate(rng.integers(0, k + 3, size=m)):
        for bit in rng.choice(64, size=d, replace=False):
            flipped[row] ^= np.uint64(1) << np.uint64(bit)
    h[n - m:] = flipped
    return h.view(np.int64)


@pytest.mark.parametrize("k", [0, 1, 3, 6, 8, 12, 20])
def test_near_pairs_equal_brute_force(k: int) -> None:
    hashes = _with_planted_neighbours(2400, k, seed=k)
    i, j = near_pairs(hashes, k, threads=2)
    bi, bj = _brute(hashes, k)
    assert len(bi) > 200  # the planted neighbours are there to be found
    assert np.array_equal(i, bi) and np.array_equal(j, bj)


@pytest.mark.parametrize("piece", [1, 7, 64])
def test_skewed_hashes_verified_in_small_pieces_equal_brute_force(monkeypatch: pytest.MonkeyPatch, piece: int) -> None:
    """Hashes crowded into few block values (like real flat images) find many rows a probe; verified
    a few rows at a time (pieces ending inside and between probes), the pairs are still exactly all."""
    import imgnet_tools.dedup.search as search

    rng = np.random.default_rng(piece)
    crowded = rng.integers(0, 16, size=1500, dtype=np.int64) * 0x0101_0101  # a handful of low bits set, many equal
    hashes = np.concatenate([crowded, _with_planted_neighbours(900, 8, seed=piece)])
    monkeypatch.setattr(search, "CANDIDATES_PER_PIECE", piece)
    i, j = near_pairs(hashes, 8, threads=2)
    bi, bj = _brute(hashes, 8)
    assert len(bi) > 10_000
    assert np.array_equal(i, bi) and np.array_equal(j, bj)


def test_equal_hashes_are_distance_zero_pairs() -> None:
    hashes = np.array([5, 5, 5, -1, 7], dtype=np.int64)
    i, j = near_pairs(hashes, 0)
    assert list(zip(i.tolist(), j.tolist())) == [(0, 1), (0, 2), (1, 2)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=0, max_size=40),
       st.integers(min_value=0, max_value=24))
def test_near_pairs_property(values: list[int], k: int) -> None:
    hashes = np.array(values, dtype=np.int64)
    # Add close neighbours so that small k has something to find.
    hashes = np.concatenate([hashes, hashes ^ np.int64(3)])
    i, j = near_pairs(hashes, k)
    bi, bj = _brute(hashes, k)
    assert np.array_equal(i, bi) and np.array_equal(j, bj)


@pytest.mark.parametrize("n", [10, 10_000, 1_280_000, 50_000_000])
@pytest.mark.parametrize("k", range(25))
def test_plan_never_misses_a_pair(n: int, k: int) -> None:
    blocks = plan(n, k)
    assert sum(b.width for b in blocks) == 64
    assert [b.shift for b in blocks] == list(np.cumsum([0] + [b.width for b in blocks[:-1]]))
    # Pigeonhole: a pair no block finds differs by >= radius+1 bits in every block, so > k bits.
    assert sum(b.radius + 1 for b in blocks) == k + 1


def test_plan_for_imagenet_size_uses_few_wide_blocks() -> None:
    blocks = plan(1_280_000, 8)
    assert len(blocks) == 3 and all(b.radius == 2 for b in blocks)


def test_threshold_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        plan(10, 64)


def _python_union_find(n: int, edges: list[tuple[int, int]]) -> list[int]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(x) for x in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_components_match_a_plain_union_find(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 500
    left, right = rng.integers(0, n, size=300), rng.integers(0, n, size=300)
    # A long chain too: the worst case for label propagation.
    chain = np.arange(100, 199)
    left, right = np.concatenate([left, chain]), np.concatenate([right, chain + 1])
    labels = components(n, left, right)
    expected = _python_union_find(n, list(zip(left.tolist(), right.tolist())))
    assert labels.tolist() == expected  # both label a component by its smallest node


def test_components_without_edges_are_singletons() -> None:
    assert components(4, np.array([], dtype=np.int64), np.array([], dtype=np.int64)).tolist() == [0, 1, 2, 3]


def test_equal_value_grouping_matches_np_unique():
    """_same_phash and _same_sha group equal values as np.unique would: the same distinct values, the
    first occurrence of each, and every repeated row linked to that first occurrence (runs of 2..50)."""
    from imgnet_tools.dedup.run import _Columns, _same_phash, _same_sha

    rng = np.random.default_rng(7)
    n = 20_000
    base = rng.integers(0, 2**63, size=3_000, dtype=np.int64).astype(np.uint64)
    phash = base[rng.integers(0, len(base), size=n)]  # many runs, some long
    phash[::97] = rng.integers(0, 2**63, size=len(phash[::97]), dtype=np.int64).astype(np.uint64)
    sha_hi = phash.copy()
    sha_lo = phash ^ np.uint64(12345)
    sha_lo[::5] += np.uint64(1)  # same hi, different lo: not the same digest
    has_sha = rng.random(n) > 0.1
    cols = _Columns(np.ones(n, bool), phash, sha_hi, sha_lo, has_sha, np.zeros(n, np.int32), np.zeros(n, np.int32),
                    np.zeros(n, np.int16), ["train"])
    cand = np.flatnonzero(rng.random(n) > 0.2).astype(np.int32)

    values, first, left, right = _same_phash(cols, cand)
    want_values, want_first, inverse = np.unique(phash[cand], return_index=True, return_inverse=True)
    np.testing.assert_array_equal(values, want_values)
    np.testing.assert_array_equal(first, want_first)
    want_left = want_first[inverse]
    linked = np.flatnonzero(want_left != np.arange(len(cand)))
    assert sorted(zip(left.tolist(), right.tolist())) == sorted(zip(want_left[linked].tolist(), linked.tolist()))

    left, right = _same_sha(cols, cand)
    got = sorted(zip(left.tolist(), right.tolist()))
    expected = []
    firsts: dict[tuple[int, int], int] = {}
    for position, row in enumerate(cand.tolist()):
        if not has_sha[row]:
            continue
        digest = (int(sha_hi[row]), int(sha_lo[row]))
        if digest in firsts:
            expected.append((firsts[digest], position))
        else:
            firsts[digest] = position
    assert got == sorted(expected)
    assert len(expected) > 1000  # the data really has repeats
