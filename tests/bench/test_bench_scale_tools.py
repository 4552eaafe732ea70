"""The scale benchmark's own parts, on real processes and real data: the RSS sampler sees a real
child's and grandchild's memory; the generated JPEGs are distinct real images whose perceptual
hashes are far apart; the synthetic manifest's planted copies are all found by dedup's real search."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from benchmarks import scale_tools as tools

ALLOCATE = textwrap.dedent("""
    import subprocess, sys, time
    block = bytearray({mib} * 2**20)
    for i in range(0, len(block), 4096):  # touch every page, so it is resident
        block[i] = 1
    if {child}:
        subprocess.run([sys.executable, "-c", sys.argv[1]], check=True)
    else:
        time.sleep(1.0)
""")


def test_tree_sampler_sees_driver_and_worker_peaks() -> None:
    grandchild = ALLOCATE.format(mib=60, child=False)
    proc = subprocess.Popen([sys.executable, "-c", ALLOCATE.format(mib=120, child=True), grandchild])
    sampler = tools.TreeSampler(proc.pid, interval=0.05).start()
    assert proc.wait(timeout=60) == 0
    sampler.stop()
    found = sampler.summary()
    assert 120 <= found["driver_peak_mib"] < 200
    assert 100 <= found["driver_anon_peak_mib"] <= found["driver_peak_mib"]  # a bytearray is heap
    assert 60 <= found["worker_peak_mib"] < 120
    assert found["workers_seen"] >= 1
    assert 0 <= found["driver_cpu_s"] < 30 and found["workers_cpu_s"] >= 0
    assert found["sum_peak_mib"] >= 180  # both alive at once while the grandchild sleeps


def test_tree_lists_descendants_only(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; "
                             "subprocess.run([sys.executable, '-c', 'import time; time.sleep(1.5)'])"])
    try:
        for _ in range(100):
            found = tools.tree(proc.pid)
            if len(found) == 2:
                break
            subprocess.run(["sleep", "0.02"])
        assert found[0] == proc.pid and len(found) == 2
        assert tools.tree(proc.pid + 10**7) == [proc.pid + 10**7]  # a pid with no children: itself only
    finally:
        proc.wait(timeout=30)


def test_generated_jpegs_are_distinct_images_with_far_apart_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from imgnet_tools.dedup.search import near_pairs
    from imgnet_tools.images.phash import phash_file

    monkeypatch.setattr(tools, "CACHE", tmp_path)
    root = tools.ensure_pool(400, processes=2)
    bigger = tools.ensure_pool(600, processes=2)  # its first 400 files are the smaller pool's (hard links)
    classes = tools.wnids()
    first = tools.image_path(bigger, classes, 7)
    assert first.stat().st_ino == tools.image_path(root, classes, 7).stat().st_ino
    paths = sorted(bigger.glob("train/*/*.JPEG"))
    assert len(paths) == 600 and len({p.parent.name for p in paths}) == 600  # 1000 classes: one file each here
    datas = [p.read_bytes() for p in paths]
    assert len(set(datas)) == 600
    for data in datas[:20]:
        with Image.open(io.BytesIO(data)) as img:
            assert img.format == "JPEG" and 32 <= min(img.size) and max(img.size) <= 64
    hashes = np.asarray([phash_file(p) for p in paths], dtype=np.int64)
    left, _ = near_pairs(hashes, 8)
    assert len(left) == 0  # dedup's default threshold finds no accidental near duplicates


def test_planted_duplicates_are_found_by_dedup_search(tmp_path: Path) -> None:
    from benchmarks.bench_scale import _child_dedup

    rows = 5_050
    manifest = tools.write_synthetic_manifest(tmp_path / "manifest.parquet", rows, chunk=1_000)
    work = tmp_path / "work"
    work.mkdir()
    found = _child_dedup(str(manifest), str(work))
    near, exact = tools.planted(rows)
    assert (near, exact) == (51, 51)
    assert found["rows"] == found["candidates"] == rows
    assert found["planted_near_found"] == near and found["planted_exact_found"] == exact
    # each block's three rows are one cluster of which two rows become duplicates
    assert found["duplicates"] >= near + exact and found["exact"] + found["near"] == found["duplicates"]
