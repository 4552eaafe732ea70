"""The ILSVRC 2010-2011 hierarchical cost: height of the lowest common ancestor in the synset DAG.

The graph is the one ``imgnet synsets build`` writes: ``synsets.parquet`` (its ``parents``, or for
a synset without is-a parents its ``instance_parents``: the structure edges of
:mod:`imgnet_tools.synsets.graph`), or ImageNet's own ``wordnet.is_a.txt`` (``parent child`` lines).

Only the classes and their ancestors count (ILSVRC's hierarchy was exactly that sub-DAG), so a
build of all of WordNet gives the same costs as a ``--wnids`` build. The *height* of a node is the
length of the longest downward path from it to a leaf of that sub-DAG (leaf classes have height
0). The lowest common ancestor of two classes is, among the synsets that are ancestors of both
(a class counts as its own ancestor), the one of least height; where several paths lead to the
root, every path is considered. A right guess costs 0; no guess at all costs :attr:`max_cost`, the
height of the root.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from imgnet_tools.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

SYNSETS_FILE = "synsets.parquet"
IS_A_FILE = "wordnet.is_a.txt"


def read_parents(path: str | Path) -> dict[str, list[str]]:
    """wnid -> structure parents, from a synsets build folder, its ``synsets.parquet`` or an is-a file."""
    path = Path(path)
    if path.is_dir():
        if (path / SYNSETS_FILE).is_file():
            path = path / SYNSETS_FILE
        elif (path / IS_A_FILE).is_file():
            path = path / IS_A_FILE
        else:
            raise InputError(f"{path} holds neither {SYNSETS_FILE} nor {IS_A_FILE}; pass the --out folder of "
                             "`imgnet synsets build` or one of those files.")
    if not path.is_file():
        raise InputError(f"{path} does not exist; pass the --out folder of `imgnet synsets build`.")
    if path.suffix == ".parquet":
        from imgnet_tools.synsets.formats import read_synsets

        table = read_synsets(path, columns=["wnid", "parents", "instance_parents"])
        return {w: list(p or ip) for w, p, ip in zip(table.column("wnid").to_pylist(), table.column("parents").to_pylist(),
                                                     table.column("instance_parents").to_pylist(), strict=True)}
    from imgnet_tools.synsets.formats import read_is_a

    parents: dict[str, list[str]] = {}
    for parent, child in read_is_a(path):
        parents.setdefault(child, []).append(parent)
        parents.setdefault(parent, [])
    return parents


@dataclass
class Hierarchy:
    """LCA heights between the classes ``wnids`` (index order), over their ancestors' sub-DAG."""

    wnids: tuple[str, ...]
    ancestors: list[dict[str, int]]  # per class: ancestor wnid -> its height
    max_cost: int
    _cache: dict[int, int] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, parents: dict[str, list[str]], wnids: Sequence[str], source: str = "the synset graph") -> "Hierarchy":
        """The hierarchy of classes ``wnids``; every class must be a node of ``parents``."""
        missing = [w for w in wnids if w not in parents]
        if missing:
            raise InputError(f"{len(missing)} class(es) are not in {source} (first: {', '.join(missing[:5])}); "
                             "build it with `imgnet synsets build --wnids CLASSES` or `--scope all`.")
        closure = _closure(parents, wnids)
        height = _heights(parents, closure)
        ancestors = [{a: height[a] for a in _ancestors(parents, w)} for w in wnids]
        return cls(tuple(wnids), ancestors, max(height.values(), default=0))

    def lca_height(self, a: int, b: int) -> int:
        """Height of the lowest common ancestor of classes ``a`` and ``b`` (0 when a == b)."""
        if a == b:
            return 0
        key = a * len(self.wnids) + b
        found = self._cache.get(key)
        if found is None:
            ours, theirs = self.ancestors[a], self.ancestors[b]
            common = [h for node, h in ours.items() if node in theirs]
            found = min(common) if common else self.max_cost
            self._cache[key] = found
        return found

    def cost(self, guesses: "np.ndarray", truth: "np.ndarray") -> "np.ndarray":
        """LCA height of each (guess, truth) pair; guesses outside the class list cost ``max_cost``."""
        import numpy as np

        n = len(self.wnids)
        valid = (guesses >= 0) & (guesses < n)
        codes = np.where(valid, guesses * n + truth, -1)
        unique, inverse = np.unique(codes, return_inverse=True)
        values = np.array([self.max_cost if c < 0 else self.lca_height(int(c) // n, int(c) % n) for c in unique],
                          dtype=np.int64)
        return np.asarray(values[inverse.reshape(-1)])


def _ancestors(parents: dict[str, list[str]], wnid: str) -> set[str]:
    """``wnid`` and every synset above it (iterative; WordNet nouns reach depth 19)."""
    seen = {wnid}
    stack = [wnid]
    while stack:
        for p in parents.get(stack.pop(), ()):
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


def _closure(parents: dict[str, list[str]], wnids: Sequence[str]) -> set[str]:
    nodes: set[str] = set()
    for w in wnids:
        nodes |= _ancestors(parents, w)
    return nodes


def _heights(parents: dict[str, list[str]], nodes: set[str]) -> dict[str, int]:
    """Longest downward path to a leaf of the sub-DAG ``nodes``, children before parents."""
    children: dict[str, list[str]] = {n: [] for n in nodes}
    pending = {n: 0 for n in nodes}
    for n in nodes:
        for p in parents.get(n, ()):
            children[p].append(n)
    for n in nodes:
        pending[n] = len(children[n])
    height = {n: 0 for n in nodes}
    ready = [n for n in nodes if pending[n] == 0]
    done = 0
    while ready:
        node = ready.pop()
        done += 1
        for p in parents.get(node, ()):
            height[p] = max(height[p], height[node] + 1)
            pending[p] -= 1
            if pending[p] == 0:
                ready.append(p)
    if done != len(nodes):
        raise InputError("the synset graph has a cycle; WordNet's noun hierarchy never does (rebuild it)")
    return height
