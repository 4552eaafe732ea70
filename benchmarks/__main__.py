"""Run benchmarks: ``python -m benchmarks [NAME ...] [--all] [--repeats N] [--json OUT]``.

Each ``benchmarks/bench_NAME.py`` defines ``run(repeats: int) -> list[common.Result]``. The runner
prints ours, theirs and the ratio for every comparison, with the goal the issue sets. A benchmark
with options of its own defines ``main(argv) -> int`` too: ``python -m benchmarks NAME --option ...``
hands the options to it (``scale --sizes 10000,100000``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import pkgutil
import sys
from pathlib import Path

from benchmarks.common import machine


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).parent
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(names)}")
    ap.add_argument("--all", action="store_true", help="run every benchmark")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median is reported)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) > 1 and argv[0] in names and argv[1].startswith("-"):
        own = importlib.import_module(f"benchmarks.bench_{argv[0]}")
        if hasattr(own, "main"):
            return int(own.main(argv[1:]))
    args = ap.parse_args(argv)
    chosen = names if args.all or not args.names else args.names
    unknown = set(chosen) - set(names)
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    rows = []
    for name in chosen:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"== {name}", file=sys.stderr, flush=True)
        for result in module.run(args.repeats):
            doc = result.to_dict()
            rows.append(doc)
            better = "higher" if result.higher_is_better else "lower"
            print(f"{result.name}: ours {result.ours:.4g} {result.unit}, theirs {result.theirs:.4g} {result.unit}, "
                  f"ratio {result.ratio:.3f} ({better} is better; goal {result.goal})", flush=True)
    report = {"date": datetime.date.today().isoformat(), "machine": machine(), "results": rows}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
