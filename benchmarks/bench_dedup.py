"""Perceptual hashing and near-duplicate search: imgnet vs imagededup, side by side in one run.

    .venv/bin/python -m benchmarks dedup [--repeats N]

The peer runs in its own venv (``.bench-venvs/imagededup``, built by
``benchmarks/peers/setup_imagededup.sh`` on first use: imagededup pulls the stock Pillow, which
must not replace pillow-simd in ``.venv``) through ``benchmarks/peers/imagededup_peer.py``.

1. Hashing, one core each: our ``phash_file`` vs imagededup ``PHash.encode_image`` on the same
   photo-sized JPEGs (500x375, q90, generated, untimed), timed passes interleaved (ours, theirs,
   ours, ...) so that both see the same load on a shared machine. Goal: >= 5x per core.
2. Search at the default threshold (8) over synthetic 64-bit hashes (uniform, plus 10% planted
   copies with 0..10 bits flipped), both on every core: ours (multi-index hashing) vs
   imagededup's default ``find_duplicates`` (``brute_force_cython``; its BKTree is slower still).
   imagededup is measured at small N (both sides measured there, same pairs found) and, being
   all-pairs, extrapolated as c*N^2 to 100k and 1.28M -- said so in each result's name. Goals:
   >= 100x at 100k; ours <= 60 s at 1.28M (ImageNet-1k train).
Setup is untimed; every timing is the median of ``repeats`` runs after a warm-up.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Result, median_time

REPO = Path(__file__).resolve().parent.parent
PEER_VENV = REPO / ".bench-venvs" / "imagededup"
PEER = REPO / "benchmarks" / "peers" / "imagededup_peer.py"
THRESHOLD = 8
HASH_IMAGES = 200
PEER_SEARCH_N = (2000, 4000, 8000)
PEER_SEARCH_REPEATS = 1  # after a warm-up; imagededup takes ~30 s per run at N=8000
ONE_CORE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _peer_python() -> Path:
    """The peer venv's python, building the venv first if it is missing."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        print("building the imagededup peer venv (one time, a few minutes)", file=sys.stderr, flush=True)
        subprocess.run(["bash", str(REPO / "benchmarks" / "peers" / "setup_imagededup.sh"), str(PEER_VENV)], check=True)
    return python


def _peer(*args: object, env: dict[str, str] | None = None, cores: str | None = None) -> dict:
    cmd = [str(_peer_python()), str(PEER), *map(str, args)]
    if cores is not None:
        cmd = ["taskset", "-c", cores, *cmd]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **(env or {})})
    doc: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return doc


def _images(folder: Path, n: int) -> list[Path]:
    from tests.imagegen import make_base, photo_jpeg

    paths = []
    for i in range(n):
        path = folder / f"photo_{i:04d}__500x375_q90.jpg"
        path.write_bytes(photo_jpeg(make_base(10_000 + i, size=(500, 375)), quality=90))
        paths.append(path)
    return paths


def bench_hashing(repeats: int) -> Result:
    import numpy as np

    from imgnet_tools.images.phash import phash_file

    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        files = _images(Path(tmp), HASH_IMAGES)
        listing = Path(tmp) / "files.txt"
        listing.write_text("\n".join(map(str, files)) + "\n")
        core = min(os.sched_getaffinity(0))
        ours_times, their_times = [], []
        os.sched_setaffinity(0, {core})  # ours: one core
        try:
            ours = np.array([phash_file(f) for f in files], dtype=np.int64).view(np.uint64)  # warm-up
            for _ in range(repeats):  # interleaved with the peer, so both see the same machine load
                t0 = time.perf_counter()
                for f in files:
                    phash_file(f)
                ours_times.append(time.perf_counter() - t0)
                theirs = _peer("hash", listing, 1, env=ONE_CORE, cores=str(core))  # warm-up + 1 timed pass
                their_times.append(theirs["seconds"])
        finally:
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        ours_s, theirs_s = statistics.median(ours_times), statistics.median(their_times)
        mean_bytes = int(np.mean([f.stat().st_size for f in files]))
    their_hashes = np.array([int(h, 16) for h in theirs["hashes"]], dtype=np.uint64)
    agree = np.bitwise_count(ours ^ their_hashes)
    return Result(
        name="perceptual hash per core (images/s)", ours=HASH_IMAGES / ours_s, theirs=HASH_IMAGES / theirs_s,
        unit="images/s", goal=">= 5x imagededup PHash.encode_image, one core each", higher_is_better=True,
        params={"images": HASH_IMAGES, "size": "500x375 JPEG q90", "mean_bytes": mean_bytes, "cores": 1, "repeats": repeats,
                "ours_vs_theirs_hash_bits_differing_median": float(np.median(agree)),
                "ours_vs_theirs_hash_bits_differing_max": int(agree.max())},
    )


def _hashes(n: int, seed: int = 0) -> object:
    import numpy as np

    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    m = n // 10
    src = rng.integers(0, n - m, size=m)
    flips = np.zeros(m, dtype=np.uint64)
    for _ in range(10):  # up to 10 random bit flips (some coincide: 0..10 bits)
        bit = rng.integers(0, 64, size=m).astype(np.uint64)
        flips ^= np.where(rng.random(m) < 0.8, np.uint64(1) << bit, np.uint64(0))
    h[n - m:] = h[src] ^ flips
    return h.view(np.int64)


def _ours_search(n: int, repeats: int) -> tuple[float, int]:
    """Median seconds of our search over ``_hashes(n)`` on every core, and the pairs it finds."""
    from imgnet_tools.dedup.search import near_pairs

    hashes = _hashes(n)
    threads = len(os.sched_getaffinity(0))
    seconds = median_time(lambda: near_pairs(hashes, THRESHOLD, threads=threads), repeats)
    return seconds, len(near_pairs(hashes, THRESHOLD, threads=threads)[0])


def bench_search(repeats: int) -> list[Result]:
    import numpy as np

    cores = len(os.sched_getaffinity(0))
    theirs, pairs = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        for n in PEER_SEARCH_N:
            path = Path(tmp) / f"hashes_{n}.npy"
            np.save(path, _hashes(n))
            doc = _peer("search", path, THRESHOLD, "brute_force_cython", cores, PEER_SEARCH_REPEATS)
            theirs[n], pairs[n] = doc["seconds"], doc["pairs"]
    ns = np.array(PEER_SEARCH_N, dtype=np.float64)
    c = float(np.dot(ns**2, list(theirs.values())) / np.dot(ns**2, ns**2))  # least squares t = c*N^2
    n_small = PEER_SEARCH_N[-1]
    ours_small, our_pairs = _ours_search(n_small, repeats)
    if our_pairs != pairs[n_small]:
        raise RuntimeError(f"ours found {our_pairs} pairs, imagededup {pairs[n_small]}, at N={n_small}")
    ours_100k, _ = _ours_search(100_000, repeats)
    from imgnet_tools.dedup.search import near_pairs

    big = _hashes(1_280_000)
    near_pairs(_hashes(100_000, seed=1), THRESHOLD, threads=cores)  # warm-up (a full 1.28M run is ~30 s)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        near_pairs(big, THRESHOLD, threads=cores)
        times.append(time.perf_counter() - t0)
    ours_big = float(np.median(times))
    common = {"threshold": THRESHOLD, "cores": cores, "hashes": "uniform 64-bit + 10% planted copies, 0..10 bits flipped",
              "imagededup_method": "find_duplicates(search_method='brute_force_cython', num_dist_workers=cores)",
              "imagededup_measured_s": {str(k): round(v, 3) for k, v in theirs.items()},
              "imagededup_fit": f"{c:.3e} * N^2 s", "repeats": repeats,
              "imagededup_search_repeats": PEER_SEARCH_REPEATS}
    return [
        Result(f"near-dup search, N={n_small} (both measured, same {our_pairs} pairs)", ours_small, theirs[n_small], "s",
               "lower is better", higher_is_better=False, params=common),
        Result("near-dup search, N=100k (imagededup extrapolated c*N^2 from N<=8k)", ours_100k, c * 100_000**2, "s",
               ">= 100x faster than imagededup (ratio <= 0.01)", higher_is_better=False, params=common),
        Result("near-dup search, N=1.28M (imagededup extrapolated c*N^2 from N<=8k)", ours_big, c * 1_280_000**2, "s",
               "ours <= 60 s on this machine", higher_is_better=False, params=common),
    ]


def run(repeats: int) -> list[Result]:
    """Every comparison of this benchmark (see the module docstring)."""
    return [bench_hashing(repeats), *bench_search(repeats)]


if __name__ == "__main__":
    for result in run(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        print(json.dumps(result.to_dict()))
