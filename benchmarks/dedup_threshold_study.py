"""Threshold study for ``imgnet dedup``: precision and recall of "phash distance <= t" per t.

    .venv/bin/python -m benchmarks.dedup_threshold_study [--bases 1000] [--seed 0] [--max 16]

Generates ``--bases`` distinct photo-like images and six near-duplicate versions of each
(imgnet_tools.dedup.study.VARIANTS: resized x0.5 and x1.5, recompressed at q40, 3% centre crop,
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
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from imgnet_tools.dedup.study import (
        recall_by_variant,
        threshold_study,
        write_study_set,
    )
    from imgnet_tools.images.phash import phash_file

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
