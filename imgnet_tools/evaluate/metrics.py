"""Classification metrics over class-index arrays: the one place they are computed.

``imgnet eval`` scores a predictions file with these, ``imgnet train`` uses them for its accuracy
curve and ``imgnet predict`` for its summary, so a number means the same thing everywhere.

Inputs are plain numpy arrays, already aligned image by image:

* ``truth``: shape ``(N,)``, the true class index of each image;
* ``guesses``: shape ``(N, K)``, ``K <= 5`` ranked guesses per image, best first, with
  :data:`NO_GUESS` (-1) where an image has fewer guesses, no prediction at all, or a guess outside
  the class list. A slot holding ``NO_GUESS`` never matches.

Definitions (ILSVRC's):

* top-k accuracy: the share of images whose true class is among their first ``k`` guesses; the
  error is one minus it (ILSVRC-2012's headline measure is the top-5 error);
* per-class accuracy: the same, per true class;
* most-confused pairs: (true class, top-1 guess) pairs with the most images, wrong guesses only;
* hierarchical error (ILSVRC 2010-2011): a guess costs 0 when right, else the height of the lowest
  common ancestor of guess and truth in the synset DAG (leaves have height 0); an image costs the
  minimum over its first ``k`` guesses, and the error is the mean cost (the distance comes from
  :class:`imgnet_tools.evaluate.hierarchy.Hierarchy`);
* ReaL accuracy (Beyer et al. 2020): the top-1 guess is right when it is one of the image's
  reassessed labels; images whose label list is empty are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

NO_GUESS = -1
TOP_K = 5


class Distance(Protocol):
    """What hierarchical error needs: a cost per (guess, truth) pair, and the cost of no guess."""

    max_cost: int

    def cost(self, guesses: "np.ndarray", truth: "np.ndarray") -> "np.ndarray":
        """Cost of each guess against the truth at the same position (0 when equal)."""


def hits(truth: "np.ndarray", guesses: "np.ndarray", k: int) -> "np.ndarray":
    """Boolean ``(N,)``: the true class is among the first ``k`` guesses."""
    import numpy as np

    if guesses.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray((guesses[:, :k] == truth[:, None]).any(axis=1))


def topk_accuracy(truth: "np.ndarray", guesses: "np.ndarray", ks: Sequence[int] = (1, TOP_K)) -> dict[int, float]:
    """Top-k accuracy for every ``k`` in ``ks`` (0.0 for an empty input)."""
    n = int(truth.shape[0])
    return {k: float(hits(truth, guesses, k).sum()) / n if n else 0.0 for k in ks}


def per_class(truth: "np.ndarray", guesses: "np.ndarray", num_classes: int) -> list[dict[str, Any]]:
    """One row per class that has images: ``index``, ``images``, ``top1``, ``top5`` accuracy."""
    import numpy as np

    counts = np.bincount(truth, minlength=num_classes)
    top1 = np.bincount(truth, weights=hits(truth, guesses, 1), minlength=num_classes)
    top5 = np.bincount(truth, weights=hits(truth, guesses, TOP_K), minlength=num_classes)
    return [{"index": int(c), "images": int(counts[c]), "top1": float(top1[c] / counts[c]),
             "top5": float(top5[c] / counts[c])} for c in np.flatnonzero(counts)]


def confused_pairs(truth: "np.ndarray", guesses: "np.ndarray", limit: int = 20) -> list[tuple[int, int, int]]:
    """(true class, top-1 guess, images) for wrong top-1 guesses, most images first, then by index."""
    import numpy as np

    if guesses.shape[0] == 0 or guesses.shape[1] == 0:
        return []
    top1 = guesses[:, 0]
    wrong = (top1 != truth) & (top1 != NO_GUESS)
    if not wrong.any():
        return []
    pairs, counts = np.unique(np.stack([truth[wrong], top1[wrong]], axis=1), axis=0, return_counts=True)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -counts))[:limit]
    return [(int(pairs[i, 0]), int(pairs[i, 1]), int(counts[i])) for i in order]


def hierarchical_costs(truth: "np.ndarray", guesses: "np.ndarray", distance: Distance, k: int = TOP_K) -> "np.ndarray":
    """Per image: the smallest cost among its first ``k`` guesses (``max_cost`` when it has none)."""
    import numpy as np

    n = int(truth.shape[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    first = guesses[:, :k]
    rows, cols = np.nonzero(first != NO_GUESS)
    costs = np.full(first.shape, distance.max_cost, dtype=np.int64)
    if rows.size:
        costs[rows, cols] = distance.cost(first[rows, cols], truth[rows])
    if first.shape[1] == 0:
        return np.full(n, distance.max_cost, dtype=np.int64)
    return np.asarray(costs.min(axis=1))


def real_accuracy(real: Sequence[Sequence[int]], guesses: "np.ndarray", k: int = 1) -> tuple[float, int]:
    """(ReaL top-k accuracy, images scored): images with an empty label list are left out."""
    scored = correct = 0
    for labels, row in zip(real, guesses.tolist(), strict=True):
        if not labels:
            continue
        scored += 1
        wanted = set(labels)
        correct += any(g in wanted for g in row[:k] if g != NO_GUESS)
    return (correct / scored if scored else 0.0), scored


@dataclass(frozen=True)
class Scores:
    """Every metric of one evaluation (what ``imgnet eval --json`` carries under ``metrics``)."""

    images: int
    top1: float
    top5: float
    hierarchical_error: float | None = None
    hierarchical_error_top1: float | None = None
    real_top1: float | None = None
    real_images: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Accuracy and error side by side, rounded for reading (6 decimals)."""
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 6)

        return {"images": self.images, "top1_accuracy": r(self.top1), "top1_error": r(1.0 - self.top1),
                "top5_accuracy": r(self.top5), "top5_error": r(1.0 - self.top5),
                "hierarchical_error": r(self.hierarchical_error),
                "hierarchical_error_top1": r(self.hierarchical_error_top1),
                "real_top1_accuracy": r(self.real_top1), "real_images": self.real_images}


def score(truth: "np.ndarray", guesses: "np.ndarray", distance: Distance | None = None,
          real: Sequence[Sequence[int]] | None = None) -> Scores:
    """Top-1/top-5, and hierarchical error and ReaL accuracy when a hierarchy / ReaL labels are given."""
    acc = topk_accuracy(truth, guesses, (1, TOP_K))
    hier = hier1 = None
    if distance is not None and truth.shape[0]:
        hier = float(hierarchical_costs(truth, guesses, distance, TOP_K).mean())
        hier1 = float(hierarchical_costs(truth, guesses, distance, 1).mean())
    real_acc = real_n = None
    if real is not None:
        real_acc, real_n = real_accuracy(real, guesses, 1)
    return Scores(int(truth.shape[0]), acc[1], acc[TOP_K], hier, hier1, real_acc, real_n)
