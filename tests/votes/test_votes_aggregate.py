"""Aggregation on simulated crowds with known truth: methods, worker measures, adaptive consensus."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from imgnet_tools.errors import InputError
from imgnet_tools.votes import consensus as cons
from imgnet_tools.votes.aggregate import Consensus, ConsensusPolicy, build_consensus
from imgnet_tools.votes.gold import Gold
from imgnet_tools.votes.simulate import Crowd, SimWorker, make_crowd
from imgnet_tools.votes.table import empty_votes, votes_from_columns


def _accuracy(crowd: Crowd, result: Consensus) -> float:
    index = crowd.question_index()
    rows = result.questions.select(["key", "wnid", "p_yes"]).to_pylist()
    truth = np.array([crowd.truth[index[(r["key"], r["wnid"])]] for r in rows])
    p = np.array([np.nan if r["p_yes"] is None else r["p_yes"] for r in rows])
    return float(((p > 0.5) == truth).mean())


@pytest.fixture(scope="module")
def crowd_votes() -> tuple[Crowd, pa.Table]:
    """3,000 images over 10 synsets, 5 votes each, from 40 workers of unequal activity: honest
    workers of accuracies 0.65-0.97, two always-yes spammers, two random ones, an adversary."""
    crowd = make_crowd(3000, n_synsets=10, seed=5)
    return crowd, crowd.vote(list(range(3000)), 5)


def test_numpy_dawid_skene_equals_crowdkit(crowd_votes: tuple[Crowd, pa.Table]) -> None:
    _, votes = crowd_votes
    ours = build_consensus(votes, ConsensusPolicy(engine="numpy")).questions.column("p_yes").to_numpy()
    theirs = build_consensus(votes, ConsensusPolicy(engine="crowd-kit")).questions.column("p_yes").to_numpy()
    assert np.abs(ours - theirs).max() < 1e-6


def test_dawid_skene_decisions_beat_majority_vote(crowd_votes: tuple[Crowd, pa.Table]) -> None:
    crowd, votes = crowd_votes
    majority = _accuracy(crowd, build_consensus(votes, ConsensusPolicy(method="majority")))
    ds = _accuracy(crowd, build_consensus(votes, ConsensusPolicy()))
    assert ds > majority + 0.02, (ds, majority)


def test_glad_runs_on_crowdkit_and_beats_majority() -> None:
    crowd = make_crowd(400, n_synsets=4, seed=11)
    votes = crowd.vote(list(range(400)), 5)
    glad = build_consensus(votes, ConsensusPolicy(method="glad"))
    majority = build_consensus(votes, ConsensusPolicy(method="majority"))
    p = glad.questions.column("p_yes").to_numpy()
    assert ((p >= 0) & (p <= 1)).all() and set(glad.questions.column("method").to_pylist()) == {"glad"}
    assert _accuracy(crowd, glad) >= _accuracy(crowd, majority)


def test_spammers_and_the_adversary_are_found_and_dropped(crowd_votes: tuple[Crowd, pa.Table]) -> None:
    crowd, votes = crowd_votes
    workers = {r["worker"]: r for r in build_consensus(votes, ConsensusPolicy()).workers.to_pylist()}
    kinds = {w.worker: w for w in crowd.workers}
    for name, row in workers.items():
        kind = kinds[name].kind
        if kind in ("always_yes", "random"):
            assert row["dropped"] and row["drop_reason"] == "spam" and row["spam_score"] > 0.9, row
        elif kind == "adversary":
            assert row["dropped"] and row["drop_reason"] == "adversarial" and row["agreement"] < 0.5, row
        elif kinds[name].accuracy >= 0.8 and row["votes"] >= 50:
            assert not row["dropped"] and row["spam_score"] < 0.7, row
    always_yes = [r for n, r in workers.items() if kinds[n].kind == "always_yes"]
    assert all(r["yes"] == r["votes"] and r["sensitivity"] > 0.95 and r["specificity"] < 0.1 for r in always_yes)


def test_dropping_workers_is_policy(crowd_votes: tuple[Crowd, pa.Table]) -> None:
    _, votes = crowd_votes
    from imgnet_tools.votes.workers import WorkerPolicy

    lenient = build_consensus(votes, ConsensusPolicy(workers=WorkerPolicy(spam_threshold=1.0, min_worker_votes=10**6)))
    assert lenient.dropped_workers() == []
    assert set(lenient.questions.column("dropped_votes").to_pylist()) == {0}


def test_gold_measures_workers_and_fixes_its_questions() -> None:
    workers = [SimWorker("good", "honest", 0.95, 1.0), SimWorker("liar", "adversary", 0.1, 1.0),
               SimWorker("ok1", "honest", 0.85, 1.0), SimWorker("ok2", "honest", 0.85, 1.0)]
    crowd = make_crowd(200, n_synsets=2, workers=workers, seed=3)
    crowd.difficulty[:] = 0.0
    votes = crowd.vote(list(range(200)), 4)
    gold = Gold({(crowd.keys[q], crowd.wnids[q]): "yes" if crowd.truth[q] else "no" for q in range(40)})
    result = build_consensus(votes, ConsensusPolicy(), gold)
    rows = {r["worker"]: r for r in result.workers.to_pylist()}
    assert rows["good"]["gold_votes"] == 40 and rows["good"]["gold_accuracy"] > 0.85
    assert rows["liar"]["gold_accuracy"] < 0.25 and rows["liar"]["dropped"]
    q = {(r["key"], r["wnid"]): r for r in result.questions.to_pylist()}
    for (key, wnid), answer in gold.answers.items():
        assert q[(key, wnid)]["gold"] == answer and q[(key, wnid)]["decision"] == answer
        assert q[(key, wnid)]["p_yes"] == (1.0 if answer == "yes" else 0.0)


def test_maybe_is_counted_but_is_no_evidence() -> None:
    table = votes_from_columns({"key": ["a"] * 3 + ["b"] * 2, "wnid": ["n01440764"] * 5,
                                "worker": ["w1", "w2", "w3", "w1", "w2"], "answer": ["maybe"] * 3 + ["yes", "maybe"],
                                "source": ["table"] * 5, "answered_at": [None] * 5})
    rows = {r["key"]: r for r in build_consensus(table, ConsensusPolicy(method="majority")).questions.to_pylist()}
    assert (rows["a"]["maybe"], rows["a"]["votes"], rows["a"]["p_yes"], rows["a"]["decision"]) == (3, 3, None, "pending")
    assert (rows["b"]["yes"], rows["b"]["maybe"], rows["b"]["p_yes"]) == (1, 1, 1.0)


def test_questions_without_votes_are_pending_with_a_need() -> None:
    extra = pa.table({"key": ["x", "y"], "wnid": ["n01440764", "n01443537"]})
    result = build_consensus(empty_votes(), ConsensusPolicy(), extra=extra)
    rows = result.questions.to_pylist()
    assert [r["decision"] for r in rows] == ["pending", "pending"]
    # no votes anywhere: a = 0.9 assumed (DEFAULT_AGREEMENT), prior 0.5: ceil(logit(0.95) / logit(0.9)) = 2
    assert [r["needed"] for r in rows] == [2, 2]


# --- the consensus rule, by hand ----------------------------------------------------------------

def test_accuracy_from_agreement() -> None:
    assert cons.accuracy_from_agreement(0.82) == pytest.approx(0.9)
    assert cons.accuracy_from_agreement(0.5) == 0.5 and cons.accuracy_from_agreement(0.3) == 0.5
    assert cons.accuracy_from_agreement(1.0) == cons.MAX_ACCURACY


def test_decide_by_hand() -> None:
    a = cons.SynsetAgreement(pairs=100, agreement=0.82, accuracy=0.9, prior_yes=0.5)  # log-odds 2.197 per vote
    p = np.array([0.97, 0.02, 0.5, 0.5, 0.8, 0.6, np.nan])
    votes = np.array([3, 3, 2, 10, 1, 9, 0])
    decision, needed = cons.decide(p, votes, np.full(7, -1), np.zeros(7, dtype=np.int64), [a], 0.95, 10)
    assert [cons.DECISIONS[d] for d in decision] == ["yes", "no", "pending", "no_consensus", "pending", "no_consensus", "pending"]
    # 0.5: (2.944 - 0) / 2.197 -> 2 votes; 0.8: (2.944 - 1.386) / 2.197 -> 1;
    # 0.6: (2.944 - 0.405) / 2.197 -> 2, and 9 + 2 > 10: no consensus
    assert needed.tolist() == [0, 0, 2, 0, 1, 0, 2]
    assert math.log(0.95 / 0.05) / math.log(9) == pytest.approx(1.34, abs=0.01)


def test_hard_synsets_need_more_votes_than_easy_ones() -> None:
    synset = np.array([0] * 50 + [1] * 50)
    yes = np.array([5] * 50 + [4] * 50)  # synset 0: workers agree; synset 1: 4 against 1
    no = np.array([0] * 50 + [1] * 50)
    agreement = cons.synset_agreement(synset, 2, yes, no, np.full(100, 0.7))
    easy, hard = agreement
    assert easy.agreement > 0.95 and hard.agreement == pytest.approx(0.6, abs=0.01)
    assert easy.accuracy > 0.97 and hard.accuracy == pytest.approx((1 + math.sqrt(0.2)) / 2, abs=0.01)
    _, needed = cons.decide(np.full(100, 0.7), np.full(100, 1), np.full(100, -1), synset, agreement, 0.95, 10)
    assert needed[:50].max() < needed[50:].min()


def test_bad_policies_are_input_errors() -> None:
    for policy in (ConsensusPolicy(method="vote"), ConsensusPolicy(confidence=0.4), ConsensusPolicy(max_votes=0),
                   ConsensusPolicy(method="glad", engine="numpy")):
        with pytest.raises(InputError):
            build_consensus(empty_votes(), policy)


# --- the adaptive loop ---------------------------------------------------------------------------

def test_adaptive_rounds_reach_the_confidence_with_fewer_votes_than_ten_per_image() -> None:
    """ImageNet's loop on a simulated crowd: ask what `next` says is needed, until nothing is
    pending; compare with asking everyone 10 times."""
    n = 1500
    crowd = make_crowd(n, n_synsets=6, seed=21)
    index = crowd.question_index()
    extra = pa.table({"key": crowd.keys, "wnid": crowd.wnids})
    policy = ConsensusPolicy()
    votes = empty_votes()
    for _ in range(25):
        result = build_consensus(votes, policy, extra=extra)
        t = result.questions
        pending = [(index[(k, w)], need) for k, w, d, need in zip(*(t.column(c).to_pylist() for c in ("key", "wnid", "decision", "needed")))
                   if d == "pending"]
        if not pending:
            break
        votes = pa.concat_tables([votes, crowd.vote([q for q, _ in pending], [need for _, need in pending])])
    assert result.counts()["pending"] == 0
    rows = result.questions.to_pylist()
    decided = [r for r in rows if r["decision"] in ("yes", "no")]
    right = sum((r["decision"] == "yes") == bool(crowd.truth[index[(r["key"], r["wnid"])]]) for r in decided)
    assert right / len(decided) >= 0.95  # the target confidence, met on the truth
    assert all(r["votes"] + r["dropped_votes"] <= 10 for r in rows)
    assert len(decided) / n >= 0.75  # the rest: no_consensus (hard synsets, as in ImageNet)
    adaptive = votes.num_rows
    fixed = make_crowd(n, n_synsets=6, seed=21).vote(list(range(n)), 10)
    assert adaptive < 0.7 * fixed.num_rows, (adaptive, fixed.num_rows)
