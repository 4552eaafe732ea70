"""Mutation fuzzing of image files: seeds, mutations, and the per-file property every stage must hold.

Seeds are real files of every decodable format: JPEG (baseline, progressive, EXIF-rotated,
CMYK), PNG (RGB, 16-bit, palette with alpha), GIF (animated), BMP, TIFF, WebP, generated with PIL,
plus the smallest usable JPEG/PNG/GIF/BMP/TIFF/WebP files of the Pillow corpus
(:mod:`tests.pillow_corpus`) when it is cached. A case is a seed and a list of mutations:

* ``truncate`` at a fraction of the length;
* ``flip`` one bit;
* ``field``: overwrite a header field (a format's width, height, depth, length or offset field,
  or any 1/2/4 bytes in the first 64) with a boundary value: 0, -1, 1, 2^15, 2^16-1, 2^31-1,
  2^31, 2^32-1 (cut to the field's width, in its byte order);
* ``splice``: the head of this file and the tail of another seed;
* ``insert`` / ``delete`` a few bytes.

:func:`check_file` runs one mutated file through what verify, dedup and shard do to one file
(in this process) and returns what broke the property: each must finish without raising, give a
status and a reason from the vocabulary, values the manifest can hold; an image verify calls
usable must hash (dedup) and resize (shard --resize-short), and a fixed copy must be a clean JPEG.
The hypothesis test (``tests/hostile/test_hostile_fuzz.py``) and the long run (``tests/fuzz_long.py``,
``scripts/fuzz.sh``) share all of this.
"""

from __future__ import annotations

import functools
import io
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOUNDARY = (0, -1, 1, 2**15, 2**16 - 1, 2**31 - 1, 2**31, 2**32 - 1)
OPS = ("truncate", "flip", "field", "splice", "insert", "delete")
# (offset, width in bytes, byte order) of header fields worth hitting, per format
FIELDS: dict[str, tuple[tuple[int, int, str], ...]] = {
    "BMP": ((2, 4, "<"), (10, 4, "<"), (14, 4, "<"), (18, 4, "<"), (22, 4, "<"), (26, 2, "<"), (28, 2, "<"),
            (30, 4, "<"), (34, 4, "<"), (46, 4, "<")),
    "PNG": ((8, 4, ">"), (16, 4, ">"), (20, 4, ">"), (24, 1, ">"), (25, 1, ">"), (26, 1, ">"), (28, 1, ">"),
            (33, 4, ">")),
    "GIF": ((6, 2, "<"), (8, 2, "<"), (10, 1, "<"), (11, 1, "<")),
    "TIFF": ((4, 4, "<"), (8, 2, "<"), (10, 2, "<"), (12, 2, "<"), (14, 4, "<"), (18, 4, "<"), (4, 4, ">"),
             (8, 2, ">")),
    "WEBP": ((4, 4, "<"), (16, 4, "<"), (20, 4, "<"), (24, 4, "<"), (26, 2, "<"), (28, 2, "<")),
}


@dataclass(frozen=True)
class Op:
    """One mutation; ``at`` and ``span`` are fractions of the file's length (so cases shrink well)."""

    kind: str
    at: float = 0.0
    value: int = 0
    width: int = 1
    order: str = "<"
    other: str = ""
    span: float = 0.0


def _format_of(data: bytes) -> str | None:
    from imgnet_tools.images.sniff import sniff_format

    return sniff_format(data[:32])


@functools.lru_cache(maxsize=1)
def seeds() -> dict[str, bytes]:
    """Name -> bytes of every seed file (generated ones always; corpus ones when cached)."""
    from PIL import Image

    from tests import imagegen

    def save(im: Image.Image, fmt: str, **kw: Any) -> bytes:
        return imagegen.encode(im, fmt, **kw)

    pic = imagegen.picture(11, (48, 40))
    out = {
        "gen.jpg": imagegen.jpeg_bytes(1, (48, 40)),
        "gen_progressive.jpg": imagegen.jpeg_bytes(2, (48, 40), progressive=True),
        "gen_exif_rotated.jpg": imagegen.with_exif(imagegen.jpeg_bytes(3, (48, 40)), imagegen.exif_orientation(6)),
        "gen_cmyk.jpg": save(pic.convert("CMYK"), "JPEG"),
        "gen.png": save(pic, "PNG"),
        "gen_16bit.png": imagegen.png16_rgb(4, (40, 36)),
        "gen_palette_alpha.png": imagegen.palette_alpha_png(5, (40, 36)),
        "gen_animated.gif": imagegen.animated_gif(6, 2, (40, 36)),
        "gen.bmp": save(imagegen.picture(7, (40, 36)), "BMP"),
        "gen.tif": save(imagegen.picture(8, (40, 36)), "TIFF"),
        "gen_deflate.tif": save(imagegen.picture(9, (40, 36)), "TIFF", compression="tiff_deflate"),
        "gen.webp": save(pic, "WEBP"),
    }
    out.update(corpus_seeds())
    return out


def corpus_seeds(per_format: int = 2, max_bytes: int = 12_000) -> dict[str, bytes]:
    """The smallest files the checked-in verdicts call usable, per format (none without the cache)."""
    from tests import pillow_corpus

    try:
        root = pillow_corpus.corpus_dir(fetch=False)
    except pillow_corpus.CorpusUnavailable:
        return {}
    verdicts = Path(__file__).parent / "data" / "pillow_corpus_verdicts.tsv"
    usable = [line.split("\t")[0] for line in verdicts.read_text().splitlines()[2:]
              if line.split("\t")[1] in ("ok", "fixed")]
    chosen: dict[str, bytes] = {}
    for ext in (".jpg", ".png", ".gif", ".bmp", ".tif", ".webp"):
        sized = sorted((p.stat().st_size, rel) for rel in usable if rel.lower().endswith(ext)
                       for p in [root / rel] if p.stat().st_size <= max_bytes)
        for _, rel in sized[:per_format]:
            chosen[f"corpus:{rel}"] = (root / rel).read_bytes()
    return chosen


def mutate(data: bytes, ops: Sequence[Op]) -> bytes:
    """``data`` with ``ops`` applied in order (deterministic)."""
    buf = bytearray(data)
    for op in ops:
        n = len(buf)
        at = min(n, int(op.at * n)) if n else 0
        if op.kind == "truncate":
            del buf[max(1, at):]
        elif op.kind == "flip" and n:
            buf[min(at, n - 1)] ^= 1 << (op.value % 8)
        elif op.kind == "field":
            offset, width, order = _field_spot(bytes(buf), op)
            if offset + width <= len(buf):
                value = op.value & ((1 << (8 * width)) - 1)
                buf[offset:offset + width] = value.to_bytes(width, "little" if order == "<" else "big")
        elif op.kind == "splice":
            other = seeds()[op.other]
            buf = buf[:at] + bytearray(other[int(op.span * len(other)):])
        elif op.kind == "insert":
            buf[at:at] = struct.pack("<I", op.value & 0xFFFFFFFF)[:max(1, op.width)]
        elif op.kind == "delete":
            del buf[at:at + max(1, int(op.span * 64))]
    return bytes(buf)


def _field_spot(data: bytes, op: Op) -> tuple[int, int, str]:
    """Where a ``field`` op writes: a known field of the file's format (picked by ``op.at``), a
    JPEG's SOF size fields or a segment length, or any ``op.width`` bytes in the first 64."""
    fmt = _format_of(data)
    if fmt == "JPEG":
        spots = _jpeg_fields(data)
        if spots:
            return spots[int(op.at * len(spots)) % len(spots)]
    known = FIELDS.get(fmt or "")
    if known and op.order == "<":
        return known[int(op.at * len(known)) % len(known)]
    return int(op.at * 64), max(1, op.width), op.order


def _jpeg_fields(data: bytes) -> list[tuple[int, int, str]]:
    """Offsets of a JPEG's segment lengths and SOF height / width / component count, up to SOS."""
    spots: list[tuple[int, int, str]] = []
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF and len(spots) < 40:
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2:i + 4], "big")
        spots.append((i + 2, 2, ">"))
        if marker in (0xC0, 0xC1, 0xC2) and i + 10 <= len(data):
            spots += [(i + 5, 2, ">"), (i + 7, 2, ">"), (i + 9, 1, ">")]
        if marker == 0xDA or length < 2:
            break
        i += 2 + length
    return spots


def random_ops(rng: random.Random, names: Sequence[str]) -> list[Op]:
    """1-4 random mutations (the long run's generator; hypothesis draws the same fields)."""
    ops = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(OPS)
        ops.append(Op(kind, at=rng.random(), value=rng.choice(BOUNDARY) if kind == "field" else rng.getrandbits(32),
                      width=rng.choice((1, 2, 4)), order=rng.choice("<>"), other=rng.choice(list(names)),
                      span=rng.random()))
    return ops


# --- the property ---------------------------------------------------------------------------------

def check_file(path: Path, fix_dir: Path) -> list[str]:
    """What one file breaks of the per-file property (empty when it holds); see the module docstring."""
    from imgnet_tools.images.check import REASON_ORDER, Policy
    from imgnet_tools.images.jpegwalk import header_problem
    from imgnet_tools.images.phash import HashTask, hash_one_timed
    from imgnet_tools.images.verify import Settings, _result_table, verify_file
    from imgnet_tools.shards.transform import TransformParams, encode

    problems: list[str] = []
    settings = Settings(Policy(max_pixels=4_000_000), 90, 30.0)
    fix_to = fix_dir / f"{path.stem}.jpg"
    try:
        row = verify_file(str(path), str(fix_to), settings)
    except Exception as exc:  # noqa: BLE001 - the property under test
        return [f"verify raised {type(exc).__name__}: {exc}"]
    status, reason = row.get("status"), row.get("reason")
    if status not in ("ok", "fixable", "fixed", "rejected"):
        problems.append(f"status {status!r}")
    if (reason is None) != (status == "ok") or (reason is not None and reason not in REASON_ORDER):
        problems.append(f"reason {reason!r} with status {status!r}")
    if not set(row.get("issues") or []) <= set(REASON_ORDER):
        problems.append(f"issues {row.get('issues')!r}")
    if reason in ("internal_error", "crashed_decoder"):
        problems.append(f"{reason}: {row.get('detail')}")
    try:
        _result_table([{"offset": 0, **row}])  # the manifest's types hold every value
    except Exception as exc:  # noqa: BLE001
        problems.append(f"row does not fit the manifest: {type(exc).__name__}: {exc}")
    if status not in ("ok", "fixed"):
        return problems
    usable = Path(row["path"])
    data = usable.read_bytes()
    if status == "fixed" and header_problem(data):
        problems.append(f"fixed copy is not a clean JPEG: {header_problem(data)}")
    if status == "ok" and data[:2] == b"\xff\xd8" and header_problem(data):
        problems.append(f"ok JPEG a strict decoder refuses: {header_problem(data)}")
    hashed = hash_one_timed(HashTask(str(usable), True), 30.0)
    if hashed.reason is not None:
        problems.append(f"dedup cannot hash a usable image: {hashed.reason} {hashed.detail}")
    try:
        encode(data, TransformParams(resize_short=24))
    except Exception as exc:  # noqa: BLE001
        problems.append(f"shard --resize-short fails on a usable image: {type(exc).__name__}: {exc}")
    return problems


def write_case(folder: Path, index: int, seed_name: str, data: bytes) -> Path:
    """Write a case under a name that says its seed (and keeps the seed's extension)."""
    stem = seed_name.replace("corpus:", "corpus_").replace("/", "_")
    name, _, ext = stem.rpartition(".")
    path = folder / f"fuzz_{index:06d}__{name}.{ext}"
    path.write_bytes(data)
    return path


def describe(ops: Sequence[Op]) -> str:
    return "; ".join(f"{o.kind}(at={o.at:.4f}, value={o.value}, width={o.width}, order={o.order!r}, "
                     f"other={o.other!r}, span={o.span:.4f})" for o in ops)


def image_info(data: bytes) -> str:  # pragma: no cover - for reading failures by hand
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return f"{im.format} {im.mode} {im.size}"
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"


def dali_decode_error(data: bytes) -> str | None:
    """None when DALI's CPU image decoder (what the loader runs, ``device="cpu"``) takes ``data``,
    else the first line of its error. One pipeline per call: slow, for tens of files, not thousands."""
    import numpy as np
    import nvidia.dali.fn as fn
    import nvidia.dali.types as types
    from nvidia.dali import pipeline_def

    array = np.frombuffer(data, dtype=np.uint8)

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)  # type: ignore[misc]
    def pipe():  # type: ignore[no-untyped-def]
        encoded = fn.external_source(source=lambda: [array], batch=True)
        return fn.decoders.image(encoded, device="cpu", output_type=types.DALIImageType.RGB)

    built = pipe()
    built.build()
    try:
        built.run()
    except RuntimeError as exc:
        return str(exc).strip().splitlines()[0][:200]
    return None
