"""Shard directories for the loader and bench tests (docs/CONTRACTS.md "Shard directory").

:func:`real_shards` runs the real writer (``imgnet_tools.shards.write.shard``) over seeded JPEGs;
the main tests use it. :func:`write_shards` builds the same layout by hand with ``tarfile`` and
DALI's own ``wds2idx``, for corner cases the writer never makes (an empty shard, hand-broken
indexes). Images are smooth gradients plus mild noise, of varied sizes, so resizes compare well.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(rng: random.Random, width: int, height: int, quality: int = 90) -> bytes:
    """A seeded RGB JPEG: a colour gradient with mild noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = [rng.uniform(0, 255) for _ in range(3)]
    slope = [rng.uniform(-1, 1) for _ in range(6)]
    chans = [base[c] + slope[2 * c] * x * 200 / width + slope[2 * c + 1] * y * 200 / height for c in range(3)]
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 4, (height, width, 3))
    arr = np.clip(np.stack(chans, axis=-1) + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shards(out: Path, samples: int = 12, per_shard: int = 5, classes: int = 3, split: str = "train",
                 seed: int = 0) -> Path:
    """Write ``samples`` samples in shards of ``per_shard`` to ``out``; return ``out``."""
    from wds2idx import IndexCreator  # type: ignore[import-untyped]

    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for shard in range((samples + per_shard - 1) // per_shard):
        tar_path = out / f"{split}-{shard:06d}.tar"
        with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(shard * per_shard, min(samples, (shard + 1) * per_shard)):
                key, label = f"{split}_{i:05d}", i % classes
                _add(tar, f"{key}.jpg", jpeg_bytes(rng, rng.randint(40, 120), rng.randint(40, 120)))
                _add(tar, f"{key}.cls", str(label).encode())
                _add(tar, f"{key}.json", json.dumps({"key": key, "label": label}).encode())
        with IndexCreator(str(tar_path), str(tar_path.with_suffix(".idx")), verbose=False) as idx:
            idx.create_index()
    doc = {"format_version": 1, "splits": {split: {"samples": samples}},
           "classes": [{"index": c, "wnid": f"n{c:08d}", "name": f"class{c}"} for c in range(classes)]}
    (out / "dataset.json").write_text(json.dumps(doc))
    return out


def real_shards(root: Path, samples: int = 12, per_shard: int = 4, classes: int = 3, seed: int = 0) -> Path:
    """Seeded JPEGs under ``root/img``, a manifest, and ``imgnet shard`` output in ``root/shards``."""
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import write_table
    from imgnet_tools.shards.write import ShardParams, shard

    rng = random.Random(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(samples):
        path = root / "img" / f"img_{i:04d}.jpg"
        path.write_bytes(jpeg_bytes(rng, rng.randint(40, 120), rng.randint(40, 120)))
        rows.append({"key": f"train_{i:04d}", "path": str(path), "source_path": str(path), "split": "train",
                     "label": i % classes, "wnid": f"n{i % classes:08d}", "status": "ok"})
    table = pa.table({c: [r[c] for r in rows] for c in rows[0]})
    write_table(table, root / "manifest.parquet", "manifest")
    shard(ShardParams(manifest=str(root / "manifest.parquet"), out=str(root / "shards"), size=per_shard, workers=1))
    return root / "shards"
