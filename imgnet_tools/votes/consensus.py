"""ImageNet's dynamic consensus: when is a question decided, and how many more votes does it need?

ImageNet (Deng et al. 2009) did not ask a fixed number of workers per image: for each synset it
measured how well workers agree on that synset from a sample with many votes, and then asked
for votes on each image until a confidence table said the answer was sure enough. Here:

* A question is decided ``yes`` when P(yes) >= ``confidence``, ``no`` when P(yes) <= 1 -
  ``confidence`` (P(yes) from the aggregation method; gold questions are decided by their answer).
* Each synset's agreement ``A`` is the share of agreeing pairs among the yes/no votes on the same
  image, pooled towards the all-synset figure by :data:`PRIOR_PAIRS` pseudo-pairs (and that one
  towards :data:`DEFAULT_AGREEMENT` likewise), so that a few early pairs cannot make a synset
  look hopeless or perfect. Under the
  symmetric one-coin model a worker is right with probability ``a`` where ``A = a^2 + (1-a)^2``,
  so one more vote moves the log-odds of the answer by ``log(a / (1 - a))``: a hard synset (low
  agreement) needs more votes per image than an easy one.
* An undecided question needs ``k`` more votes, the fewest that would reach the confidence if
  they all agreed: ``(logit(confidence) - |logit(P(yes))|) / log(a / (1 - a))``, rounded up (at
  least 1; from the synset's yes-rate for a question without votes). If its votes so far plus
  ``k`` exceed ``max_votes``, or it already has ``max_votes``, it is ``no_consensus``: it cannot
  reach the confidence within the limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

DECISIONS = ("yes", "no", "pending", "no_consensus")
PRIOR_PAIRS = 20.0  # pseudo-pairs pulling a synset's agreement towards the all-synset one
DEFAULT_AGREEMENT = 0.82  # a = 0.9: the assumption while few images have two votes
MAX_ACCURACY = 0.99
MIN_LOG_ODDS = 1e-3  # a vote worth less than this cannot move a question anywhere


@dataclass(frozen=True)
class SynsetAgreement:
    """One synset's measured agreement and what it means per vote."""

    pairs: int
    agreement: float  # pooled share of agreeing vote pairs
    accuracy: float  # the one-coin accuracy a with a^2 + (1-a)^2 = agreement
    prior_yes: float  # mean P(yes) of the synset's voted questions (for questions without votes)

    @property
    def log_odds_per_vote(self) -> float:
        return math.log(self.accuracy / (1.0 - self.accuracy)) if self.accuracy > 0.5 else 0.0


def accuracy_from_agreement(agreement: float) -> float:
    """The one-coin accuracy ``a >= 0.5`` with ``a^2 + (1-a)^2 = agreement`` (0.5 below chance)."""
    return min(MAX_ACCURACY, 0.5 * (1.0 + math.sqrt(max(2.0 * agreement - 1.0, 0.0))))


def pair_counts(yes: "np.ndarray", no: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """(agreeing pairs, all pairs) of yes/no votes per question."""
    total = yes + no
    return yes * (yes - 1) // 2 + no * (no - 1) // 2, total * (total - 1) // 2


def synset_agreement(synset: "np.ndarray", n_synsets: int, yes: "np.ndarray", no: "np.ndarray",
                     p_yes: "np.ndarray") -> list[SynsetAgreement]:
    """Agreement per synset code from the questions' yes/no counts (see module docstring)."""
    import numpy as np

    agree, pairs = pair_counts(yes.astype(np.int64), no.astype(np.int64))
    agree_s = np.bincount(synset, weights=agree, minlength=n_synsets)
    pairs_s = np.bincount(synset, weights=pairs, minlength=n_synsets)
    overall = float((agree_s.sum() + DEFAULT_AGREEMENT * PRIOR_PAIRS) / (pairs_s.sum() + PRIOR_PAIRS))
    voted = ~np.isnan(p_yes)
    p_sum = np.bincount(synset[voted], weights=p_yes[voted], minlength=n_synsets)
    p_n = np.bincount(synset[voted], minlength=n_synsets)
    out = []
    for s in range(n_synsets):
        pooled = (agree_s[s] + overall * PRIOR_PAIRS) / (pairs_s[s] + PRIOR_PAIRS)
        prior = float(np.clip(p_sum[s] / p_n[s], 0.05, 0.95)) if p_n[s] else 0.5
        out.append(SynsetAgreement(int(pairs_s[s]), float(pooled), accuracy_from_agreement(float(pooled)), prior))
    return out


def _logit(p: "np.ndarray") -> "np.ndarray":
    import numpy as np

    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def decide(p_yes: "np.ndarray", votes: "np.ndarray", gold: "np.ndarray", synset: "np.ndarray",
           agreement: list[SynsetAgreement], confidence: float, max_votes: int) -> tuple["np.ndarray", "np.ndarray"]:
    """(decision, needed) per question: decision codes index :data:`DECISIONS`."""
    import numpy as np

    yes = (p_yes >= confidence) | (gold == 1)
    no = ((p_yes <= 1.0 - confidence) | (gold == 0)) & ~yes
    decision = np.where(yes, 0, np.where(no, 1, 2)).astype(np.int8)
    per_vote = np.array([a.log_odds_per_vote for a in agreement])[synset] if len(synset) else np.zeros(0)
    prior = np.array([a.prior_yes for a in agreement])[synset] if len(synset) else np.zeros(0)
    belief = np.abs(_logit(np.where(np.isnan(p_yes), prior, p_yes)))
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.ceil((math.log(confidence / (1 - confidence)) - belief) / per_vote)
    k = np.where(per_vote > MIN_LOG_ODDS, np.maximum(k, 1), np.inf)
    undecided = decision == 2
    hopeless = undecided & ((votes >= max_votes) | (votes + k > max_votes))
    decision[hopeless] = 3
    needed = np.where(decision == 2, np.nan_to_num(k, posinf=0), 0).astype(np.int32)
    return decision, needed
