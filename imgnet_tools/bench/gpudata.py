"""Shards for the GPU check, made on the spot: seeded photo-like JPEGs through the real ``imgnet shard``.

Each image is a smooth colour field with sensor-like noise (the noise keeps JPEG sizes near
ImageNet's: about 110-150 KB at 500x375, quality 90), drawn from its index alone, so the same
count gives the same bytes on any machine. Images are written in parallel through
:func:`imgnet_tools.execute.tasks.run_tasks`, listed in a manifest (status ``ok``: they are known
good) and sharded. Only numpy, Pillow and pyarrow are needed (no WordNet, no DALI).
"""

from __future__ import annotations

import io
from pathlib import Path

CLASSES = 10
PER_SHARD = 256


def photo_jpeg(seed: int, width: int, height: int, quality: int = 90) -> bytes:
    """A seeded photo-like JPEG of ``width`` x ``height``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    field = np.stack([x * rng.uniform(-0.3, 0.3) + y * rng.uniform(-0.3, 0.3) + rng.uniform(40, 210)
                      for _ in range(3)], -1)
    pixels = np.clip(field + rng.normal(0, 14, (height, width, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def write_images(task: tuple[str, int, int, int, int]) -> int:
    """Write images ``start`` .. ``stop - 1`` into ``folder``; return the bytes written (a task)."""
    folder, start, stop, width, height = task
    total = 0
    for i in range(start, stop):
        path = Path(folder) / f"img_{i:06d}.jpg"
        if not path.is_file():
            path.write_bytes(photo_jpeg(i, width, height))
        total += path.stat().st_size
    return total


def make_shards(root: Path, images: int, width: int = 500, height: int = 375, workers: int | None = None,
                per_shard: int = PER_SHARD) -> tuple[Path, int]:
    """``images`` JPEGs under ``root/img`` and their shards in ``root/shards``; (shard dir, image bytes)."""
    import pyarrow as pa

    from imgnet_tools.execute.params import ExecutorParams
    from imgnet_tools.execute.tasks import run_tasks
    from imgnet_tools.manifest.parquet import write_table
    from imgnet_tools.shards.write import ShardParams, shard

    img = root / "img"
    img.mkdir(parents=True, exist_ok=True)
    chunk = 64
    tasks = [(str(img), s, min(images, s + chunk), width, height) for s in range(0, images, chunk)]
    sizes = run_tasks(write_images, tasks, ExecutorParams(workers=workers))
    paths = [str(img / f"img_{i:06d}.jpg") for i in range(images)]
    table = pa.table({"key": [f"train_{i:06d}" for i in range(images)], "path": paths, "source_path": paths,
                      "split": ["train"] * images, "label": pa.array([i % CLASSES for i in range(images)], pa.int32()),
                      "wnid": [f"n{i % CLASSES:08d}" for i in range(images)], "status": ["ok"] * images})
    write_table(table, root / "manifest.parquet", "manifest")
    shard(ShardParams(manifest=str(root / "manifest.parquet"), out=str(root / "shards"), size=per_shard,
                      workers=workers, overwrite=True))
    return root / "shards", sum(sizes)
