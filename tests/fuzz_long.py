"""The long fuzz run (``scripts/fuzz.sh`` drives it): batches of mutated files, for as long as asked.

Each batch of ``--batch`` cases (a seeded ``random``: batch ``b`` of run seed ``s`` is always the
same files) is checked twice:

1. file by file in this process (:func:`tests.fuzzing.check_file`: verify with --fix, dedup's
   hash, shard's --resize-short), and every JPEG verify calls ``ok`` decoded by DALI on the CPU;
2. as a folder through the real stages on the local process pool (scan -> verify --fix -> dedup ->
   shard --resize-short), where a decoder that kills its worker shows up as ``crashed_decoder``.

Every broken property is written to ``OUT/findings/`` (the file and what broke). Before each
in-process check the case's path goes to ``OUT/current``, so that when a decoder takes this
whole process down, ``scripts/fuzz.sh`` keeps that file as a crash and starts again with the next
batch. ``OUT/stats.jsonl`` gets one line per batch; the summary is printed as JSON at the end.

    python -m tests.fuzz_long --minutes 30 --seed 1 --out /tmp/fuzz
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from tests import fuzzing


def _dali_decodes(data: bytes) -> str | None:
    """None when DALI's CPU decoder takes ``data``, else its error's first line."""
    return fuzzing.dali_decode_error(data)


def _finding(out: Path, case: Path, what: str, problems: list[str]) -> None:
    folder = out / "findings"
    folder.mkdir(exist_ok=True)
    shutil.copy(case, folder / case.name)
    (folder / f"{case.name}.txt").write_text(f"{what}\n" + "\n".join(problems) + "\n")


def _stages(folder: Path, out: Path) -> list[str]:
    """The batch through the real stages; the problems found (empty when the property holds)."""
    from imgnet_tools.dedup.run import DedupParams, dedup
    from imgnet_tools.images.check import REASON_ORDER
    from imgnet_tools.images.scan import ScanParams, scan
    from imgnet_tools.images.verify import VerifyParams, verify
    from imgnet_tools.manifest.parquet import read_table
    from imgnet_tools.shards.write import ShardParams, shard

    work = folder / "work"
    manifest = work / "manifest.parquet"
    problems = []
    try:
        scan(ScanParams(src=(str(folder / "src"),), out=str(work), chunk_rows=64, workers=2))
        verify(VerifyParams(manifest=str(manifest), fix=str(folder / "fixed"), max_pixels=4_000_000, chunk_rows=64,
                            workers=2, decode_timeout=30))
        dedup(DedupParams(manifest=str(manifest), chunk_rows=64, workers=2, decode_timeout=30))
        result = shard(ShardParams(manifest=str(manifest), out=str(folder / "shards"), size=64, resize_short=24,
                                   workers=2, decode_timeout=30))
        rows = read_table(manifest, "manifest").to_pylist()
    except Exception as exc:  # noqa: BLE001 - the property under test: a stage must not raise
        return [f"a stage raised {type(exc).__name__}: {exc}"]
    for row in rows:
        if row["status"] not in ("ok", "fixed", "rejected", "duplicate") or (
                row["reason"] is not None and row["reason"] not in REASON_ORDER):
            problems.append(f"{row['source_path']}: status {row['status']} reason {row['reason']}")
        if row["reason"] in ("internal_error", "crashed_decoder", "timeout"):
            problems.append(f"{row['source_path']}: {row['reason']} {row['detail']}")
            _finding(out, Path(row["source_path"]), "stage row", [f"{row['reason']}: {row['detail']}"])
    if result.failed:
        problems.append(f"shard failed on usable rows: {result.failed[:3]}")
    return problems


def run_batch(out: Path, seed: int, batch: int, size: int, dali: bool) -> dict[str, Any]:
    """One batch; its counts."""
    rng = random.Random(seed * 1_000_003 + batch)
    names = sorted(fuzzing.seeds())
    folder = out / "batch"
    shutil.rmtree(folder, ignore_errors=True)
    src = folder / "src" / "n01440764"
    src.mkdir(parents=True)
    (folder / "fixed-one").mkdir()
    counts = {"batch": batch, "cases": 0, "problems": 0, "dali_checked": 0, "ok": 0, "fixable": 0, "rejected": 0}
    current = out / "current"
    for i in range(size):
        seed_name = rng.choice(names)
        ops = fuzzing.random_ops(rng, names)
        case = fuzzing.write_case(src, i, seed_name, fuzzing.mutate(fuzzing.seeds()[seed_name], ops))
        current.write_text(f"{case}\n{seed_name} with {fuzzing.describe(ops)}\n")
        problems = fuzzing.check_file(case, folder / "fixed-one")
        from imgnet_tools.images.check import Policy, check_image

        data = case.read_bytes()
        status = check_image(data, case.name, Policy(max_pixels=4_000_000)).status(Policy())
        counts[status] = counts.get(status, 0) + 1
        if dali and status == "ok" and data[:2] == b"\xff\xd8":
            counts["dali_checked"] += 1
            error = _dali_decodes(data)
            if error:
                problems.append(f"DALI refuses a JPEG verify calls ok: {error}")
        counts["cases"] += 1
        if problems:
            counts["problems"] += 1
            _finding(out, case, f"{seed_name} with {fuzzing.describe(ops)}", problems)
    current.write_text(f"{src}\nthe stages over batch {batch}\n")
    stage_problems = _stages(folder, out)
    counts["stage_problems"] = len(stage_problems)
    if stage_problems:
        (out / "findings").mkdir(exist_ok=True)
        (out / "findings" / f"batch-{seed}-{batch}.txt").write_text("\n".join(stage_problems) + "\n")
    current.unlink()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--first-batch", type=int, default=0)
    parser.add_argument("--batch", type=int, default=300)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-dali", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    dali = not args.no_dali
    if dali:
        try:
            import nvidia.dali  # noqa: F401
        except ImportError:
            dali = False
    deadline = time.monotonic() + 60 * args.minutes
    batch = args.first_batch
    totals: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = run_batch(args.out, args.seed, batch, args.batch, dali)
        counts["seed"] = args.seed
        with open(args.out / "stats.jsonl", "a") as fh:
            fh.write(json.dumps(counts) + "\n")
        for name, value in counts.items():
            if name not in ("batch", "seed"):
                totals[name] = totals.get(name, 0) + value
        batch += 1
    print(json.dumps({"seed": args.seed, "batches": batch - args.first_batch, **totals}))
    return 1 if totals.get("problems") or totals.get("stage_problems") else 0


if __name__ == "__main__":
    sys.exit(main())
