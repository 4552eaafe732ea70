"""Seeded test data for the shard tests: small generated JPEG/PNG files and a manifest over them."""

from __future__ import annotations

import hashlib
import io
import random
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa

from imgnet_tools.manifest.parquet import write_table


def jpeg_bytes(width: int, height: int, seed: int, quality: int = 85, fmt: str = "JPEG", exif_orientation: int | None = None) -> bytes:
    """A deterministic image: a colour gradient plus seeded blocks, so JPEG sizes vary."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        draw.rectangle([x0, y0, x0 + rng.randrange(1, width + 1), y0 + rng.randrange(1, height + 1)],
                       fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    kwargs: dict[str, Any] = {"quality": quality} if fmt == "JPEG" else {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def make_dataset(root: Path, per_class: dict[str, int], split: str = "train", seed: int = 0,
                 size: tuple[int, int] = (48, 40), extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Write ``per_class[wnid]`` images per class under ``root/split/wnid/`` and return manifest rows."""
    rows = []
    for label, (wnid, count) in enumerate(sorted(per_class.items())):
        folder = root / split / wnid
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            width, height = size[0] + (i * 7 + label) % 17, size[1] + (i * 5) % 13
            data = jpeg_bytes(width, height, seed=zlib.crc32(f"{seed}/{split}/{wnid}/{i}".encode()))
            path = folder / f"{wnid}_{i}.JPEG"
            path.write_bytes(data)
            rows.append(row_for(path, f"{split}_{wnid}_{i}", split, label, wnid, width, height))
    return rows + (extra or [])


def row_for(path: Path, key: str, split: str, label: int | None, wnid: str | None, width: int, height: int,
            status: str = "ok") -> dict[str, Any]:
    data = path.read_bytes()
    return {"key": key, "path": str(path), "source_path": str(path), "split": split, "label": label, "wnid": wnid,
            "bytes": len(data), "mtime_ns": path.stat().st_mtime_ns, "status": status, "reason": None if status == "ok" else "test",
            "width": width, "height": height, "sha256": hashlib.sha256(data).hexdigest()}


def write_manifest(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write rows as a manifest.parquet (schema ``manifest``) the way verify/dedup leave it."""
    columns = ["key", "path", "source_path", "split", "label", "wnid", "bytes", "mtime_ns", "status", "reason", "width", "height", "sha256"]
    table = pa.table({c: [r.get(c) for r in rows] for c in columns})
    return write_table(table, path, "manifest")
