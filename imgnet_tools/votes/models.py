"""The aggregation methods: P(yes) per question from integer-coded yes/no votes.

``majority`` and ``glad`` are crowd-kit's ``MajorityVote`` and ``GLAD`` (Whitehill et al. 2009:
worker skill and question difficulty); ``dawid-skene`` (Dawid and Skene 1979: one 2x2 confusion
matrix per worker) runs on :mod:`.dawid_skene`'s numpy EM by default, crowd-kit's
``DawidSkene`` with ``engine="crowd-kit"``: both give the same posteriors (a test holds them to
1e-6) and the numpy one is about 15x faster on a million votes (BENCHMARKS.md). crowd-kit is
imported only here, and only when a method runs (it imports pandas, scikit-learn and nltk).

Labels: 1 is yes, 0 is no; ``maybe`` answers never reach a model (they are abstentions).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgnet_tools.errors import DependencyError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

METHODS = ("dawid-skene", "majority", "glad")
ENGINES = ("auto", "numpy", "crowd-kit")


@dataclass(frozen=True)
class Votes:
    """Yes/no votes as codes: question, worker and label (1 yes, 0 no) per vote."""

    questions: "np.ndarray"
    workers: "np.ndarray"
    labels: "np.ndarray"
    n_questions: int
    n_workers: int


def check_method(method: str, engine: str) -> None:
    """Raise :class:`InputError` for an unknown method or engine, or an engine the method lacks."""
    if method not in METHODS:
        raise InputError(f"unknown --method {method!r}; choose one of {', '.join(METHODS)}.")
    if engine not in ENGINES:
        raise InputError(f"unknown --engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    if engine == "numpy" and method != "dawid-skene":
        raise InputError(f"--engine numpy implements dawid-skene only; {method} runs on crowd-kit (--engine auto).")


def p_yes(votes: Votes, method: str, engine: str = "auto", gold: "np.ndarray | None" = None) -> "np.ndarray":
    """P(yes) per question (NaN for a question without votes). ``gold[q]`` is 1/0 for a gold
    question, -1 otherwise; Dawid-Skene fixes gold questions to their answer while it fits."""
    import numpy as np

    check_method(method, engine)
    out = np.full(votes.n_questions, np.nan)
    if len(votes.questions) == 0:
        return out
    if method == "dawid-skene" and engine in ("auto", "numpy"):
        from imgnet_tools.votes.dawid_skene import dawid_skene

        tasks, inverse = np.unique(votes.questions, return_inverse=True)
        task_gold = None if gold is None else gold[tasks]
        fit = dawid_skene(inverse, votes.workers, votes.labels, len(tasks), votes.n_workers, gold=task_gold)
        out[tasks] = fit.probas[:, 1]
        return out
    probas = _crowdkit(votes, method, gold)
    yes = probas[1].to_numpy() if 1 in probas.columns else np.zeros(len(probas))
    out[probas.index.to_numpy(dtype=np.int64)] = yes
    return out


def _crowdkit(votes: Votes, method: str, gold: "np.ndarray | None") -> Any:
    """crowd-kit's probabilities (a DataFrame: question index x label)."""
    try:
        import pandas as pd
        from crowdkit.aggregation import GLAD, DawidSkene, MajorityVote
    except ImportError as exc:  # pragma: no cover - installed with imgnet-tools
        raise DependencyError(f"imgnet votes needs crowd-kit ({exc}); reinstall imgnet-tools (make setup).") from exc
    data = pd.DataFrame({"task": votes.questions, "worker": votes.workers, "label": votes.labels})
    with warnings.catch_warnings():
        # crowd-kit 1.4 uses pandas keywords that pandas 3 deprecates (inplace=, copy=): harmless here.
        warnings.filterwarnings("ignore", message=r".*\b(inplace|copy) keyword\b.*")
        if method == "majority":
            return MajorityVote().fit_predict_proba(data)
        if method == "glad":
            return GLAD(silent=True).fit_predict_proba(data)
        true_labels = None
        if gold is not None and (gold >= 0).any():
            known = (gold >= 0)
            present = known[votes.questions]
            tasks = pd.unique(votes.questions[present])
            true_labels = pd.Series(gold[tasks], index=tasks)
        return DawidSkene(n_iter=100).fit_predict_proba(data, true_labels=true_labels)
