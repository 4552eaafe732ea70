"""Helpers of ``bench_scale``: a process-tree RSS sampler, the generated JPEG pool, the synthetic manifest.

Kept apart from the benchmark so a unit test can check each on real processes and real data:

* :class:`TreeSampler` reads ``/proc`` every ``interval`` seconds and keeps, per process of a tree
  (a root and all its descendants), the peak of ``VmHWM`` (the kernel's own high-water mark, so a
  peak between two samples is not missed) and the largest sum of ``VmRSS`` over the tree.
* :func:`ensure_pool` writes ``N`` distinct small JPEGs in an ImageFolder layout (real ILSVRC
  wnids), in parallel, cached; a bigger pool hard-links a smaller cached pool's files as its prefix.
* :func:`write_synthetic_manifest` writes a manifest of plausible columns (no files) with planted
  exact and near duplicates, chunk by chunk, with :class:`~imgnet_tools.manifest.stream.TableWriter`.

None of these hold a Python object per row of the whole pool or manifest.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path(os.environ.get("IMGNET_BENCH_SCALE_CACHE", Path.home() / ".cache" / "imgnet" / "bench-scale"))
WNIDS_FILE = Path(__file__).resolve().parent.parent / "imgnet_tools" / "synsets" / "presets"
POOL_MARK = "pool.json"
POOL_VERSION = 1
GEN_CHUNK = 2000
# The synthetic manifest: within every block of PLANT_BLOCK rows, row 1 is a near copy of row 0
# (phash with 1..8 bits flipped, another sha256) and row 2 an exact copy of row 0 (same sha256
# and phash). A block shares its class and split, so the keep policy drops the copies.
PLANT_BLOCK = 100
NEAR_OFFSET, EXACT_OFFSET = 1, 2


# --- RSS of a process tree ------------------------------------------------------------------------

def _status_kib(pid: int) -> tuple[int, int, int] | None:
    """(VmRSS, VmHWM, RssAnon) of ``pid`` in KiB, or None when it is gone (or a zombie without memory).

    RssAnon is the heap part of VmRSS: without the pages of memory-mapped files (shard's
    selection file), which the kernel can drop and read again."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon"):
            found[name] = int(value.split()[0])
    if len(found) < 3:
        return None
    return found["VmRSS"], found["VmHWM"], found["RssAnon"]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds ``pid`` has used so far (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (from ``/proc/PID/stat``)."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'
        out[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    return out


def tree(root: int) -> list[int]:
    """``root`` and every descendant of it now alive."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


@dataclass
class TreeSampler:
    """Samples the RSS of ``root``'s process tree on a thread until :meth:`stop`."""

    root: int
    interval: float = 0.2
    peaks_kib: dict[int, int] = field(default_factory=dict)  # pid -> largest VmHWM seen
    anon_peaks_kib: dict[int, int] = field(default_factory=dict)  # pid -> largest RssAnon sampled
    cpu_s: dict[int, float] = field(default_factory=dict)  # pid -> CPU seconds at its last sample
    peak_sum_kib: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "TreeSampler":
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> None:
        total = 0
        for pid in tree(self.root):
            found = _status_kib(pid)
            if found is None:
                continue
            rss, hwm, anon = found
            total += rss
            self.peaks_kib[pid] = max(self.peaks_kib.get(pid, 0), hwm)
            self.anon_peaks_kib[pid] = max(self.anon_peaks_kib.get(pid, 0), anon)
            cpu = cpu_seconds(pid)
            if cpu is not None:
                self.cpu_s[pid] = max(self.cpu_s.get(pid, 0.0), cpu)
        self.peak_sum_kib = max(self.peak_sum_kib, total)
        self.samples += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict[str, Any]:
        """Peaks in MiB: the root (driver; also its sampled heap part), the largest other process
        (worker), and the tree's sum."""
        workers = [kib for pid, kib in self.peaks_kib.items() if pid != self.root]
        return {"driver_peak_mib": round(self.peaks_kib.get(self.root, 0) / 1024, 1),
                "driver_anon_peak_mib": round(self.anon_peaks_kib.get(self.root, 0) / 1024, 1),
                "worker_peak_mib": round(max(workers, default=0) / 1024, 1),
                "workers_seen": len(workers),
                "sum_peak_mib": round(self.peak_sum_kib / 1024, 1), "samples": self.samples,
                "driver_cpu_s": round(self.cpu_s.get(self.root, 0.0), 2),
                "workers_cpu_s": round(sum(v for pid, v in self.cpu_s.items() if pid != self.root), 2)}


# --- the generated JPEG pool ----------------------------------------------------------------------

def wnids() -> list[str]:
    """The 1,000 ILSVRC-2012 wnids (the pool's classes)."""
    return (WNIDS_FILE / "ilsvrc2012_wnids.txt").read_text().split()


def image_path(root: Path, classes: list[str], i: int) -> Path:
    wnid = classes[i % len(classes)]
    return root / "train" / wnid / f"{wnid}_{i:08d}.JPEG"


def jpeg_bytes(i: int) -> bytes:
    """Image ``i`` of the pool: a seeded random low-resolution field (4x4 to 9x9 colours) scaled
    up to 32..64 pixels a side, plus pixel noise, JPEG-encoded. The low-frequency field decides
    the perceptual hash, so hashes of different ``i`` are far apart; the noise makes every file's
    bytes distinct."""
    import io

    from PIL import Image

    rng = np.random.default_rng([0x5CA1E, i])
    w, h = (int(v) for v in rng.integers(32, 65, size=2))
    gw, gh = (int(v) for v in rng.integers(4, 10, size=2))
    field_ = Image.fromarray(rng.integers(0, 256, size=(gh, gw, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    pixels = np.asarray(field_, dtype=np.int16) + rng.integers(-12, 13, size=(h, w, 3), dtype=np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=int(rng.integers(70, 95)))
    return buf.getvalue()


def _write_range(args: tuple[str, int, int]) -> int:
    root, start, end = Path(args[0]), args[1], args[2]
    classes = wnids()
    for i in range(start, end):
        path = image_path(root, classes, i)
        if not path.exists():
            path.write_bytes(jpeg_bytes(i))
    return end - start


def _link_range(args: tuple[str, str, int, int]) -> int:
    src, dst, start, end = Path(args[0]), Path(args[1]), args[2], args[3]
    classes = wnids()
    for i in range(start, end):
        target = image_path(dst, classes, i)
        if not target.exists():
            os.link(image_path(src, classes, i), target)
    return end - start


def pool_dir(n: int) -> Path:
    return CACHE / f"pool-{n}"


def pool_ready(n: int) -> bool:
    try:
        doc = json.loads((pool_dir(n) / POOL_MARK).read_text())
    except (OSError, ValueError):
        return False
    return bool(doc.get("version") == POOL_VERSION and doc.get("images") == n)


def ensure_pool(n: int, processes: int = 2, log: Any = None) -> Path:
    """The cached pool of ``n`` images (made now if missing; files of a smaller cached pool are
    hard-linked as its first images). Returns the folder to scan (``POOL/train/WNID/*.JPEG``)."""
    import multiprocessing

    root = pool_dir(n)
    if pool_ready(n):
        return root
    classes = wnids()
    for wnid in classes:
        (root / "train" / wnid).mkdir(parents=True, exist_ok=True)
    smaller = max((m for m in _cached_sizes() if m < n), default=0)
    t0 = time.perf_counter()
    steps = [(i, min(i + GEN_CHUNK, n)) for i in range(0, n, GEN_CHUNK)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        linked = [(str(pool_dir(smaller)), str(root), a, min(b, smaller)) for a, b in steps if a < smaller]
        for _ in pool.imap_unordered(_link_range, linked):
            pass
        fresh = [(str(root), max(a, smaller), b) for a, b in steps if b > smaller]
        done = 0
        for count in pool.imap_unordered(_write_range, fresh):
            done += count
            if log is not None and done % 50000 < GEN_CHUNK:
                log(f"pool {n}: {done + smaller}/{n} images ({time.perf_counter() - t0:.0f} s)")
    doc = {"version": POOL_VERSION, "images": n, "classes": len(classes), "linked_from": smaller,
           "seconds": round(time.perf_counter() - t0, 1)}
    (root / POOL_MARK).write_text(json.dumps(doc))
    return root


def _cached_sizes() -> list[int]:
    if not CACHE.is_dir():
        return []
    sizes = [int(p.name.split("-", 1)[1]) for p in CACHE.glob("pool-*") if p.name.split("-", 1)[1].isdigit()]
    return [m for m in sizes if pool_ready(m)]


# --- the synthetic manifest -----------------------------------------------------------------------

def _hex(raw: np.ndarray) -> Any:
    """Rows of bytes (uint8, shape (n, k)) as an Arrow string array of 2k hex digits each."""
    import pyarrow as pa

    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    out = np.empty((raw.shape[0], raw.shape[1] * 2), dtype=np.uint8)
    out[:, 0::2], out[:, 1::2] = digits[raw >> 4], digits[raw & 15]
    return pa.array(out.view(f"S{out.shape[1]}").ravel(), pa.binary()).cast(pa.string())


def synthetic_chunk(start: int, n: int, classes: list[str], seed: int = 0) -> Any:
    """Manifest rows ``start .. start+n`` (``start`` a multiple of :data:`PLANT_BLOCK`): verified
    ``ok`` rows of ImageNet-21k-like paths, sizes and labels, random sha256 and phash, with the
    planted copies described at :data:`PLANT_BLOCK`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng([seed, start])
    i = np.arange(start, start + n, dtype=np.int64)
    block = i // PLANT_BLOCK
    label = (block % len(classes)).astype(np.int32)
    names = pa.array(classes, pa.string())
    wnid = names.take(pa.array(label))
    split = pa.array(np.where(block % 30 == 0, "val", "train")).cast(pa.string())
    stem = pc.binary_join_element_wise(wnid, pc.cast(pa.array(i), pa.string()), "_")
    rel = pc.binary_join_element_wise(split, wnid, pc.binary_join_element_wise(stem, pa.scalar(".JPEG"), ""), "/")
    path = pc.binary_join_element_wise(pa.scalar("/data/imagenet21k"), rel, "/")
    key = pc.binary_join_element_wise(split, stem, "-")
    phash = rng.integers(-2**63, 2**63 - 1, size=n, dtype=np.int64, endpoint=True)
    sha = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    at = i % PLANT_BLOCK
    near, exact = np.flatnonzero(at == NEAR_OFFSET), np.flatnonzero(at == EXACT_OFFSET)
    flips = np.zeros(len(near), dtype=np.uint64)
    for row, bits in enumerate(rng.integers(1, 9, size=len(near))):  # one per 100 rows, fine in Python
        for b in rng.choice(64, size=int(bits), replace=False):
            flips[row] |= np.uint64(1) << np.uint64(int(b))
    phash[near] = (phash[near - NEAR_OFFSET].view(np.uint64) ^ flips).view(np.int64)
    phash[exact], sha[exact] = phash[exact - EXACT_OFFSET], sha[exact - EXACT_OFFSET]
    size = rng.integers(20_000, 250_000, size=n)
    mtime = 1_600_000_000_000_000_000 + i * 1_000_000
    width, height = rng.integers(200, 800, size=n).astype(np.int32), rng.integers(200, 800, size=n).astype(np.int32)
    for column in (size, width, height):  # an exact copy is the same file
        column[exact] = column[exact - EXACT_OFFSET]
    const = {"status": "ok", "format": "JPEG", "mode": "RGB", "verify_policy": "v1"}
    table = {"key": key, "path": path, "source_path": path, "rel_path": rel, "split": split, "label": label,
             "wnid": wnid, "bytes": size, "mtime_ns": mtime, "source_bytes": size, "source_mtime_ns": mtime,
             "width": width, "height": height, "sha256": _hex(sha), "phash": phash,
             **{k: pa.array(np.full(n, v)).cast(pa.string()) for k, v in const.items()}}
    return pa.table(table)


def write_synthetic_manifest(target: Path, rows: int, chunk: int = 200_000, log: Any = None) -> Path:
    """``target``: a manifest of ``rows`` synthetic rows (cached: kept when its footer says ``rows``)."""
    from imgnet_tools.manifest.stream import TableWriter, table_info

    if target.is_file():
        try:
            if table_info(target, "manifest").rows == rows:
                return target
        except Exception:  # noqa: BLE001 - an unreadable cached file is simply written again
            pass
    classes = (WNIDS_FILE / "imagenet21k_fall11_wnids.txt").read_text().split()
    chunk -= chunk % PLANT_BLOCK
    t0 = time.perf_counter()
    with TableWriter(target, "manifest") as writer:
        for start in range(0, rows, chunk):
            writer.write(synthetic_chunk(start, min(chunk, rows - start), classes))
            if log is not None and (start // chunk) % 10 == 9:
                log(f"synthetic manifest: {start + chunk}/{rows} rows ({time.perf_counter() - t0:.0f} s)")
    return target


def planted(rows: int) -> tuple[int, int]:
    """(near, exact) copies planted in a synthetic manifest of ``rows`` rows."""
    full, rest = divmod(rows, PLANT_BLOCK)
    return full + (rest > NEAR_OFFSET), full + (rest > EXACT_OFFSET)
