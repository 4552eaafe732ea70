"""Threshold study for ``imgnet dedup``: precision and recall of "phash distance <= t" per t.

    .venv/bin/python -m benchmarks.dedup_threshold_study [--bases 1000] [--seed 0] [--max 16]

Generates ``--bases`` distinct photo-like images and six near-duplicate versions of each
(tests.imagegen.VARIANTS: resized x0.5 and x1.5, recompressed at q40, 3% centre crop,
5% corner crop, resized x0.7 + q60 + 2% crop), hashes them with imgnet's pHash, and compares
every pair (all pairs on purpose: the answer must not depend on the search index it tunes).
Pair precision = true pairs found / pairs found; pair recall = true pairs found / true pairs
(all pairs of versions of one base, so a corner crop vs a 1.5x enlargement counts too); the last
columns give, per variant, the share within t of its original. The default threshold (8) and
its figures in imgnet_tools/dedup/run.py come from this output.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


@dataclass(frozen=True)
class ThresholdRow:
    """Precision and recall of "Hamming distance <= threshold" over all pairs of a study set."""

    threshold: int
    true_pairs_found: int
    true_pairs: int
    false_pairs_found: int
    distinct_pairs: int

    @property
    def recall(self) -> float:
        return self.true_pairs_found / self.true_pairs if self.true_pairs else float("nan")

    @property
    def precision(self) -> float:
        found = self.true_pairs_found + self.false_pairs_found
        return self.true_pairs_found / found if found else 1.0


def threshold_study(hashes: np.ndarray, groups: np.ndarray, max_threshold: int = 16) -> list[ThresholdRow]:
    """Precision/recall per threshold over every pair of ``hashes`` (``groups``: same base, same id).

    All pairs are compared here on purpose: the study sets are small and the answer must not
    depend on the search index it is meant to tune.
    """
    import numpy as np

    h = np.asarray(hashes, dtype=np.int64).view(np.uint64)
    g = np.asarray(groups)
    i, j = np.triu_indices(len(h), k=1)
    dist = np.bitwise_count(h[i] ^ h[j])
    same = g[i] == g[j]
    rows = []
    for t in range(max_threshold + 1):
        hit = dist <= t
        rows.append(ThresholdRow(t, int((hit & same).sum()), int(same.sum()), int((hit & ~same).sum()), int((~same).sum())))
    return rows


def recall_by_variant(hashes: np.ndarray, groups: np.ndarray, variants: list[str], threshold: int) -> dict[str, float]:
    """Share of each variant kind whose distance to its original is <= ``threshold``."""
    import numpy as np

    h = np.asarray(hashes, dtype=np.int64).view(np.uint64)
    g = np.asarray(groups)
    names = np.asarray(variants)
    originals = {int(g[k]): h[k] for k in np.flatnonzero(names == "original")}
    out = {}
    for name in sorted(set(variants) - {"original"}):
        idx = np.flatnonzero(names == name)
        dist = np.array([int(np.bitwise_count(h[k] ^ originals[int(g[k])])) for k in idx])
        out[name] = float((dist <= threshold).mean()) if len(dist) else float("nan")
    return out


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from imgnet_tools.images.phash import phash_file
    from tests.imagegen import write_study_set

    ap = argparse.ArgumentParser(prog="python -m benchmarks.dedup_threshold_study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bases", type=int, default=1000, help="distinct base images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max", type=int, default=16, help="largest threshold to report")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dedup-study-") as tmp:
        t0 = time.perf_counter()
        rows = write_study_set(Path(tmp), args.bases, seed=args.seed)
        hashes = np.array([phash_file(p) for p, _, _ in rows], dtype=np.int64)
        print(f"{len(rows)} images ({args.bases} bases x {len(rows) // args.bases} versions), "
              f"generated and hashed in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    groups = np.array([b for _, b, _ in rows])
    variants = [v for _, _, v in rows]
    table = threshold_study(hashes, groups, args.max)
    names = sorted(set(variants) - {"original"})
    print(f"distinct pairs: {table[0].distinct_pairs}, true pairs: {table[0].true_pairs}")
    print("t  precision  recall  false_pairs  " + "  ".join(names))
    for row in table:
        per = recall_by_variant(hashes, groups, variants, row.threshold)
        print(f"{row.threshold:<2} {row.precision:9.4f} {row.recall:7.4f} {row.false_pairs_found:12d}  "
              + "  ".join(f"{per[n]:{len(n)}.3f}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
