"""``imgnet votes aggregate``: votes -> P(yes) and a decision per question, measures per worker.

:func:`build_consensus` is the one place the statistics are done (``next``, ``apply`` and the
recipe stage call it too):

1. each worker's latest answer per question (:func:`.table.latest_answers`);
2. a first fit of the method on every yes/no vote (``maybe`` is an abstention);
3. per worker, against that consensus: accuracy on gold, agreement, spam score
   (:mod:`.workers`); spammers, adversaries and workers who fail gold are dropped;
4. a fit without the dropped workers' votes, and steps 3-4 again (at most :data:`MAX_PASSES`
   fits in all) while that consensus shows more workers to drop: spammers pull the first
   consensus towards themselves, so one of them may only show once the others are gone;
5. the decision and the votes still needed per question (:mod:`.consensus`), and the worker
   measures again against the final consensus.

"The consensus" a worker is measured against is the method's most likely answer (P(yes) above or
below one half), not the confidence-thresholded decision: every voted question counts, so that
a worker's rates rest on all their work and not on the easy questions decided early.

Writes the consensus table (schema ``votes_consensus``) and the worker table (schema
``votes_workers``) atomically.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from imgnet_tools.errors import InputError
from imgnet_tools.votes import consensus as cons
from imgnet_tools.votes.gold import Gold, load_gold
from imgnet_tools.votes.models import Votes, check_method, p_yes
from imgnet_tools.votes.workers import WorkerPolicy, drop_reasons, worker_stats

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

CONSENSUS_FILE = "consensus.parquet"
MAX_PASSES = 3  # fits at most: a spammer hidden by other spammers shows once they are dropped
ANSWER_CODE = {"no": 0, "yes": 1, "maybe": 2}


@dataclass(frozen=True)
class ConsensusPolicy:
    """How votes become decisions (the options ``aggregate``, ``next`` and ``apply`` share)."""

    method: str = "dawid-skene"
    engine: str = "auto"
    confidence: float = 0.95
    max_votes: int = 10
    workers: WorkerPolicy = WorkerPolicy()

    def validate(self) -> None:
        """Raise :class:`InputError` for values that cannot work."""
        check_method(self.method, self.engine)
        if not 0.5 < self.confidence < 1.0:
            raise InputError(f"--confidence {self.confidence} must be above 0.5 and below 1.")
        if self.max_votes < 1:
            raise InputError(f"--max-votes {self.max_votes} must be at least 1.")
        w = self.workers
        if not 0.0 < w.spam_threshold <= 1.0 or not 0.0 <= w.min_gold_accuracy <= 1.0 or w.min_worker_votes < 1:
            raise InputError("--spam-threshold must be in (0, 1], --min-gold-accuracy in [0, 1], "
                             "--min-worker-votes at least 1.")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "engine": self.engine, "confidence": self.confidence,
                "max_votes": self.max_votes, "spam_threshold": self.workers.spam_threshold,
                "min_worker_votes": self.workers.min_worker_votes,
                "min_gold_accuracy": self.workers.min_gold_accuracy}


@dataclass
class Consensus:
    """Tables built by :func:`build_consensus`, a summary per synset, and timings."""

    questions: "pa.Table"
    workers: "pa.Table"
    synsets: list[dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Questions per decision."""
        import collections

        found = collections.Counter(self.questions.column("decision").to_pylist())
        return {d: found.get(d, 0) for d in cons.DECISIONS}

    def dropped_workers(self) -> list[str]:
        workers = self.workers.column("worker").to_pylist()
        return [w for w, d in zip(workers, self.workers.column("dropped").to_pylist()) if d]


@dataclass
class _Coded:
    """Every question and answer as integer codes."""

    keys: "pa.Array"  # per question
    wnids: "pa.Array"
    question: "np.ndarray"  # per answer
    worker: "np.ndarray"
    answer: "np.ndarray"
    worker_names: list[str]
    gold: "np.ndarray"  # per question: 1, 0 or -1

    @property
    def n_questions(self) -> int:
        return len(self.keys)


def _qids(keys: Any, wnids: Any) -> Any:
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(keys, wnids, "\x1f")


def _code(latest: "pa.Table", extra: "pa.Table | None", gold: Gold) -> _Coded:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = [latest.column("key")] + ([extra.column("key")] if extra is not None else [])
    wnids = [latest.column("wnid")] + ([extra.column("wnid")] if extra is not None else [])
    all_keys = pa.chunked_array([c for k in keys for c in k.chunks], pa.string()).combine_chunks()
    all_wnids = pa.chunked_array([c for w in wnids for c in w.chunks], pa.string()).combine_chunks()
    encoded = pc.dictionary_encode(_qids(all_keys, all_wnids))
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    _, first = np.unique(codes, return_index=True)
    workers = pc.dictionary_encode(latest.column("worker").combine_chunks())
    answers = latest.column("answer").to_numpy()
    gold_codes = np.full(len(first), -1, dtype=np.int64)
    if len(gold):
        items = list(gold.answers.items())
        where = pc.index_in(_qids(pa.array([k for (k, _), _ in items]), pa.array([w for (_, w), _ in items])),
                            value_set=encoded.dictionary).to_numpy(zero_copy_only=False)
        found = ~np.isnan(where.astype(np.float64))
        gold_codes[where[found].astype(np.int64)] = [ANSWER_CODE[a] for (_, a), f in zip(items, found) if f]
    return _Coded(
        keys=all_keys.take(pa.array(first)), wnids=all_wnids.take(pa.array(first)),
        question=codes[: latest.num_rows], worker=workers.indices.to_numpy(zero_copy_only=False).astype(np.int64),
        answer=np.select([answers == "yes", answers == "no"], [1, 0], 2).astype(np.int64),
        worker_names=workers.dictionary.to_pylist(), gold=gold_codes,
    )


def _fit(coded: _Coded, keep: "np.ndarray", policy: ConsensusPolicy) -> "np.ndarray":
    """P(yes) per question from the yes/no answers selected by ``keep``."""
    import numpy as np

    mask = keep & (coded.answer < 2)
    votes = Votes(coded.question[mask], coded.worker[mask], coded.answer[mask], coded.n_questions, len(coded.worker_names))
    p = p_yes(votes, policy.method, policy.engine, coded.gold)
    p[coded.gold == 1], p[coded.gold == 0] = 1.0, 0.0
    return np.asarray(p)


def _hard(p: "np.ndarray") -> "np.ndarray":
    import numpy as np

    return np.where(p > 0.5, 1, np.where(p < 0.5, 0, -1)).astype(np.int64)


def build_consensus(votes: "pa.Table", policy: ConsensusPolicy, gold: Gold | None = None,
                    extra: "pa.Table | None" = None) -> Consensus:
    """Aggregate ``votes`` (see module docstring). ``extra`` (columns key, wnid) adds questions
    without votes (a manifest's rows), so that they get a decision (pending) and a need."""
    import numpy as np

    from imgnet_tools.votes.table import latest_answers

    policy.validate()
    t0 = time.perf_counter()
    coded = _code(latest_answers(votes), extra, gold or Gold())
    n_workers = len(coded.worker_names)
    everyone = np.ones(len(coded.question), dtype=bool)
    t1 = time.perf_counter()
    final, keep = _fit(coded, everyone, policy), everyone
    reasons = np.full(n_workers, None, dtype=object)
    for _ in range(MAX_PASSES):  # judge workers, drop, refit without them; until nobody new is dropped
        stats = worker_stats(coded.question, coded.worker, coded.answer, n_workers, _hard(final), coded.gold)
        found = drop_reasons(stats, policy.workers)
        new = np.array([r is not None for r in found], dtype=bool) & np.array([r is None for r in reasons], dtype=bool)
        if not new.any():
            break
        reasons[new] = found[new]
        keep = np.array([r is None for r in reasons], dtype=bool)[coded.worker]
        final = _fit(coded, keep, policy)
    t2 = time.perf_counter()
    questions, synsets = _questions(coded, keep, final, policy)
    stats = worker_stats(coded.question, coded.worker, coded.answer, n_workers, _hard(final), coded.gold)
    workers = _worker_table(coded.worker_names, stats, reasons, policy.method)
    table = _question_table(coded, questions, policy.method)
    return Consensus(table, workers, synsets, {"code": t1 - t0, "fit": t2 - t1, "decide": time.perf_counter() - t2})


def _questions(coded: _Coded, keep: "np.ndarray", p: "np.ndarray",
               policy: ConsensusPolicy) -> tuple[dict[str, "np.ndarray"], list[dict[str, Any]]]:
    """Counts, decision and need per question; the per-synset summary."""
    import numpy as np
    import pyarrow.compute as pc

    n = coded.n_questions

    def count(mask: "np.ndarray") -> "np.ndarray":
        return np.bincount(coded.question[mask], minlength=n).astype(np.int64)

    yes, no = count(keep & (coded.answer == 1)), count(keep & (coded.answer == 0))
    maybe, dropped = count(keep & (coded.answer == 2)), count(~keep)
    enc = pc.dictionary_encode(coded.wnids)
    synset = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    wnids = enc.dictionary.to_pylist()
    agreement = cons.synset_agreement(synset, len(wnids), yes, no, p)
    total = yes + no + maybe + dropped
    decision, needed = cons.decide(p, total, coded.gold, synset, agreement, policy.confidence, policy.max_votes)
    summary = []
    for s, wnid in enumerate(wnids):
        mine = synset == s
        by = np.bincount(decision[mine], minlength=len(cons.DECISIONS))
        summary.append({"wnid": wnid, "questions": int(mine.sum()), "votes": int(total[mine].sum()),
                        **{d: int(by[i]) for i, d in enumerate(cons.DECISIONS)},
                        "needed": int(needed[mine].sum()), "vote_pairs": agreement[s].pairs,
                        "agreement": round(agreement[s].agreement, 4), "accuracy": round(agreement[s].accuracy, 4)})
    summary.sort(key=lambda r: r["wnid"])
    return {"yes": yes, "no": no, "maybe": maybe, "dropped": dropped, "p": p, "decision_code": decision,
            "needed": needed}, summary


def _question_table(coded: _Coded, q: dict[str, "np.ndarray"], method: str) -> "pa.Table":
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from imgnet_tools.manifest.parquet import arrow_schema

    gold = np.array([None, "no", "yes"], dtype=object)[coded.gold + 1]
    table = pa.table({
        "key": coded.keys, "wnid": coded.wnids,
        "yes": pa.array(q["yes"], pa.int32()), "no": pa.array(q["no"], pa.int32()),
        "maybe": pa.array(q["maybe"], pa.int32()),
        "votes": pa.array(q["yes"] + q["no"] + q["maybe"], pa.int32()),
        "dropped_votes": pa.array(q["dropped"], pa.int32()),
        "gold": pa.array(gold, pa.string()),
        "p_yes": pa.array(q["p"], pa.float64(), mask=np.isnan(q["p"])),
        "decision": pa.array(np.array(cons.DECISIONS, dtype=object)[q["decision_code"]], pa.string()),
        "needed": pa.array(q["needed"], pa.int32()),
        "method": pa.array(np.full(coded.n_questions, method, dtype=object), pa.string()),
    }, schema=arrow_schema("votes_consensus"))
    order = pc.sort_indices(table, sort_keys=[("wnid", "ascending"), ("key", "ascending")])
    return table.take(order)


def _nullable(values: "np.ndarray") -> "pa.Array":
    import numpy as np
    import pyarrow as pa

    return pa.array(values, pa.float64(), mask=np.isnan(values))


def _worker_table(names: list[str], s: Any, reasons: "np.ndarray", method: str) -> "pa.Table":
    import pyarrow as pa
    import pyarrow.compute as pc

    from imgnet_tools.manifest.parquet import arrow_schema

    table = pa.table({
        "worker": pa.array(names, pa.string()),
        "votes": pa.array(s.votes, pa.int32()), "yes": pa.array(s.yes, pa.int32()), "no": pa.array(s.no, pa.int32()),
        "maybe": pa.array(s.maybe, pa.int32()), "gold_votes": pa.array(s.gold_votes, pa.int32()),
        "gold_accuracy": _nullable(s.gold_accuracy), "agreement": _nullable(s.agreement),
        "sensitivity": _nullable(s.sensitivity), "specificity": _nullable(s.specificity),
        "spam_score": _nullable(s.spam_score),
        "dropped": pa.array([r is not None for r in reasons], pa.bool_()),
        "drop_reason": pa.array(list(reasons), pa.string()),
        "method": pa.array([method] * len(names), pa.string()),
    }, schema=arrow_schema("votes_workers"))
    return table.take(pc.sort_indices(table, sort_keys=[("worker", "ascending")]))


def workers_path(out: Path) -> Path:
    """Where the worker table goes beside consensus table ``out``: ``NAME_workers.parquet``."""
    return out.with_name(f"{out.stem}_workers{out.suffix or '.parquet'}")


def write_consensus(result: Consensus, out: Path, workers_out: Path | None = None) -> tuple[Path, Path]:
    """Write both tables atomically; return their paths."""
    from imgnet_tools.manifest.parquet import write_table

    target_workers = workers_out or workers_path(out)
    write_table(result.questions, out, "votes_consensus")
    write_table(result.workers, target_workers, "votes_workers")
    return out, target_workers


# ---------------------------------------------------------------------------------------------
# the command


@dataclass(frozen=True, kw_only=True)
class ConsensusOptions:
    """The consensus options ``votes aggregate``, ``next`` (the recipe stage) and ``apply`` share
    (field names = CLI option names), checked when the params are made, whoever makes them."""

    method: str = "dawid-skene"
    engine: str = "auto"
    confidence: float = 0.95
    max_votes: int = 10
    gold_file: tuple[str, ...] = ()
    spam_threshold: float = WorkerPolicy.spam_threshold
    min_worker_votes: int = WorkerPolicy.min_worker_votes
    min_gold_accuracy: float = WorkerPolicy.min_gold_accuracy

    def __post_init__(self) -> None:
        self.policy().validate()

    def policy(self) -> ConsensusPolicy:
        return policy_of(self)

    def consensus_options(self) -> dict[str, Any]:
        """These options as keyword arguments (to make another params class with the same ones)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(ConsensusOptions)}


@dataclass(frozen=True)
class AggregateParams(ConsensusOptions):
    """``imgnet votes aggregate VOTES`` options (field names = CLI option names)."""

    votes: str
    out: str | None = None
    workers_out: str | None = None

    def out_path(self) -> Path:
        """``out``, or ``consensus.parquet`` beside the votes table."""
        return Path(self.out) if self.out else Path(self.votes).with_name(CONSENSUS_FILE)


def policy_of(params: Any) -> ConsensusPolicy:
    """The consensus policy of any params dataclass with the shared option fields."""
    return ConsensusPolicy(params.method, params.engine, params.confidence, params.max_votes,
                           WorkerPolicy(params.spam_threshold, params.min_worker_votes, params.min_gold_accuracy))


@dataclass
class AggregateResult:
    """Where the tables went, the counts, dropped workers and the per-synset summary."""

    votes: str
    out: str
    workers_out: str
    method: str
    answers: int
    questions: int
    workers: int
    decisions: dict[str, int]
    dropped_workers: list[str]
    synsets: list[dict[str, Any]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def aggregate(params: AggregateParams, progress: Callable[[int], None] | None = None) -> AggregateResult:
    """Aggregate the votes table and write the consensus and worker tables."""
    from imgnet_tools.votes.table import read_votes

    policy = params.policy()
    policy.validate()
    if not Path(params.votes).is_file():
        raise InputError(f"{params.votes} does not exist; import votes first (imgnet votes import FILES --votes {params.votes}).")
    t0 = time.perf_counter()
    votes = read_votes(params.votes, missing_ok=False)
    result = build_consensus(votes, policy, load_gold(params.gold_file))
    out, workers_out = write_consensus(result, params.out_path(), Path(params.workers_out) if params.workers_out else None)
    if progress is not None:
        progress(1)
    return AggregateResult(params.votes, str(out), str(workers_out), policy.method, votes.num_rows,
                           result.questions.num_rows, result.workers.num_rows, result.counts(),
                           result.dropped_workers(), result.synsets, round(time.perf_counter() - t0, 3))
