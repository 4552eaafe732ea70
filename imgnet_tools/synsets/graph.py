"""The WordNet noun graph as plain arrays: depths, path counts, descendants, primary parents.

Edges. ``parents`` are WordNet's is-a links (hypernyms, pointer ``@``): ImageNet's
``wordnet.is_a.txt`` holds exactly these (75,850 pairs; 1,422 nouns have several). Instance links
(``@i``, e.g. sun.n.01 is an instance of star.n.03) are kept apart in ``instance_parents``. The
*structure* edges used for depth, paths, descendants and the tree are the is-a parents, or, for a
synset that has none (7,725 proper nouns), its instance parents; so every noun reaches
entity.n.01 (n00001740), the single root, and depth 0 means entity.

Primary parent (for tree views): among a synset's structure parents, the one with the smallest
minimum depth, ties broken by the smallest wnid. Following primary parents from any synset is
therefore a shortest path to the root, and ``depth_min`` is that path's length.

All passes are iterative over a topological order (parents before children): no recursion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

from imgnet_tools.errors import InputError


def wnid_of(offset: int) -> str:
    """``n`` + 8-digit zero-padded offset (ImageNet's id for a WordNet 3.0 noun)."""
    return f"n{offset:08d}"


def structure_parents(
    offsets: Sequence[int], parents: Sequence[Sequence[int]], instance_parents: Sequence[Sequence[int]]
) -> list[list[int]]:
    """Structure parents as row indices: is-a parents, else instance parents (see module doc)."""
    row = {o: i for i, o in enumerate(offsets)}
    try:
        return [[row[p] for p in (ps or ips)] for ps, ips in zip(parents, instance_parents)]
    except KeyError as exc:
        raise InputError(f"synset table is not closed under parents: n{exc.args[0]:08d} is missing") from exc


def topological_order(struct: Sequence[Sequence[int]], children: Sequence[Sequence[int]]) -> list[int]:
    """Rows with every parent before its children (Kahn's algorithm); raises on a cycle."""
    indegree = [len(ps) for ps in struct]
    order = [i for i, d in enumerate(indegree) if d == 0]
    for i in order:  # the list grows while we walk it
        for c in children[i]:
            indegree[c] -= 1
            if indegree[c] == 0:
                order.append(c)
    if len(order) != len(struct):
        raise InputError("the synset graph has a cycle; WordNet's noun hierarchy never does")
    return order


@dataclass
class Graph:
    """Per-row graph facts, aligned with the input rows."""

    struct: list[list[int]]
    children: list[list[int]]
    depth_min: list[int]
    depth_max: list[int]
    num_paths: list[int]
    primary: list[int]  # -1 for a root
    num_descendants: list[int]

    @property
    def roots(self) -> list[int]:
        return [i for i, ps in enumerate(self.struct) if not ps]


def children_of(struct: Sequence[Sequence[int]]) -> list[list[int]]:
    """Child rows of every row (ascending, since rows are visited in order)."""
    children: list[list[int]] = [[] for _ in struct]
    for child, ps in enumerate(struct):
        for p in ps:
            children[p].append(child)
    return children


def _depths(struct: Sequence[Sequence[int]], order: Sequence[int], offsets: Sequence[int]) -> tuple[list[int], list[int], list[int], list[int]]:
    """depth_min, depth_max, number of paths to a root, primary parent; one pass in topo order."""
    n = len(struct)
    dmin, dmax, paths, primary = [0] * n, [0] * n, [1] * n, [-1] * n
    for i in order:
        ps = struct[i]
        if not ps:
            continue
        if len(ps) == 1:
            p = ps[0]
            dmin[i], dmax[i], paths[i], primary[i] = dmin[p] + 1, dmax[p] + 1, paths[p], p
            continue
        best = min(ps, key=lambda q: (dmin[q], offsets[q]))
        dmin[i], primary[i] = dmin[best] + 1, best
        dmax[i] = max(dmax[q] for q in ps) + 1
        paths[i] = sum(paths[q] for q in ps)
    return dmin, dmax, paths, primary


def _descendant_counts(struct: Sequence[Sequence[int]], order: Sequence[int]) -> list[int]:
    """Distinct descendants of every row, via each row's distinct ancestors (a DAG, not a tree).

    The total size of all ancestor sets is about nodes x mean depth (~1M for all nouns), so
    counting every (ancestor, row) pair once is cheap; a tree-style sum would double count the
    shared descendants below multi-parent synsets.
    """
    n = len(struct)
    anc: list[tuple[int, ...]] = [()] * n
    for i in order:
        ps = struct[i]
        if len(ps) == 1:
            anc[i] = anc[ps[0]] + (ps[0],)
        elif ps:
            anc[i] = tuple(sorted(set(chain(ps, *(anc[p] for p in ps)))))
    counts = [0] * n
    for a in chain.from_iterable(anc):
        counts[a] += 1
    return counts


def analyse(
    offsets: Sequence[int], parents: Sequence[Sequence[int]], instance_parents: Sequence[Sequence[int]]
) -> Graph:
    """Graph facts for a parent-closed set of synsets (every parent of a row is a row)."""
    struct = structure_parents(offsets, parents, instance_parents)
    children = children_of(struct)
    order = topological_order(struct, children)
    dmin, dmax, paths, primary = _depths(struct, order, offsets)
    return Graph(struct, children, dmin, dmax, paths, primary, _descendant_counts(struct, order))


def ancestor_closure(struct: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[int]:
    """``seeds`` plus all their structure ancestors, as sorted row indices."""
    keep = set(seeds)
    stack = list(keep)
    while stack:
        for p in struct[stack.pop()]:
            if p not in keep:
                keep.add(p)
                stack.append(p)
    return sorted(keep)


def is_a_descendants(parents_rows: Sequence[Sequence[int]], root: int) -> set[int]:
    """Rows below ``root`` through is-a links only (``root`` excluded)."""
    children = children_of(parents_rows)
    found: set[int] = set()
    stack = [root]
    while stack:
        for c in children[stack.pop()]:
            if c not in found:
                found.add(c)
                stack.append(c)
    return found
