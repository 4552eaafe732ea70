"""Per-worker measures: accuracy on gold, agreement with the consensus, spam score, and who is dropped.

The spam score is Raykar and Yu's spammer score (JMLR 2012) turned round so that 1 means spam:
``1 - |sensitivity + specificity - 1|``, with both rates measured against the consensus (and
smoothed by one vote each way). A worker whose answers do not depend on the truth (always yes,
always no, coin flips) has sensitivity + specificity = 1 and scores 1, however often they say
yes; a careful worker and a perfect liar both score near 0. A liar (an adversary) is told apart
by agreement with the consensus below one half together with sensitivity + specificity at most
0.8 (:data:`ADVERSARY_MARGIN`): answers that go against the truth, not coin flips that happen to
agree a little less than half the time.

A worker is judged only after ``min_votes`` yes/no answers on decided questions (gold answers
after :data:`MIN_GOLD_VOTES`): with fewer, chance alone makes a good worker look bad.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

MIN_GOLD_VOTES = 5
ADVERSARY_MARGIN = 0.2  # sensitivity + specificity at most 0.8: opposite answers, not coin flips
DROP_REASONS = ("spam", "adversarial", "gold")


@dataclass(frozen=True)
class WorkerPolicy:
    """When a worker's votes are dropped from the aggregation."""

    spam_threshold: float = 0.9
    min_worker_votes: int = 20
    min_gold_accuracy: float = 0.5


@dataclass
class WorkerStats:
    """Arrays indexed by worker code (NaN where a rate is unknown)."""

    votes: "np.ndarray"
    yes: "np.ndarray"
    no: "np.ndarray"
    maybe: "np.ndarray"
    gold_votes: "np.ndarray"
    gold_accuracy: "np.ndarray"
    decided_votes: "np.ndarray"
    agreement: "np.ndarray"
    sensitivity: "np.ndarray"
    specificity: "np.ndarray"
    spam_score: "np.ndarray"


def _rate(hits: "np.ndarray", total: "np.ndarray", smooth: float = 0.0) -> "np.ndarray":
    import numpy as np

    return np.where(total > 0, (hits + smooth) / np.maximum(total + 2 * smooth, 1e-12), np.nan)


def worker_stats(questions: "np.ndarray", workers: "np.ndarray", answers: "np.ndarray", n_workers: int,
                 consensus: "np.ndarray", gold: "np.ndarray") -> WorkerStats:
    """Measures per worker from every answer (codes: 1 yes, 0 no, 2 maybe); ``consensus[q]`` is
    1/0 for a question the consensus decided and -1 otherwise, ``gold[q]`` likewise for gold."""
    import numpy as np

    def count(mask: "np.ndarray") -> "np.ndarray":
        return np.bincount(workers[mask], minlength=n_workers).astype(np.int64)

    yes_no = answers < 2
    truth = consensus[questions]
    known = gold[questions]
    on_gold = yes_no & (known >= 0)
    decided = yes_no & (truth >= 0)
    pos, neg = decided & (truth == 1), decided & (truth == 0)
    sens = _rate(count(pos & (answers == 1)), count(pos), smooth=1.0)
    spec = _rate(count(neg & (answers == 0)), count(neg), smooth=1.0)
    return WorkerStats(
        votes=count(np.ones(len(workers), dtype=bool)), yes=count(answers == 1), no=count(answers == 0),
        maybe=count(answers == 2), gold_votes=count(on_gold),
        gold_accuracy=_rate(count(on_gold & (answers == known)), count(on_gold)),
        decided_votes=count(decided), agreement=_rate(count(decided & (answers == truth)), count(decided)),
        sensitivity=sens, specificity=spec, spam_score=1.0 - np.abs(sens + spec - 1.0),
    )


def drop_reasons(stats: WorkerStats, policy: WorkerPolicy) -> "np.ndarray":
    """Per worker: ``spam``, ``adversarial``, ``gold`` or None (kept), first reason that applies."""
    import numpy as np

    judged = stats.decided_votes >= policy.min_worker_votes
    out = np.full(len(stats.votes), None, dtype=object)
    gold_bad = (stats.gold_votes >= MIN_GOLD_VOTES) & (np.nan_to_num(stats.gold_accuracy, nan=1.0) < policy.min_gold_accuracy)
    out[gold_bad] = "gold"
    inverted = np.nan_to_num(stats.sensitivity + stats.specificity - 1.0, nan=0.0) <= -ADVERSARY_MARGIN
    out[judged & inverted & (np.nan_to_num(stats.agreement, nan=1.0) < 0.5)] = "adversarial"
    out[judged & (np.nan_to_num(stats.spam_score, nan=0.0) >= policy.spam_threshold)] = "spam"
    return out
