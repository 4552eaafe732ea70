"""Scale: scan -> verify -> dedup -> shard on generated pools of N real JPEGs, and a 14.2M-row simulation.

``python -m benchmarks scale [--sizes 10000,100000] [--stages scan,verify,dedup,shard] [--ray] [--ray-sizes 10000]
[--simulate ROWS[,ROWS]] [--json OUT]``

Real part: for each N a cached pool of N distinct small JPEGs (``scale_tools.ensure_pool``,
untimed) goes through the four stages as the user runs them, ``imgnet`` subprocesses with
``--workers 2`` (local pool). For each stage and N: wall time, rows/s, and the peak RSS of the
driver, of the largest worker and of the whole process tree (``/proc`` sampled every 0.2 s, peaks
from the kernel's VmHWM). ``--ray`` runs the same stages with ``--executor ray --workers 2`` at
``--ray-sizes``, two ways (``--ray-mode``): ``new``, each stage starting (and stopping) its own local
Ray, its start-up included (executor ``ray``); ``joined``, against a local cluster started once
before the stages (``ray start --head --num-cpus 2``, timed apart, stopped at the end) that each
stage joins with ``--address auto``, as a cluster user runs them (executor ``ray-joined``; the
cluster's workers are sampled as the raylet's process tree, their CPU counted from the stage's start). Goals (issue 12): driver peak at the largest N <= 1.5x that at the reference N
(100k, or the smallest N when 100k is the largest) and <= 1.5 GiB; rows/s at the largest N >=
0.9x the reference's; Ray >= 0.8x the local pool. ``--stages`` measures only the stages named: the
stages before the first one named run untimed once to make its input, which is kept
(``CACHE/runs/input-N-EXECUTOR-STAGE/``) and reused by later runs (e.g. ``--stages shard``).

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
import signal
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


def measure(cmd: list[str], label: str, cluster: "Cluster | None" = None) -> dict[str, Any]:
    """Run ``cmd`` with its tree's RSS sampled; wall time, peaks, and its ``--json`` output.
    ``cluster``: a running Ray whose raylet tree (its workers) is sampled too."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        before = cluster.cpu() if cluster else {}
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=_env())
        sampler = tools.TreeSampler(proc.pid).start()
        ray_sampler = tools.TreeSampler(cluster.raylet).start() if cluster else None
        _, status, usage = os.wait4(proc.pid, 0)  # its rusage: it and every child it waited for
        wall = time.perf_counter() - t0
        code = proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
        if ray_sampler is not None:
            ray_sampler.stop()
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    if code != 0:
        raise RuntimeError(f"{label}: {' '.join(cmd)} exited {code}: {errors[-2000:]}")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = {"stdout": text[-2000:]}
    got = {"wall_s": round(wall, 2), **sampler.summary(), "tree_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
           "output": doc}
    if ray_sampler is not None:  # the cluster's workers are not the driver's children
        workers = [kib for pid, kib in ray_sampler.peaks_kib.items() if pid != ray_sampler.root]
        got["worker_peak_mib"] = round(max(workers, default=0) / 1024, 1)
        got["cluster_peak_mib"] = round(ray_sampler.peak_sum_kib / 1024, 1)
        got["workers_cpu_s"] = round(sum(cpu - before.get(pid, 0.0) for pid, cpu in ray_sampler.cpu_s.items()), 2)
    return got


ADDRESS_FILE = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # where ray start says where it is


class Cluster:
    """A local Ray started once with ``ray start --head --num-cpus 2`` (the stages join it with
    ``--address auto``), found again by a marker in its processes' environment; stopped by
    :meth:`stop` (``ray stop`` would stop every local cluster, other users' too)."""

    def __init__(self) -> None:
        self.marker = marker = f"imgnet-bench-{os.getpid()}-{time.time_ns()}"
        t0 = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "ray"), "start", "--head", "--num-cpus", "2",
                        "--include-dashboard=false", "--disable-usage-stats"], check=True, capture_output=True,
                       env={**_env(), "IMGNET_BENCH_RAY": marker})
        self.start_s = round(time.perf_counter() - t0, 2)
        self.address_file = ADDRESS_FILE.read_text() if ADDRESS_FILE.is_file() else None  # ray start wrote it
        self.pids = [pid for pid in _pids() if f"IMGNET_BENCH_RAY={marker}".encode() in _environ(pid)]
        raylets = [pid for pid in self.pids if _cmdline(pid).split(b"\0")[0].endswith(b"/raylet")]
        if not raylets:
            self.stop()
            raise RuntimeError("ray start ran but its raylet was not found")
        self.raylet = raylets[0]

    def cpu(self) -> dict[int, float]:
        """CPU seconds so far of every process in the raylet's tree."""
        return {pid: cpu for pid in tools.tree(self.raylet) if (cpu := tools.cpu_seconds(pid)) is not None}

    def stop(self) -> None:
        mine = f"IMGNET_BENCH_RAY={self.marker}".encode()
        for sig in (signal.SIGTERM, signal.SIGKILL):  # gcs_server and the raylet may outlive a SIGTERM
            left = [p for p in _pids() if mine in _environ(p)]  # its daemons and every worker they started
            for pid in left:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            for _ in range(50):
                if not any(mine in _environ(p) for p in left):
                    break
                time.sleep(0.1)
            else:
                continue
            break
        if self.address_file is not None and ADDRESS_FILE.is_file() and ADDRESS_FILE.read_text() == self.address_file:
            ADDRESS_FILE.unlink()  # else every later ray.init() on this machine tries to join the stopped cluster


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


RAY_PROBE = """
import time
t0 = time.perf_counter()
import ray
os = __import__("os")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")

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
    """The four stages' command lines; ``ray-joined``: on Ray, joining the running cluster."""
    how = ["--executor", "ray", "--address", "auto"] if executor == "ray-joined" else ["--executor", executor]
    exe = [*how, "--workers", "2", "--json"]
    manifest = str(run / "manifest.parquet")
    imgnet = _imgnet()
    return {"scan": [imgnet, "scan", str(pool), "--out", str(run), "--preset", "ilsvrc2012", *exe],
            "verify": [imgnet, "verify", manifest, *exe],
            "dedup": [imgnet, "dedup", manifest, *exe],
            "shard": [imgnet, "shard", manifest, "--out", str(run / "shards"), *exe]}


def run_size(n: int, executor: str, stages: tuple[str, ...] = STAGES, cluster: "Cluster | None" = None
             ) -> dict[str, Any]:
    """The stages ``stages`` on the pool of ``n`` images (from scratch, or from the kept input of the
    first one named: :func:`prepared_input`); per-stage measurements (``cluster``: the one the
    ``ray-joined`` executor joins)."""
    pool = tools.ensure_pool(n, log=log)
    run = tools.CACHE / "runs" / f"{n}-{executor}"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    first = min(STAGES.index(s) for s in stages)
    if first:
        # made on the local pool whatever the executor measured: the stages' outputs are the same bytes
        shutil.copy2(prepared_input(pool, n, "local", STAGES[first]) / "manifest.parquet", run / "manifest.parquet")
    measured = {}
    for stage, cmd in stage_commands(pool, run, executor).items():
        if stage not in stages:
            continue
        log(f"{executor} N={n}: {stage} ...")
        got = measure(cmd, f"{stage} N={n}", cluster)
        got["rows_per_s"] = round(n / got["wall_s"], 1)
        got["output"] = _brief(stage, got["output"])
        measured[stage] = got
        log(f"  {stage}: {got['wall_s']} s, {got['rows_per_s']} rows/s, driver {got['driver_peak_mib']} MiB, "
            f"worker {got['worker_peak_mib']} MiB, sum {got['sum_peak_mib']} MiB")
    shutil.rmtree(run, ignore_errors=True)
    return {"n": n, "executor": executor, "stages": measured}


def prepared_input(pool: Path, n: int, executor: str, stage: str) -> Path:
    """A folder whose manifest.parquet is the input of ``stage`` on the pool of ``n`` images: made
    once by running the stages before it (untimed), then kept."""
    folder = tools.CACHE / "runs" / f"input-{n}-{executor}-{stage}"
    if (folder / "manifest.parquet").is_file():
        return folder
    work = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name, cmd in stage_commands(pool, work, executor).items():
        if name == stage:
            break
        log(f"{executor} N={n}: {name} (untimed, input of {stage}) ...")
        measure(cmd, f"{name} N={n}")
    shutil.rmtree(folder, ignore_errors=True)
    work.rename(folder)
    return folder


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
            "compact_bytes_per_row": round(sum(a.nbytes for a in (selection.split_code, selection.cost,
                                                                   selection.label))
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
        for stage in STAGES:
            if stage not in by_n[big]["stages"] or stage not in by_n[ref]["stages"]:
                continue
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
            for stage in [s for s in STAGES if s in ray["stages"] and s in mine["stages"]]:
                theirs = mine["stages"][stage]["rows_per_s"]
                results.append(Result(f"scale {stage} {ray['executor']} vs local N={ray['n']}",
                                      ray["stages"][stage]["rows_per_s"],
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
    lines = [f"{'executor':10} {'N':>9} {'stage':7} {'wall s':>8} {'rows/s':>9} {'driver MiB':>10} {'worker MiB':>10} "
             f"{'sum MiB':>8} {'CPU s driver/workers':>20}"]
    for run in [*local, *rays]:
        for stage, m in run["stages"].items():
            lines.append(f"{run['executor']:10} {run['n']:>9} {stage:7} {m['wall_s']:>8.1f} {m['rows_per_s']:>9.0f} "
                         f"{m['driver_peak_mib']:>10.0f} {m['worker_peak_mib']:>10.0f} {m['sum_peak_mib']:>8.0f} "
                         f"{m.get('driver_cpu_s', 0):>10.1f}/{m.get('workers_cpu_s', 0):<9.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                    help="pool sizes, comma-separated (0 or empty: no real pools)")
    ap.add_argument("--stages", default=",".join(STAGES),
                    help="stages to measure, comma-separated (the input of the first is made once and kept)")
    ap.add_argument("--ray", action="store_true", help="also run the stages on a local Ray with 2 workers")
    ap.add_argument("--ray-sizes", default="10000", help="pool sizes of the Ray runs, comma-separated")
    ap.add_argument("--ray-mode", choices=("new", "joined", "both"), default="both",
                    help="new: each stage starts its own Ray; joined: the stages join one started before them")
    ap.add_argument("--simulate", default="", metavar="ROWS[,ROWS]", help="rows of the synthetic manifests")
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
    stages = tuple(s for s in STAGES if s in {x.strip() for x in args.stages.split(",")})
    unknown = {x.strip() for x in args.stages.split(",")} - set(STAGES)
    if unknown or not stages:
        ap.error(f"--stages: choose among {', '.join(STAGES)} (got {args.stages!r})")
    report = run_all(sizes, ray_sizes, sims, args.ray_mode, stages)
    target = args.json or tools.CACHE / f"results-{report['date']}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    log(f"results written to {target}")
    return 0


def run_all(sizes: list[int], ray_sizes: list[int], simulate_rows: list[int], ray_mode: str = "both",
            stages: tuple[str, ...] = STAGES) -> dict[str, Any]:
    """Everything asked for; prints the table and the goals; returns the report."""
    started = time.time()
    local = [run_size(n, "local", stages) for n in sizes]
    rays = [run_size(n, "ray", stages) for n in ray_sizes] if ray_mode in ("new", "both") else []
    if rays:
        fixed = ray_fixed_cost()
        log(f"ray fixed cost (start, one task per worker, shutdown): {fixed} s")
        for ray in rays:
            ray["fixed_cost_s"] = fixed
            for m in ray["stages"].values():  # an estimate: the rate once Ray runs
                m["rows_per_s_after_start"] = round(ray["n"] / max(m["wall_s"] - fixed, 1e-3), 1)
    if ray_sizes and ray_mode in ("joined", "both"):
        cluster = Cluster()
        log(f"ray start --head --num-cpus 2: {cluster.start_s} s (once, before the joined runs)")
        try:
            joined = [run_size(n, "ray-joined", stages, cluster) for n in ray_sizes]
        finally:
            cluster.stop()
        for ray in joined:
            ray["cluster_start_s"] = cluster.start_s
        rays += joined
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
