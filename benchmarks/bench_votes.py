"""Vote aggregation: 1,000,000 votes (200,000 questions x 5 votes, 100 workers), per method.

The crowd is :mod:`imgnet_tools.votes.simulate`'s: 100 workers of unequal activity (long-tailed),
most honest (accuracy 0.65-0.97, lowered on harder synsets), two always-yes and two random
spammers and an adversary; 1,000 synsets; 70% of candidates truly show their synset. The votes
are generated once and saved (untimed); every measurement runs in a fresh Python process that
loads them (untimed), warms up, then times ``repeats`` runs (median) and reports the peak memory
of the timed part (Linux: peak RSS reset through /proc/self/clear_refs after loading, so the
figure is what the method adds on top of the loaded votes).

Comparisons (ours / theirs, lower is better):

* ``dawid-skene fit``: imgnet's vectorised numpy EM vs crowd-kit's ``DawidSkene`` on the same
  integer-coded votes. Goal: ours <= 5 s.
* ``aggregate (METHOD)``: the whole of ``imgnet votes aggregate`` in memory
  (:func:`build_consensus`: latest answers, coding, fits until no more workers are dropped,
  worker measures, decisions) vs crowd-kit's bare fit of the same method: what the pipeline
  costs over the statistics alone. GLAD is crowd-kit's only and slow; it runs once, no warm-up.

Accuracy on the known truth (P(yes) > 0.5) is reported for every method in the params.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import Result

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = 200_000
VOTES_PER_QUESTION = 5
WORKERS = 100
SYNSETS = 1_000

_CHILD = r"""
import json, os, resource, statistics, sys, time, warnings
import numpy as np, pyarrow.parquet as pq
warnings.filterwarnings("ignore", message=r".*\b(inplace|copy) keyword\b.*")
votes_path, truth_path, what, repeats, warm = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.votes.aggregate import ConsensusPolicy, build_consensus
table = read_table(votes_path, "votes")
truth_doc = pq.read_table(truth_path)
truth = dict(zip(truth_doc.column("key").to_pylist(), truth_doc.column("truth").to_pylist()))
import pyarrow.compute as pc
keys = table.column("key").combine_chunks()
enc = pc.dictionary_encode(keys)
q = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
w = pc.dictionary_encode(table.column("worker").combine_chunks()).indices.to_numpy(zero_copy_only=False).astype(np.int64)
y = (table.column("answer").to_numpy() == "yes").astype(np.int64)
nq, nw = int(q.max()) + 1, int(w.max()) + 1
qtruth = np.array([truth[k] for k in enc.dictionary.to_pylist()])

def crowdkit(method):
    import pandas as pd
    from crowdkit.aggregation import GLAD, DawidSkene, MajorityVote
    df = pd.DataFrame({"task": q, "worker": w, "label": y})
    model = {"majority": MajorityVote(), "dawid-skene": DawidSkene(n_iter=100), "glad": GLAD()}[method]
    p = model.fit_predict_proba(df)
    out = np.full(nq, np.nan); out[p.index.to_numpy()] = p[1].to_numpy()
    return out, len(getattr(model, "loss_history_", [])) or None

def numpy_ds():
    from imgnet_tools.votes.dawid_skene import dawid_skene
    fit = dawid_skene(q, w, y, nq, nw)
    return fit.probas[:, 1], fit.iterations

def pipeline(method):
    r = build_consensus(table, ConsensusPolicy(method=method))
    t = r.questions
    kk = t.column("key").to_pylist()
    p = np.array([np.nan if v is None else v for v in t.column("p_yes").to_pylist()])
    acc = float(((p > 0.5) == np.array([truth[k] for k in kk])).mean())
    return acc, len(r.dropped_workers())

kind, method = what.split(":")
def once():
    if kind == "crowdkit":
        return crowdkit(method)
    if kind == "numpy":
        return numpy_ds()
    return pipeline(method)
for _ in range(warm):
    once()
try:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1])
    reset = True
except OSError:
    base, reset = 0, False
times, out = [], None
for _ in range(repeats):
    t0 = time.perf_counter(); out = once(); times.append(time.perf_counter() - t0)
if reset:
    peak = int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]) - base
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
doc = {"seconds": statistics.median(times), "times": times, "peak_mb": round(peak / 1024, 1), "peak_is_extra": reset}
if kind == "pipeline":
    doc["accuracy"], doc["dropped_workers"] = out
else:
    p, iters = out
    doc["accuracy"] = float(((p > 0.5) == qtruth).mean()); doc["iterations"] = iters
print(json.dumps(doc))
"""


def _make_votes(folder: Path) -> tuple[Path, Path, dict[str, float]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from imgnet_tools.manifest.parquet import write_table
    from imgnet_tools.votes.simulate import make_crowd, standard_workers

    crowd = make_crowd(QUESTIONS, n_synsets=SYNSETS, workers=standard_workers(WORKERS, seed=7), seed=7)
    votes = crowd.bulk_votes(VOTES_PER_QUESTION)
    write_table(votes, folder / "votes.parquet", "votes")
    pq.write_table(pa.table({"key": crowd.keys, "truth": crowd.truth}), folder / "truth.parquet")
    return folder / "votes.parquet", folder / "truth.parquet", {"votes": votes.num_rows}


def _child(votes: Path, truth: Path, what: str, repeats: int, warm: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(votes), str(truth), what, str(repeats), str(warm)],
                         capture_output=True, text=True, cwd=REPO, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed: {out.stderr[-2000:]}")
    doc: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {what}: {doc}", file=sys.stderr, flush=True)
    return doc


def run(repeats: int) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-votes-") as tmp:
        votes, truth, info = _make_votes(Path(tmp))
        base = {"votes": info["votes"], "questions": QUESTIONS, "workers": WORKERS, "synsets": SYNSETS, "repeats": repeats}
        ours = _child(votes, truth, "numpy:dawid-skene", repeats, 1)
        theirs = fit_ck = _child(votes, truth, "crowdkit:dawid-skene", repeats, 1)
        results.append(Result("votes: dawid-skene fit, 1M votes (imgnet numpy EM vs crowd-kit DawidSkene)", ours["seconds"],
                              theirs["seconds"], "s", "ours <= 5 s", higher_is_better=False,
                              params={**base, "ours": ours, "theirs": theirs}))
        for method in ("majority", "dawid-skene", "glad"):
            slow = method == "glad"
            n, warm = (1, 0) if slow else (repeats, 1)
            ours = _child(votes, truth, f"pipeline:{method}", n, warm)
            theirs = fit_ck if method == "dawid-skene" else _child(votes, truth, f"crowdkit:{method}", n, warm)
            results.append(Result(f"votes: aggregate ({method}), 1M votes (imgnet pipeline vs crowd-kit fit alone)",
                                  ours["seconds"], theirs["seconds"], "s",
                                  "dawid-skene <= 5 s" if method == "dawid-skene" else "report", higher_is_better=False,
                                  params={**base, "repeats": n, "ours": ours, "theirs": theirs}))
    return results
