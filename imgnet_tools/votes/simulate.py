"""Simulated crowds with known truth, for the tests and the aggregation benchmark.

A crowd is a list of workers, each of a kind: ``honest`` (right with probability ``accuracy``,
lowered on hard synsets), ``always_yes`` and ``random`` spammers, and an ``adversary`` (right
with a low probability: it answers the opposite on purpose). ``activity`` weights how much of
the work each one takes, so work is unequal as on a real platform. No worker answers the same
question twice. Everything is drawn from one seeded generator: the same arguments give the same
votes.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

KINDS = ("honest", "always_yes", "random", "adversary")
EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


@dataclass(frozen=True)
class SimWorker:
    """One simulated worker: id, kind, accuracy (honest and adversary) and share of the work."""

    worker: str
    kind: str
    accuracy: float = 0.9
    activity: float = 1.0


@dataclass
class Crowd:
    """Questions with their truth and a pool of workers that can be asked for more votes."""

    keys: list[str]
    wnids: list[str]
    truth: "np.ndarray"  # bool per question
    difficulty: "np.ndarray"  # per question, 0 (easy) .. 1 (coin flip for everyone honest)
    workers: list[SimWorker]
    seed: int = 0
    asked: list[set[int]] = field(default_factory=list)  # workers that answered each question
    clock: int = 0

    def __post_init__(self) -> None:
        import numpy as np

        self.rng = np.random.default_rng(self.seed)
        if not self.asked:
            self.asked = [set() for _ in self.keys]

    def _p_right(self, worker: SimWorker, q: int) -> float:
        if worker.kind == "honest":
            return 0.5 + (worker.accuracy - 0.5) * (1.0 - float(self.difficulty[q]))
        return worker.accuracy  # adversary: low on purpose

    def _answer(self, worker: SimWorker, q: int) -> str:
        if worker.kind == "always_yes":
            return "yes"
        if worker.kind == "random":
            return "yes" if self.rng.random() < 0.5 else "no"
        right = self.rng.random() < self._p_right(worker, q)
        return "yes" if bool(self.truth[q]) == right else "no"

    def vote(self, questions: Sequence[int], counts: Sequence[int] | int) -> "pa.Table":
        """``counts`` more votes on each of ``questions`` from workers who have not answered it."""
        import numpy as np

        from imgnet_tools.votes.table import votes_from_columns

        counts = [counts] * len(questions) if isinstance(counts, int) else list(counts)
        weights = np.array([w.activity for w in self.workers], dtype=np.float64)
        cols: dict[str, list[Any]] = {c: [] for c in ("key", "wnid", "worker", "answer", "source", "answered_at")}
        for q, n in zip(questions, counts):
            free = np.array([i not in self.asked[q] for i in range(len(self.workers))])
            n = min(int(n), int(free.sum()))
            if n <= 0:
                continue
            p = weights * free
            chosen = self.rng.choice(len(self.workers), size=n, replace=False, p=p / p.sum())
            for i in chosen:
                self.asked[q].add(int(i))
                self.clock += 1
                cols["key"].append(self.keys[q])
                cols["wnid"].append(self.wnids[q])
                cols["worker"].append(self.workers[i].worker)
                cols["answer"].append(self._answer(self.workers[i], q))
                cols["source"].append("table")
                cols["answered_at"].append(EPOCH + datetime.timedelta(seconds=self.clock))
        return votes_from_columns(cols)

    def bulk_votes(self, per_question: int, chunk: int = 20_000) -> "pa.Table":
        """``per_question`` votes on every question at once, vectorised (the benchmark's million
        votes); the same worker kinds and activity weights as :meth:`vote`, distinct workers per
        question (Gumbel top-k on the log activity)."""
        import numpy as np
        import pyarrow as pa

        from imgnet_tools.manifest.parquet import arrow_schema

        kinds = np.array([w.kind for w in self.workers])
        acc = np.array([w.accuracy for w in self.workers])
        log_w = np.log(np.array([w.activity for w in self.workers]))
        parts = []
        for lo in range(0, len(self.keys), chunk):
            q = np.arange(lo, min(lo + chunk, len(self.keys)))
            scores = log_w[None, :] + self.rng.gumbel(size=(len(q), len(self.workers)))
            chosen = np.argpartition(-scores, per_question - 1, axis=1)[:, :per_question]
            qq, ww = np.repeat(q, per_question), chosen.ravel()
            honest = kinds[ww] == "honest"
            p_right = np.where(honest, 0.5 + (acc[ww] - 0.5) * (1.0 - self.difficulty[qq]), acc[ww])
            right = self.rng.random(len(qq)) < p_right
            says_yes = np.where(right, self.truth[qq], ~self.truth[qq])
            says_yes = np.where(kinds[ww] == "always_yes", True, says_yes)
            says_yes = np.where(kinds[ww] == "random", self.rng.random(len(qq)) < 0.5, says_yes)
            parts.append((qq, ww, says_yes))
        qq = np.concatenate([p[0] for p in parts])
        ww = np.concatenate([p[1] for p in parts])
        yes = np.concatenate([p[2] for p in parts])
        keys, wnids = np.array(self.keys, dtype=object), np.array(self.wnids, dtype=object)
        names = np.array([w.worker for w in self.workers], dtype=object)
        base = int(EPOCH.timestamp() * 1_000_000)
        schema = arrow_schema("votes")
        return pa.table({
            "key": pa.array(keys[qq], pa.string()), "wnid": pa.array(wnids[qq], pa.string()),
            "worker": pa.array(names[ww], pa.string()),
            "answer": pa.array(np.where(yes, "yes", "no").astype(object), pa.string()),
            "source": pa.array(np.full(len(qq), "table", dtype=object), pa.string()),
            "answered_at": pa.array(base + np.arange(len(qq), dtype=np.int64) * 1_000_000, pa.timestamp("us", tz="UTC")),
        }, schema=schema)

    def question_index(self) -> dict[tuple[str, str], int]:
        """(key, wnid) -> question number."""
        return {(k, w): i for i, (k, w) in enumerate(zip(self.keys, self.wnids))}


def standard_workers(n: int = 40, seed: int = 0) -> list[SimWorker]:
    """A realistic mix: mostly honest workers of accuracies 0.65..0.97, two always-yes and two
    random spammers, one adversary; activity drawn from a long-tailed distribution."""
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    special = [("always_yes", 0.5), ("always_yes", 0.5), ("random", 0.5), ("random", 0.5), ("adversary", 0.15)]
    workers = []
    for i in range(n):
        activity = float(rng.pareto(1.5) + 0.2)
        if i < len(special):
            kind, acc = special[i]
            workers.append(SimWorker(f"w{i:03d}-{kind}", kind, acc, activity))
        else:
            acc = float(rng.uniform(0.65, 0.97))
            workers.append(SimWorker(f"w{i:03d}-honest", "honest", acc, activity))
    return workers


def make_crowd(n_questions: int, n_synsets: int = 10, workers: list[SimWorker] | None = None,
               prior_yes: float = 0.7, seed: int = 0) -> Crowd:
    """Questions spread over ``n_synsets`` synsets of varying difficulty, truth drawn with
    probability ``prior_yes`` (most candidates from a search engine do show the synset)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    synset_of = rng.integers(0, n_synsets, n_questions)
    synset_difficulty = rng.uniform(0.0, 0.5, n_synsets)
    wnids = [f"n{10000000 + s:08d}" for s in synset_of]
    keys = [f"img{q:07d}" for q in range(n_questions)]
    truth = rng.random(n_questions) < prior_yes
    return Crowd(keys, wnids, truth, synset_difficulty[synset_of], workers or standard_workers(seed=seed), seed=seed)
