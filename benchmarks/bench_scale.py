"""Scale: scan -> verify -> dedup -> shard on generated pools of N real JPEGs, and a 14.2M-row simulation.

``python -m benchmarks scale [--sizes 10000,100000] [--ray] [--ray-sizes 10000] [--simulate ROWS[,ROWS]] [--json OUT]``

Real part: for each N a cached pool of N distinct small JPEGs (``scale_tools.ensure_pool``,
untimed) goes through the four stages as the user runs them, ``imgnet`` subprocesses with
``--workers 2`` (local pool). For each stage and N: wall time, rows/s, and the peak RSS of the
driver, of the largest worker and of the whole process tree (``/proc`` sampled every 0.2 s, peaks
from the kernel's VmHWM). ``--ray`` runs the same stages with ``--executor ray --workers 2`` at
``--ray-sizes``. Goals (issue 12): driver peak at the largest N <= 1.5x that at the reference N
(100k, or the smallest N when 100k is the largest) and <= 1.5 GiB; rows/s at the largest N >=
0.9x the reference's; Ray >= 0.8x the local pool.

Simulated part (``--simulate ROWS``): a synthetic manifest (no files; planted exact and near
duplicates; written untimed, cached) through dedup's real global step (``dedup.run._load`` into
its compact columns, then ``dedup.run._search``: exact and near search, clusters, keep policy) and
shard's real planning (``shards.plan.select_manifest``, ``order``, ``plan_shards``), each in a
child process whose peak RSS is sampled. Goal: peak <= 4 GiB. Planted copies found are checked.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file (the simulate children): make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import scale_tools as tools  # noqa: E402
from benchmarks.common import Result, machine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
STAGES = ("scan", "verify", "dedup", "shard")
DEFAULT_SIZES = (10_000, 100_000)
GIB = 1024.0
RSS_GOAL_RATIO, RSS_GOAL_MIB, RATE_GOAL, RAY_GOAL, SIM_GOAL_MIB = 1.5, 1.5 * GIB, 0.9, 0.8, 4 * GIB


def log(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _imgnet() -> str:
    here = Path(sys.executable).parent / "imgnet"
    return str(here) if here.exists() else "imgnet"


def measure(cmd: list[str], label: str) -> dict[str, Any]:
    """Run ``cmd`` with its tree's RSS sampled; wall time, peaks, and its ``--json`` output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=_env())
        sampler = tools.TreeSampler(proc.pid).start()
        _, status, usage = os.wait4(proc.pid, 0)  # its rusage: it and every child it waited for
        wall = time.perf_counter() - t0
        code = proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    if code != 0:
        raise RuntimeError(f"{label}: {' '.join(cmd)} exited {code}: {errors[-2000:]}")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = {"stdout": text[-2000:]}
    return {"wall_s": round(wall, 2), **sampler.summary(), "tree_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "output": doc}


RAY_PROBE = """
import time
t0 = time.perf_counter()
import ray
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

@ray.remote
def warm():
    import imgnet_tools.images.verify  # what a stage's task imports first
    return 0

ray.get([warm.remote() for _ in range(2)])
ray.shutdown()
print(round(time.perf_counter() - t0, 2))
"""


def ray_fixed_cost() -> float:
    """Seconds to start a local Ray with 2 CPUs, run one task per worker and shut it down: the fixed
    cost every ``--executor ray`` run on one machine pays, whatever N."""
    done = subprocess.run([sys.executable, "-c", RAY_PROBE], capture_output=True, text=True, env=_env(), check=True)
    return float(done.stdout.split()[-1])


def stage_commands(pool: Path, run: Path, executor: str) -> dict[str, list[str]]:
    exe = ["--executor", executor, "--workers", "2", "--json"]
    manifest = str(run / "manifest.parquet")
    imgnet = _imgnet()
    return {"scan": [imgnet, "scan", str(pool), "--out", str(run), "--preset", "ilsvrc2012", *exe],
            "verify": [imgnet, "verify", manifest, *exe],
            "dedup": [imgnet, "dedup", manifest, *exe],
            "shard": [imgnet, "shard", manifest, "--out", str(run / "shards"), *exe]}


def run_size(n: int, executor: str, only: tuple[str, ...] = STAGES) -> dict[str, Any]:
    """The four stages on the pool of ``n`` images, from scratch; per-stage measurements (of the stages in
    ``only``: the earlier ones run untimed, to make their inputs; the later ones not at all)."""
    pool = tools.ensure_pool(n, log=log)
    run = tools.CACHE / "runs" / f"{n}-{executor}"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    stages = {}
    for stage, cmd in stage_commands(pool, run, executor).items():
        if stage not in only:
            if STAGES.index(stage) < max(STAGES.index(s) for s in only):
                log(f"{executor} N={n}: {stage} (untimed input) ...")
                subprocess.run(cmd, stdout=subprocess.DEVNULL, env=_env(), check=True)
            continue
        log(f"{executor} N={n}: {stage} ...")
        got = measure(cmd, f"{stage} N={n}")
        got["rows_per_s"] = round(n / got["wall_s"], 1)
        got["output"] = _brief(stage, got["output"])
        stages[stage] = got
        log(f"  {stage}: {got['wall_s']} s, {got['rows_per_s']} rows/s, driver {got['driver_peak_mib']} MiB, "
            f"worker {got['worker_peak_mib']} MiB, sum {got['sum_peak_mib']} MiB")
    shutil.rmtree(run, ignore_errors=True)
    return {"n": n, "executor": executor, "stages": stages}


def _brief(stage: str, doc: dict[str, Any]) -> dict[str, Any]:
    """What a stage's --json said that matters here (row counts, duplicates found)."""
    wanted = {"scan": ("rows", "status"), "verify": ("rows", "status"),
              "dedup": ("rows", "candidates", "duplicates", "exact_duplicates", "near_duplicates", "hash_seconds",
                        "search_seconds"),
              "shard": ("samples", "shards", "bytes")}[stage]
    return {k: doc[k] for k in wanted if k in doc}


# --- the simulated part -------------------------------------------------------------------------------

def _child_dedup(manifest: str, work: str) -> dict[str, Any]:
    """In a child: dedup's global step on the manifest (every row already hashed)."""
    import numpy as np

    from imgnet_tools.dedup.run import DedupParams, _load, _search
    from imgnet_tools.manifest.parts import PartStore
    from imgnet_tools.manifest.stream import chunk_rows_for, table_info

    rows = table_info(manifest, "manifest").rows
    size = chunk_rows_for(rows, hi=1024)
    params = DedupParams(manifest, workers=2)
    t0 = time.perf_counter()
    cols = _load(manifest, size, PartStore(Path(work)), rows)  # an empty store: no hashes made this run
    t1 = time.perf_counter()
    clusters = _search(params, cols, manifest, size)
    t2 = time.perf_counter()
    dups = clusters.keeper >= 0
    return {"rows": rows, "load_s": round(t1 - t0, 2), "search_s": round(t2 - t1, 2),
            "candidates": int(cols.candidate.sum()), "clustered_rows": len(clusters.rows),
            "duplicates": int(dups.sum()), "exact": int((clusters.kind_exact & dups).sum()),
            "near": int((~clusters.kind_exact & dups).sum()),
            "compact_bytes_per_row": round(sum(a.nbytes for a in (cols.candidate, cols.phash, cols.sha_hi, cols.sha_lo,
                                                                   cols.has_sha, cols.area, cols.label, cols.split))
                                           / max(rows, 1), 1),
            "planted_near_found": _planted_found(clusters, rows, tools.NEAR_OFFSET, np),
            "planted_exact_found": _planted_found(clusters, rows, tools.EXACT_OFFSET, np)}


def _planted_found(clusters: Any, rows: int, offset: int, np: Any) -> int:
    """Planted copies (row ``block start + offset``) that the search put in their original's cluster."""
    starts = np.arange(0, rows - offset, tools.PLANT_BLOCK, dtype=np.int64)
    order = np.argsort(clusters.rows)
    ranked, cluster = clusters.rows[order], clusters.cluster[order]

    def cluster_of(wanted: Any) -> Any:
        at = np.minimum(np.searchsorted(ranked, wanted), max(len(ranked) - 1, 0))
        if not len(ranked):
            return np.full(len(wanted), -1)
        return np.where(ranked[at] == wanted, cluster[at], -1)

    original, copy = cluster_of(starts), cluster_of(starts + offset)
    return int(((original >= 0) & (original == copy)).sum())


def _child_plan(manifest: str, work: str) -> dict[str, Any]:
    """In a child: shard's selection and planning (1,000 samples a shard, shuffled)."""
    from imgnet_tools.shards.plan import order, plan_shards, select_manifest

    t0 = time.perf_counter()
    selection = select_manifest(manifest, Path(work) / "selection.arrow", seed=0)
    t1 = time.perf_counter()
    by_split = order(selection, shuffle=True)
    plans = plan_shards(by_split, selection.cost, 1000, None, "{split}")
    t2 = time.perf_counter()
    return {"rows": selection.rows, "select_s": round(t1 - t0, 2), "plan_s": round(t2 - t1, 2), "shards": len(plans),
            "selection_file_mib": round(os.path.getsize(selection.path) / 2**20, 1),
            "compact_bytes_per_row": round(sum(a.nbytes for a in (selection.split_code, selection.shuffle_hash,
                                                                   selection.cost, selection.label))
                                           / max(selection.rows, 1), 1)}


def simulate(rows: int) -> dict[str, Any]:
    """The synthetic manifest of ``rows`` rows through dedup's search and shard planning."""
    folder = tools.CACHE / f"sim-{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    manifest = tools.write_synthetic_manifest(folder / "manifest.parquet", rows, log=log)
    made = round(time.perf_counter() - t0, 1)
    log(f"synthetic manifest of {rows} rows ready ({made} s, {manifest.stat().st_size / 2**20:.0f} MiB)")
    out: dict[str, Any] = {"rows": rows, "manifest_mib": round(manifest.stat().st_size / 2**20, 1)}
    for part in ("dedup", "plan"):
        work = folder / f"work-{part}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        log(f"simulate {rows}: {part} ...")
        got = measure([sys.executable, str(Path(__file__).resolve()), "--child", part, str(manifest), str(work)],
                      f"simulate {part}")
        got["result"] = got.pop("output")
        shutil.rmtree(work, ignore_errors=True)
        out[part] = got
        log(f"  {part}: {got['wall_s']} s, peak {got['driver_peak_mib']} MiB (tree {got['sum_peak_mib']} MiB): "
            f"{got['result']}")
    return out


# --- goals ----------------------------------------------------------------------------------------------

def goals(local: list[dict[str, Any]], rays: list[dict[str, Any]], sims: list[dict[str, Any]]) -> list[Result]:
    results = []
    if len(local) >= 2:
        by_n = {r["n"]: r for r in local}
        big = max(by_n)
        ref = 100_000 if 100_000 in by_n and big > 100_000 else min(by_n)
        for stage in by_n[big]["stages"]:
            a, b = by_n[big]["stages"][stage], by_n[ref]["stages"][stage]
            results.append(Result(f"scale {stage} driver peak RSS N={big} vs N={ref}", a["driver_peak_mib"],
                                  b["driver_peak_mib"], "MiB", f"ratio <= {RSS_GOAL_RATIO} and ours <= {RSS_GOAL_MIB:.0f} MiB",
                                  False, {"n": big, "reference_n": ref}))
            results.append(Result(f"scale {stage} rows/s N={big} vs N={ref}", a["rows_per_s"], b["rows_per_s"],
                                  "rows/s", f"ratio >= {RATE_GOAL}", True, {"n": big, "reference_n": ref}))
            if "workers_cpu_s" in a and "workers_cpu_s" in b:  # the same, free of other load: CPU per row
                results.append(Result(f"scale {stage} rows per CPU second (driver + workers) N={big} vs N={ref}",
                                      big / max(a["driver_cpu_s"] + a["workers_cpu_s"], 1e-3),
                                      ref / max(b["driver_cpu_s"] + b["workers_cpu_s"], 1e-3), "rows/cpu-s",
                                      f"ratio >= {RATE_GOAL} (cost linear in N)", True, {"n": big, "reference_n": ref}))
    for ray in rays:
        mine = next((r for r in local if r["n"] == ray["n"]), None)
        if mine is not None:
            for stage in ray["stages"]:
                theirs = mine["stages"][stage]["rows_per_s"]
                results.append(Result(f"scale {stage} ray vs local N={ray['n']}", ray["stages"][stage]["rows_per_s"],
                                      theirs, "rows/s", f"ratio >= {RAY_GOAL}", True, {"n": ray["n"]}))
                if "rows_per_s_after_start" in ray["stages"][stage]:
                    results.append(Result(f"scale {stage} ray (less its {ray['fixed_cost_s']} s start) vs local "
                                          f"N={ray['n']}", ray["stages"][stage]["rows_per_s_after_start"], theirs,
                                          "rows/s", f"ratio >= {RAY_GOAL} (estimate)", True, {"n": ray["n"]}))
    for sim in sims:
        for part in ("dedup", "plan"):
            results.append(Result(f"scale simulate {part} peak RSS N={sim['rows']}", sim[part]["driver_peak_mib"],
                                  SIM_GOAL_MIB, "MiB", f"ours <= {SIM_GOAL_MIB:.0f} MiB", False, {"n": sim["rows"]}))
    return results


def verdict(result: Result) -> bool:
    goal = result.goal
    if goal.startswith("ratio <="):
        return result.ratio <= RSS_GOAL_RATIO and result.ours <= RSS_GOAL_MIB
    if goal.startswith("ratio >="):
        return result.ratio >= float(goal.split()[2])
    return result.ours <= result.theirs


def table(local: list[dict[str, Any]], rays: list[dict[str, Any]]) -> str:
    lines = [f"{'executor':8} {'N':>9} {'stage':7} {'wall s':>8} {'rows/s':>9} {'driver MiB':>10} {'worker MiB':>10} "
             f"{'sum MiB':>8}"]
    for run in [*local, *rays]:
        for stage, m in run["stages"].items():
            lines.append(f"{run['executor']:8} {run['n']:>9} {stage:7} {m['wall_s']:>8.1f} {m['rows_per_s']:>9.0f} "
                         f"{m['driver_peak_mib']:>10.0f} {m['worker_peak_mib']:>10.0f} {m['sum_peak_mib']:>8.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                    help="pool sizes, comma-separated (0 or empty: no real pools)")
    ap.add_argument("--ray", action="store_true", help="also run the stages on a local Ray with 2 workers")
    ap.add_argument("--ray-sizes", default="10000", help="pool sizes of the Ray runs, comma-separated")
    ap.add_argument("--simulate", default="", metavar="ROWS[,ROWS]", help="rows of the synthetic manifests")
    ap.add_argument("--stages", default=",".join(STAGES), help="stages to measure, comma-separated (the earlier "
                    "ones run untimed to make their inputs)")
    ap.add_argument("--json", type=Path, help="write the results here (default: CACHE/results-DATE.json)")
    ap.add_argument("--repeats", type=int, default=1, help="ignored: every stage runs once per N (minutes each)")
    ap.add_argument("--child", nargs=3, metavar=("PART", "MANIFEST", "WORK"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        part, manifest, work = args.child
        print(json.dumps((_child_dedup if part == "dedup" else _child_plan)(manifest, work)))
        return 0
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip() and int(s) > 0})
    ray_sizes = sorted({int(s) for s in args.ray_sizes.split(",") if s.strip() and int(s) > 0}) if args.ray else []
    sims = sorted({int(s) for s in args.simulate.split(",") if s.strip() and int(s) > 0})
    only = tuple(s for s in STAGES if s in args.stages.split(","))
    if not only or set(args.stages.split(",")) - set(STAGES):
        ap.error(f"--stages takes some of {','.join(STAGES)}")
    report = run_all(sizes, ray_sizes, sims, only)
    target = args.json or tools.CACHE / f"results-{report['date']}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    log(f"results written to {target}")
    return 0


def run_all(sizes: list[int], ray_sizes: list[int], simulate_rows: list[int],
            only: tuple[str, ...] = STAGES) -> dict[str, Any]:
    """Everything asked for; prints the table and the goals; returns the report."""
    started = time.time()
    local = [run_size(n, "local", only) for n in sizes]
    rays = [run_size(n, "ray", only) for n in ray_sizes]
    if rays:
        fixed = ray_fixed_cost()
        log(f"ray fixed cost (start, one task per worker, shutdown): {fixed} s")
        for ray in rays:
            ray["fixed_cost_s"] = fixed
            for m in ray["stages"].values():  # an estimate: the rate once Ray runs
                m["rows_per_s_after_start"] = round(ray["n"] / max(m["wall_s"] - fixed, 1e-3), 1)
    sims = [simulate(rows) for rows in simulate_rows]
    results = goals(local, rays, sims)
    if local or rays:
        print(table(local, rays))
    for r in results:
        print(f"{r.name}: ours {r.ours:.4g} {r.unit}, theirs {r.theirs:.4g} {r.unit}, ratio {r.ratio:.3f} "
              f"(goal {r.goal}): {'met' if verdict(r) else 'NOT met'}")
    for sim in sims:
        for part in ("dedup", "plan"):
            print(f"simulate {part} N={sim['rows']}: {sim[part]['wall_s']} s, peak {sim[part]['driver_peak_mib']} MiB "
                  f"(heap {sim[part]['driver_anon_peak_mib']} MiB): {json.dumps(sim[part]['result'])}")
    return {"date": datetime.date.today().isoformat(), "machine": machine(), "seconds": round(time.time() - started),
            "local": local, "ray": rays, "simulate": sims,
            "goals": [{**r.to_dict(), "met": verdict(r)} for r in results]}


def run(repeats: int) -> list[Result]:
    """``python -m benchmarks scale`` without options: the default sizes, no Ray, no simulation."""
    report = run_all(list(DEFAULT_SIZES), [], [])
    return goals(report["local"], [], [])


if __name__ == "__main__":
    sys.exit(main())
