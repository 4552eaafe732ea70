"""Downloading a URL list: imgnet collect vs img2dataset 1.47, side by side in one run.

    .venv/bin/python -m benchmarks collect [--repeats N]

Set-up (untimed): 10,000 distinct real JPEGs (640x480, quality 85, about 100 KB each: smooth
random colour fields with noise) generated once into ``.bench-cache/collect/images`` (ignored by
git); the test suite's aiohttp server (``tests/collect_server.py``) serves them from memory on
127.0.0.1 with a fixed 20 ms delay per response (the stand-in for the internet), from several
processes sharing one socket; the peer's venv ``.bench-venvs/img2dataset`` is built by
``benchmarks/peers/setup_img2dataset.sh`` on first use.

Timed, each as a fresh command-line run into an empty folder, on the same URL list, with the same
worker-process count (every core) and the same number of requests in flight (``IN_FLIGHT``):

* ours: ``imgnet collect urls.csv --out DIR --concurrency IN_FLIGHT --per-host IN_FLIGHT``
  (one host here, so the per-host limit is raised to the total, as img2dataset has none);
* theirs: ``img2dataset --url_list urls.txt --output_format files --resize_mode no
  --disable_all_reencoding True --extract_exif False --processes_count P --thread_count IN_FLIGHT/P``
  (no resize, bytes kept as downloaded; EXIF extraction off, which only helps it);
* the server's own limit: a bare aiohttp loop in P processes that reads every body and drops it.

Checked after every run: both fetched all 10,000, and every stored image is byte-identical to the
server's. Between runs (untimed) every dirty page is written back (``os.sync()``), so a run's own
syncs never wait for the previous run's data. Outputs are kept until the end of the benchmark, not
removed between runs: on ext4, creating a file or folder skips inodes freed in the last 60 s (300 s
while their inode-table block is dirty; ``recently_deleted`` in ``fs/ext4/ialloc.c``), scanning each
one, so removing a run's 20,000 files and folders made every later run's file creation several times
slower (``perf``: 60% of a run's system time in that scan) and both tools slower round by round.
Figures: images/s (median of ``repeats`` after a warm-up run of each).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.common import Result

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".bench-cache" / "collect" / "images"
PEER_VENV = REPO / ".bench-venvs" / "img2dataset"
N_IMAGES = 10_000
LATENCY = 0.020
IN_FLIGHT = 256


def _make(seed: int) -> bytes:
    """One distinct photo-sized JPEG (about 100 KB)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    base = Image.fromarray(small).resize((640, 480), Image.BICUBIC)
    noisy = np.asarray(base).astype(np.int16) + rng.integers(-16, 17, (480, 640, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=85)
    return out.getvalue()


def _write(seeds: range) -> None:
    for seed in seeds:
        (CACHE / f"photo_{seed:05d}.jpg").write_bytes(_make(seed))


def images() -> dict[str, bytes]:
    """The cached images, generated on first use (in every core)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(N_IMAGES) if not (CACHE / f"photo_{i:05d}.jpg").is_file()]
    if missing:
        print(f"generating {len(missing)} JPEGs into {CACHE} (one time)", file=sys.stderr, flush=True)
        step = 250
        with ProcessPoolExecutor() as pool:
            list(pool.map(_write, [range(i, min(i + step, N_IMAGES)) for i in range(0, N_IMAGES, step)]))
    return {p.name: p.read_bytes() for p in sorted(CACHE.glob("photo_*.jpg"))[:N_IMAGES]}


class Server:
    """``tests/collect_server.py`` in its own processes (``procs`` of them on one socket)."""

    def __init__(self, procs: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.collect_server", "--images", str(CACHE), "--latency", str(LATENCY),
             "--procs", str(procs)], cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self._wait_ready()

    def _wait_ready(self) -> None:
        import urllib.request

        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/img/photo_00000.jpg", timeout=5) as r:
                    r.read()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the benchmark server did not start")

    def close(self) -> None:
        import signal

        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)


def _peer_bin() -> Path:
    exe = PEER_VENV / "bin" / "img2dataset"
    if not exe.exists():
        print("building the img2dataset peer venv (one time, a few minutes)", file=sys.stderr, flush=True)
        subprocess.run(["bash", str(REPO / "benchmarks" / "peers" / "setup_img2dataset.sh"), str(PEER_VENV)], check=True)
    return exe


def run_ours(urls_csv: Path, out: Path, workers: int) -> float:
    cmd = [sys.executable, "-m", "imgnet_tools", "collect", str(urls_csv), "--out", str(out), "--allow-private-hosts",
           "--concurrency", str(IN_FLIGHT), "--per-host", str(IN_FLIGHT), "--workers", str(workers), "-q", "--json"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise RuntimeError(f"imgnet collect failed: {done.stderr[-2000:]}")
    return seconds


def run_theirs(urls_txt: Path, out: Path, workers: int) -> float:
    cmd = [str(_peer_bin()), "--url_list", str(urls_txt), "--input_format", "txt", "--output_folder", str(out),
           "--output_format", "files", "--resize_mode", "no", "--disable_all_reencoding", "True",
           "--extract_exif", "False", "--processes_count", str(workers),
           "--thread_count", str(IN_FLIGHT // workers), "--number_sample_per_shard", str(N_IMAGES // (workers * 4)),
           "--timeout", "10", "--retries", "0", "--enable_wandb", "False", "--distributor", "multiprocessing"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise RuntimeError(f"img2dataset failed: {done.stderr[-2000:]}")
    return seconds


def _bare_loop(args: tuple[list[str], int]) -> int:
    """Fetch every URL, read the body, drop it: the most any client gets from this server."""
    import asyncio

    import aiohttp

    urls, concurrency = args

    async def go() -> int:
        got = 0
        it = iter(urls)
        connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def worker() -> None:
                nonlocal got
                for url in it:
                    async with session.get(url) as resp:
                        await resp.read()
                        got += resp.status == 200

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return got

    return asyncio.run(go())


def run_bare(urls: list[str], workers: int) -> float:
    slices = [urls[i::workers] for i in range(workers)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        got = sum(pool.map(_bare_loop, [(s, IN_FLIGHT // workers) for s in slices]))
    seconds = time.perf_counter() - t0
    if got != len(urls):
        raise RuntimeError(f"the bare loop fetched {got} of {len(urls)}")
    return seconds


def check_ours(out: Path, served: dict[str, bytes]) -> int:
    """Every row fetched, every file the server's bytes; the number of images."""
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "manifest.parquet", columns=["url", "path", "status"]).to_pylist()
    ok = [r for r in rows if r["status"] == "pending"]
    for row in ok:
        if Path(row["path"]).read_bytes() != served[row["url"].rsplit("/", 1)[1]]:
            raise RuntimeError(f"ours: {row['path']} differs from {row['url']}")
    return len(ok)


def check_theirs(out: Path, served: dict[str, bytes]) -> int:
    count = 0
    for meta in out.glob("*/*.json"):
        doc = json.loads(meta.read_text())
        if doc.get("status") != "success":
            continue
        image = meta.with_suffix(".jpg")
        if image.read_bytes() != served[doc["url"].rsplit("/", 1)[1]]:
            raise RuntimeError(f"img2dataset: {image} differs from {doc['url']}")
        count += 1
    return count


def _settle() -> None:
    """Untimed, between runs: write back every dirty page (the last run's images), so that no run's
    own ``syncfs`` or write-back waits for the run before it (ours makes each chunk durable before
    committing it; img2dataset syncs nothing and leaves ~1 GB dirty)."""
    os.sync()
    time.sleep(1.0)


def run(repeats: int) -> list[Result]:
    served = images()
    workers = os.cpu_count() or 1
    server = Server(procs=max(1, workers // 2) if workers > 2 else workers)
    try:
        return _compare(served, server, workers, repeats)
    finally:
        server.close()


def _compare(served: dict[str, bytes], server: Server, workers: int, repeats: int) -> list[Result]:
    urls = [f"http://127.0.0.1:{server.port}/img/{name}" for name in served]
    tmp = Path(tempfile.mkdtemp(prefix="bench-collect-", dir=REPO / ".bench-cache"))
    try:
        (tmp / "urls.csv").write_text("url\n" + "\n".join(urls) + "\n")
        (tmp / "urls.txt").write_text("\n".join(urls) + "\n")
        times: dict[str, list[float]] = {"ours": [], "theirs": [], "bare": []}
        counts: dict[str, set[int]] = {"ours": set(), "theirs": set()}
        for attempt in range(repeats + 1):  # the first round is the warm-up
            for side in ("ours", "theirs", "bare"):  # interleaved: the same load on a shared machine
                out = tmp / f"{side}-{attempt}"
                if side == "ours":
                    seconds = run_ours(tmp / "urls.csv", out, workers)
                    counts["ours"].add(check_ours(out, served))
                elif side == "theirs":
                    seconds = run_theirs(tmp / "urls.txt", out, workers)
                    counts["theirs"].add(check_theirs(out, served))
                else:
                    seconds = run_bare(urls, workers)
                _settle()  # the output stays until the end (see the module docstring)
                if attempt:
                    times[side].append(seconds)
                print(f"  {side} run {attempt}: {seconds:.2f} s ({len(urls) / seconds:.0f} images/s)",
                      file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if counts["ours"] != {len(urls)} or counts["theirs"] != {len(urls)}:
        raise RuntimeError(f"success counts differ from {len(urls)}: ours {counts['ours']}, theirs {counts['theirs']}")
    rate = {side: len(urls) / statistics.median(t) for side, t in times.items()}
    params = {"images": len(urls), "mean_bytes": sum(map(len, served.values())) // len(served),
              "latency_ms": LATENCY * 1000, "in_flight": IN_FLIGHT, "workers": workers, "repeats": repeats,
              "bare_client_images_per_s": round(rate["bare"], 1)}
    return [
        Result("collect 10k JPEGs (~100 KB, 20 ms latency): images/s vs img2dataset", rate["ours"], rate["theirs"],
               "images/s", ">= 2x", True, params),
        Result("collect 10k JPEGs: images/s vs the server's own limit (bare aiohttp loop)", rate["ours"], rate["bare"],
               "images/s", "report", True, params),
    ]
