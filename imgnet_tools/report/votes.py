"""The report's crowd-votes sections, shown only when the run has a votes table.

``votes``            votes per synset (yes / no / maybe, each worker's latest answer), with the
                     consensus decisions per synset when a consensus table is there too.
``votes-consensus``  the P(yes) histogram of the consensus table and the worker table (gold
                     accuracy, agreement, spam score, dropped), worst workers first.

The summaries are computed here from the schema-checked tables (:func:`summarise`), in Arrow, so
a million votes never become Python rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgnet_tools.report.figures import Series, bar_chart, empty_figure

HIST_BINS = 20
MAX_SYNSET_BARS = 60
MAX_WORKER_ROWS = 50
KINDS = ("votes", "votes_consensus", "votes_workers")


def summarise(found: dict[str, Path]) -> dict[str, Any] | None:
    """What the two sections draw, from the votes, consensus and worker tables found (or None)."""
    import pyarrow.compute as pc

    from imgnet_tools.manifest.parquet import read_table
    from imgnet_tools.votes.table import latest_answers

    if "votes" not in found:
        return None
    latest = latest_answers(read_table(found["votes"], "votes", columns=["key", "wnid", "worker", "answer", "answered_at"]))
    per = latest.group_by(["wnid", "answer"]).aggregate([("key", "count")]).to_pylist()
    summary: dict[str, Any] = {"answers": latest.num_rows, "workers": len(pc.unique(latest.column("worker"))),
                               "by_synset": per, "decisions": [], "p_yes": [], "worker_rows": []}
    if "votes_consensus" in found:
        t = read_table(found["votes_consensus"], "votes_consensus", columns=["wnid", "p_yes", "decision"])
        summary["decisions"] = t.group_by(["wnid", "decision"]).aggregate([([], "count_all")]).to_pylist()
        p = t.column("p_yes").drop_null().to_numpy()
        import numpy as np

        summary["p_yes"] = np.histogram(p, bins=HIST_BINS, range=(0.0, 1.0))[0].tolist()
    if "votes_workers" in found:
        summary["worker_rows"] = read_table(found["votes_workers"], "votes_workers").to_pylist()
    return summary


def _by_synset(data: Any) -> tuple[list[str], dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    votes: dict[str, dict[str, int]] = {}
    for row in data.votes["by_synset"]:
        votes.setdefault(row["wnid"], {})[row["answer"]] = row["key_count"]
    decisions: dict[str, dict[str, int]] = {}
    for row in data.votes["decisions"]:
        decisions.setdefault(row["wnid"], {})[row["decision"]] = row["count_all"]
    return sorted(set(votes) | set(decisions)), votes, decisions


def draw_votes(data: Any, _: int) -> tuple[Any, str]:
    wnids, votes, _decisions = _by_synset(data)
    title = f"Crowd votes per synset ({data.votes['answers']:,} answers from {data.votes['workers']:,} workers)"
    if not wnids:
        return empty_figure(title, "the votes table is empty"), ""
    shown = sorted(wnids, key=lambda w: -sum(votes.get(w, {}).values()))[:MAX_SYNSET_BARS]
    if len(wnids) > MAX_SYNSET_BARS:
        title += f"; the {MAX_SYNSET_BARS} synsets with most votes"
    series = [Series(a, [votes.get(w, {}).get(a, 0) for w in sorted(shown)]) for a in ("yes", "no", "maybe")]
    return bar_chart(title, sorted(shown), series), ""


def table_votes(data: Any) -> str:
    from imgnet_tools.report.sections import _table

    wnids, votes, decisions = _by_synset(data)
    rows = [[w] + [votes.get(w, {}).get(a, 0) for a in ("yes", "no", "maybe")]
            + [decisions.get(w, {}).get(d, 0) for d in ("yes", "no", "pending", "no_consensus")] for w in wnids]
    head = ["wnid", "yes votes", "no votes", "maybe votes", "decided yes", "decided no", "pending", "no consensus"]
    note = "" if data.votes["decisions"] else "<p>No consensus table found: run imgnet votes aggregate (or next) for decisions.</p>"
    return note + _table(rows, head)


def draw_consensus(data: Any, _: int) -> tuple[Any, str]:
    title = "Consensus: questions by P(yes)"
    if not data.votes["p_yes"]:
        return (empty_figure(title, "no consensus table found"),
                "No consensus table found beside the votes: run imgnet votes aggregate VOTES.")
    step = 1.0 / HIST_BINS
    labels = [f"{i * step:.2f}-{(i + 1) * step:.2f}" for i in range(HIST_BINS)]
    return bar_chart(title, labels, [Series("questions", data.votes["p_yes"])]), ""


def table_consensus(data: Any) -> str:
    from imgnet_tools.report.sections import _table

    def fmt(v: Any) -> Any:
        return "" if v is None else round(v, 3) if isinstance(v, float) else v

    rows = sorted(data.votes["worker_rows"], key=lambda r: (not r["dropped"], -(r["spam_score"] or 0), r["worker"]))
    body = [[r["worker"], r["votes"], fmt(r["gold_accuracy"]), fmt(r["agreement"]), fmt(r["spam_score"]),
             "dropped (" + r["drop_reason"] + ")" if r["dropped"] else "kept"] for r in rows[:MAX_WORKER_ROWS]]
    head = ["worker", "answers", "gold accuracy", "agreement", "spam score", "votes"]
    more = f"<p>{len(rows) - MAX_WORKER_ROWS} more workers not shown.</p>" if len(rows) > MAX_WORKER_ROWS else ""
    return (_table(body, head) + more) if rows else "<p>No worker table found.</p>"
