"""imagededup side of benchmarks/bench_dedup.py; runs inside .bench-venvs/imagededup (stock Pillow).

    python imagededup_peer.py hash FILELIST REPEATS
    python imagededup_peer.py search HASHES.npy THRESHOLD METHOD WORKERS REPEATS

Prints one JSON line: the median seconds of REPEATS timed runs after one untimed warm-up, and
what was computed (so the caller can check both sides did the same work). Only stdlib, numpy and
imagededup are imported here.
"""

from __future__ import annotations

import json
import statistics
import sys
import time


def _median(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up (also the result we report)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def bench_hash(filelist: str, repeats: int) -> dict:
    from imagededup.methods import PHash

    with open(filelist, encoding="utf-8") as fh:
        files = [line for line in fh.read().splitlines() if line]
    hasher = PHash(verbose=False)
    seconds, hashes = _median(lambda: [hasher.encode_image(image_file=f) for f in files], repeats)
    return {"seconds": seconds, "images": len(files), "hashes": hashes}


def bench_search(hashes_npy: str, threshold: int, method: str, workers: int, repeats: int) -> dict:
    import numpy as np
    from imagededup.methods import PHash

    values = np.load(hashes_npy).view(np.uint64)
    encoding = {f"h{i}": format(int(v), "016x") for i, v in enumerate(values)}
    hasher = PHash(verbose=False)

    def search() -> int:
        found = hasher.find_duplicates(encoding_map=encoding, max_distance_threshold=threshold,
                                       search_method=method, num_dist_workers=workers)
        return sum(len(v) for v in found.values()) // 2

    seconds, pairs = _median(search, repeats)
    return {"seconds": seconds, "n": len(values), "pairs": pairs}


def main(argv: list[str]) -> int:
    if argv[0] == "hash":
        doc = bench_hash(argv[1], int(argv[2]))
    elif argv[0] == "search":
        doc = bench_search(argv[1], int(argv[2]), argv[3], int(argv[4]), int(argv[5]))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
