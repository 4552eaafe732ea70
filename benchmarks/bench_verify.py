"""verify (full decode + sha256 + sniff + EXIF + policy) vs a plain Pillow ``open()+load()`` loop.

Same files, same core count: ours is ``imgnet_tools.images.verify.verify`` at ``workers=1`` (the
whole stage: read the manifest, check every image, write the manifest); theirs is the loop every
loader runs, ``with Image.open(path) as im: im.load()``. Setup (generating ImageNet-sized JPEGs
of about 500x375 at quality 90, and scanning them) is untimed; one warm-up run, then the median.
Goal from the issue: ours >= 0.9x theirs in images per second.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Result

N_IMAGES = 400
SIZE = (500, 375)
QUALITY = 90


def _imagegen():  # type: ignore[no-untyped-def]
    """The tests' seeded generator (tests/imagegen.py), loaded by path: tests/ is not a package."""
    path = Path(__file__).resolve().parent.parent / "tests" / "imagegen.py"
    spec = importlib.util.spec_from_file_location("imagegen", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["imagegen"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _setup(root: Path) -> tuple[list[Path], Path]:
    gen = _imagegen()
    folder = root / "train" / "n01440764"
    folder.mkdir(parents=True)
    paths = []
    for i in range(N_IMAGES):
        path = folder / f"n01440764_{i}.JPEG"
        path.write_bytes(gen.jpeg_bytes(i, SIZE, QUALITY))
        paths.append(path)
    from imgnet_tools.images.scan import ScanParams, scan

    scan(ScanParams(src=(str(root / "train"),), out=str(root / "work"), workers=1))
    return paths, root / "work" / "manifest.parquet"


def run(repeats: int) -> list[Result]:
    from PIL import Image

    from imgnet_tools.images.verify import VerifyParams, verify

    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        paths, manifest = _setup(Path(tmp))
        out = Path(tmp) / "verified.parquet"

        def ours() -> None:
            result = verify(VerifyParams(manifest=str(manifest), out=str(out), workers=1))
            if result.status.get("ok") != N_IMAGES:
                raise RuntimeError(f"verify found problems in clean images: {result.status}")

        def theirs() -> None:
            for path in paths:
                with Image.open(path) as im:
                    im.load()

        for fn in (theirs, ours):  # warm-up (imports, page cache)
            fn()
        wall: dict[str, list[float]] = {"ours": [], "theirs": []}
        cpu: dict[str, list[float]] = {"ours": [], "theirs": []}
        for _ in range(repeats):  # interleaved, so drift on a shared box hits both alike
            for name, fn in (("theirs", theirs), ("ours", ours)):
                w0, c0 = time.perf_counter(), time.process_time()
                fn()
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
        t_ours, t_theirs = statistics.median(wall["ours"]), statistics.median(wall["theirs"])
        cpu_ratio = statistics.median(cpu["theirs"]) / statistics.median(cpu["ours"])
        mean_bytes = sum(p.stat().st_size for p in paths) / len(paths)
    return [Result(
        name="verify (full decode) vs Pillow open+load, 1 core",
        ours=N_IMAGES / t_ours, theirs=N_IMAGES / t_theirs, unit="images/s", goal=">= 0.9",
        higher_is_better=True,
        params={"images": N_IMAGES, "size": list(SIZE), "quality": QUALITY, "workers": 1, "repeats": repeats,
                "mean_file_bytes": round(mean_bytes),
                "cpu_time_ratio": round(cpu_ratio, 3), "timing": "wall clock, median of interleaved runs"},
    )]
