"""``imgnet synsets build --scope all`` against a bare nltk traversal of every noun and its hypernyms.

Ours: :func:`imgnet_tools.synsets.build.build_synsets` with ``--scope all`` -- the whole build:
a fresh nltk reader, every noun parsed once, the graph (depths, paths, descendants, primary
parents), and every output written (synsets.parquet, words.txt, wordnet.is_a.txt, gloss.txt,
tree.json, build.json) into a temporary folder.

Theirs: the bare traversal ``for s in reader.all_synsets("n"): s.hypernyms()`` with a fresh
``nltk.corpus.reader.wordnet.WordNetCorpusReader`` on the same staged WordNet 3.0 files (so no
nltk cache favours either side). Two comparisons:

* ``vs_nltk_reader``: theirs uses nltk's stock reader (what ``nltk.corpus.wordnet`` builds, which
  also reads ``index.sense`` twice for its multilingual map);
* ``vs_same_reader``: theirs uses the same reader class ours uses (stock minus that map), so the
  ratio isolates everything else ours does.

imgnet keeps the last WordNet read per process; the benchmark clears it before every run of ours.
Setup (locating and staging WordNet) is untimed; one warm-up run each; a full garbage collection
before every timed run (untimed) so that one side's leftovers never cost the other; median of N.
Goal (issue): ours <= 1.3x the bare traversal.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import Result

GOAL = "<= 1.3 (ours / bare nltk traversal)"


def _median(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn()`` (CPU time is steadier on a shared machine)."""
    gc.collect()
    fn()  # warm-up (file cache, imports)
    wall, cpu = [], []
    for _ in range(repeats):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def run(repeats: int = 3) -> list[Result]:
    from imgnet_tools.synsets import wordnet
    from imgnet_tools.synsets.build import BuildParams, build_synsets

    located = wordnet.locate()  # untimed: find and stage WordNet once

    def bare(lean: bool) -> Callable[[], int]:
        def traverse() -> int:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reader = wordnet.open_reader(located, lean=lean)
            return sum(len(s.hypernyms()) for s in reader.all_synsets("n"))
        return traverse

    with tempfile.TemporaryDirectory(prefix="bench-synsets-") as tmp:
        params = BuildParams(out=str(Path(tmp) / "all"), scope="all", overwrite=True)
        def ours() -> None:
            wordnet.clear_cache()  # a fresh parse every run: no cache of ours favours ours
            build_synsets(params)

        ours = _median(ours, repeats)
        stock = _median(bare(lean=False), repeats)
        same = _median(bare(lean=True), repeats)
    with warnings.catch_warnings():  # untimed: name the WordNet version that was measured
        warnings.simplefilter("ignore")
        source = wordnet.check_version(wordnet.open_reader(located), located.source, allow_other=False)
    common = {"synsets": 82115, "repeats": repeats, "wordnet": source.describe(),
              "ours": "build_synsets(scope=all), all outputs written", "ours_cpu_s": round(ours[1], 3)}
    return [
        Result("synsets_build_vs_nltk_reader", ours[0], stock[0], "s", GOAL, higher_is_better=False,
               params={**common, "theirs": "stock WordNetCorpusReader + all_synsets('n') + hypernyms()",
                       "theirs_cpu_s": round(stock[1], 3), "cpu_ratio": round(ours[1] / stock[1], 3)}),
        Result("synsets_build_vs_same_reader", ours[0], same[0], "s", GOAL, higher_is_better=False,
               params={**common, "theirs": "imgnet's reader class (no OMW map) + all_synsets('n') + hypernyms()",
                       "theirs_cpu_s": round(same[1], 3), "cpu_ratio": round(ours[1] / same[1], 3)}),
    ]
