"""Seeded image generator for tests: natural-looking pictures, every defect class, duplicates, layouts.

Everything is deterministic in ``seed`` and small, and written into a folder the test owns
(``tmp_path``). File names say what a file is (``corrupt__truncated_50pct.jpg``,
``dup_of_a__resize50.jpg``).

Main entry points:

* :func:`picture` / :func:`jpeg_bytes`: a smooth random picture (low-frequency noise, a gradient and
  a few shapes), so JPEG sizes and decode times look like photos rather than white noise.
* :data:`DEFECTS` and :func:`write_defects`: one maker per defect class verify must catch, each with
  the status and reason verify is expected to give (and one issue that must be listed).
* :func:`write_duplicates`: an original and near-duplicate variants (exact, re-encoded, resized,
  cropped, brightened, as PNG, grayscale, flipped) plus an unrelated image, for dedup tests.
* :func:`make_imagefolder`, :func:`make_ilsvrc_val`: ImageNet-shaped trees.
* :func:`tree_hashes`: sha256 of every file under a folder (to prove sources are never modified).
* :func:`make_base`, :data:`VARIANTS`, :func:`write_study_set`: photo-like images (1/f colour noise,
  the power spectrum of natural images, plus shapes) and near duplicates derived from them the way
  they occur in scraped datasets (resized, recompressed, slightly cropped, combinations): the set the
  dedup threshold study (``benchmarks/dedup_threshold_study.py``) measures the default on.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_SIZE = (160, 120)


# --- pictures ------------------------------------------------------------------------------------

def picture(seed: int, size: tuple[int, int] = DEFAULT_SIZE, mode: str = "RGB") -> Image.Image:
    """A deterministic photo-like picture of ``size`` (width, height) in ``mode``."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.integers(0, 256, size=(max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    im = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(im).astype(np.int16)
    ramp = np.linspace(-40, 40, w, dtype=np.float32)[None, :, None]
    arr = arr + ramp.astype(np.int16) + rng.integers(-12, 13, size=arr.shape, dtype=np.int16)
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    _shapes(im, rng)
    return im.convert(mode) if mode != "RGB" else im


def _shapes(im: Image.Image, rng: np.random.Generator) -> None:
    from PIL import ImageDraw

    draw = ImageDraw.Draw(im)
    w, h = im.size
    for _ in range(3):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(4, max(5, w // 2))), y0 + int(rng.integers(4, max(5, h // 2)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse([x0, y0, x1, y1], fill=colour) if rng.random() < 0.5 else draw.rectangle([x0, y0, x1, y1], fill=colour)


def encode(im: Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    """``im`` saved as ``fmt`` into bytes."""
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def jpeg_bytes(seed: int, size: tuple[int, int] = DEFAULT_SIZE, quality: int = 90, **kwargs: object) -> bytes:
    """A baseline RGB JPEG of :func:`picture` (``kwargs`` go to ``Image.save``, e.g. ``progressive=True``)."""
    return encode(picture(seed, size), "JPEG", quality=quality, **kwargs)


# --- defect makers -------------------------------------------------------------------------------

def truncated(data: bytes, keep: float) -> bytes:
    """The first ``keep`` fraction of ``data`` (at least the first 4 bytes, so the magic survives)."""
    return data[: max(4, int(len(data) * keep))]


def with_exif(jpeg: bytes, exif_payload: bytes) -> bytes:
    """Insert an APP1 segment carrying ``exif_payload`` (``Exif\\0\\0`` + TIFF) right after SOI."""
    seg = b"\xff\xe1" + struct.pack(">H", len(exif_payload) + 2) + exif_payload
    return jpeg[:2] + seg + jpeg[2:]


def exif_orientation(orientation: int) -> bytes:
    """A minimal valid little-endian EXIF block with one IFD0 entry: Orientation (0x0112)."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd


def garble_segment(jpeg: bytes, marker: bytes) -> bytes:
    """Overwrite the payload of the first ``marker`` segment (e.g. DHT ``\\xff\\xc4``) with 0xFF bytes."""
    at = jpeg.index(marker)
    length = struct.unpack(">H", jpeg[at + 2: at + 4])[0]
    return jpeg[: at + 4] + b"\xff" * (length - 2) + jpeg[at + 2 + length:]


def png_raw(width: int, height: int, rows: bytes, bit_depth: int, colour_type: int) -> bytes:
    """A PNG from raw scanlines (filter byte included), for depths Pillow cannot write (16-bit RGB)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def png16_rgb(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow reads it as 8-bit RGB; only the header tells)."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = rng.integers(0, 65536, size=(h, w * 3), dtype=np.uint16).astype(">u2").tobytes()
    stride = w * 3 * 2
    rows = b"".join(b"\x00" + pixels[y * stride:(y + 1) * stride] for y in range(h))
    return png_raw(w, h, rows, 16, 2)


def bomb_png(side: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``side`` x ``side`` pixels (a decompression bomb)."""
    return png_raw(side, side, b"\x00" * 64, 8, 2)


def animated_gif(seed: int, frames: int = 3, size: tuple[int, int] = (64, 48)) -> bytes:
    """An animated GIF with ``frames`` different frames."""
    ims = [picture(seed + i, size).convert("P") for i in range(frames)]
    return encode(ims[0], "GIF", save_all=True, append_images=ims[1:], duration=100, loop=0)


def palette_alpha_png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A palette PNG with a transparent colour (mode P + tRNS)."""
    im = picture(seed, size).convert("P")
    return encode(im, "PNG", transparency=0)


def gray16_png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A 16-bit grayscale PNG (Pillow mode I;16)."""
    arr = (np.asarray(picture(seed, size, "L")).astype(np.uint16) * 257)
    return encode(Image.fromarray(arr), "PNG")


@dataclass(frozen=True)
class Defect:
    """A defect class: file name, bytes maker, and what verify must say (status, reason, one issue)."""

    filename: str
    make: Callable[[int], bytes]
    status: str
    reason: str | None
    issue: str | None = None


DEFECTS: dict[str, Defect] = {
    "ok": Defect("ok__plain.jpg", lambda s: jpeg_bytes(s), "ok", None),
    "ok_progressive": Defect("ok__progressive.jpg", lambda s: jpeg_bytes(s, progressive=True), "ok", None),
    "ok_trailing": Defect("ok__trailing_bytes_after_eoi.jpg", lambda s: jpeg_bytes(s) + b"\x00trailer", "ok", None),
    "truncated_10": Defect("corrupt__truncated_10pct.jpg", lambda s: truncated(jpeg_bytes(s), 0.10), "rejected", "truncated"),
    "truncated_50": Defect("corrupt__truncated_50pct.jpg", lambda s: truncated(jpeg_bytes(s), 0.50), "rejected", "truncated"),
    "truncated_90": Defect("corrupt__truncated_90pct.jpg", lambda s: truncated(jpeg_bytes(s), 0.90), "rejected", "truncated"),
    "truncated_eoi": Defect("corrupt__truncated_no_eoi.jpg", lambda s: jpeg_bytes(s)[:-2], "rejected", "truncated"),
    "truncated_progressive": Defect("corrupt__truncated_progressive_60pct.jpg",
                                    lambda s: truncated(jpeg_bytes(s, progressive=True), 0.6), "rejected", "truncated"),
    "truncated_png": Defect("corrupt__truncated_png_50pct.png",
                            lambda s: truncated(encode(picture(s), "PNG"), 0.5), "rejected", "truncated"),
    "corrupt_huffman": Defect("corrupt__bad_huffman_table.jpg", lambda s: garble_segment(jpeg_bytes(s), b"\xff\xc4"),
                              "rejected", "corrupt"),
    "cmyk": Defect("cmyk__plain.jpg", lambda s: encode(picture(s, mode="CMYK"), "JPEG", quality=90), "fixable", "cmyk"),
    "png_as_jpeg": Defect("png_as_jpeg__rgb.JPEG", lambda s: encode(picture(s), "PNG"), "fixable", "format_mismatch"),
    "jpeg_as_png": Defect("jpeg_as_png__rgb.png", lambda s: jpeg_bytes(s), "fixable", "format_mismatch"),
    "grayscale": Defect("gray__L.jpg", lambda s: encode(picture(s, mode="L"), "JPEG", quality=90), "fixable", "grayscale"),
    "gray16_png": Defect("png16__gray_I16.png", gray16_png, "fixable", "high_bit_depth", "grayscale"),
    "png16_rgb": Defect("png16__rgb48.png", lambda s: png16_rgb(s), "fixable", "high_bit_depth"),
    "palette_alpha": Defect("palette__alpha_trns.png", palette_alpha_png, "fixable", "palette", "alpha"),
    "rgba": Defect("alpha__rgba.png", lambda s: encode(picture(s, mode="RGBA"), "PNG"), "fixable", "alpha"),
    "exif_rotated": Defect("exif__orientation6.jpg", lambda s: with_exif(jpeg_bytes(s), exif_orientation(6)),
                           "fixable", "exif_rotated"),
    "broken_exif": Defect("exif__broken_tiff_header.jpg",
                          lambda s: with_exif(jpeg_bytes(s), b"Exif\x00\x00XX\x00\x2a" + b"\xff" * 24),
                          "fixable", "broken_exif"),
    "exif_bad_orientation": Defect("exif__orientation_99.jpg", lambda s: with_exif(jpeg_bytes(s), exif_orientation(99)),
                                   "fixable", "broken_exif"),
    "animated_gif": Defect("animated__3frames.gif", animated_gif, "fixable", "palette", "animated"),
    "multipage_tiff": Defect("multipage__2pages.tif", lambda s: encode(picture(s), "TIFF", save_all=True,
                                                                     append_images=[picture(s + 1)]),
                             "fixable", "animated", "not_jpeg"),
    "gray_alpha": Defect("alpha__gray_LA.png", lambda s: encode(picture(s, mode="LA"), "PNG"), "fixable", "alpha",
                         "grayscale"),
    "bilevel": Defect("gray__1bit.png", lambda s: encode(picture(s, mode="1"), "PNG"), "fixable", "grayscale"),
    "bmp": Defect("bmp__plain.bmp", lambda s: encode(picture(s), "BMP"), "fixable", "not_jpeg"),
    "webp": Defect("webp__plain.webp", lambda s: encode(picture(s), "WEBP", quality=90), "fixable", "not_jpeg"),
    "bomb": Defect("bomb__png_100000x100000.png", lambda s: bomb_png(), "rejected", "bomb"),
    "zero_bytes": Defect("empty__zero_bytes.jpg", lambda s: b"", "rejected", "empty"),
    "text_as_jpg": Defect("not_image__text.jpg", lambda s: b"this is not an image\n" * 4, "rejected", "not_an_image"),
    "html_as_jpeg": Defect("not_image__html.JPEG", lambda s: b"<!DOCTYPE html><html>404</html>", "rejected", "not_an_image"),
    "heif": Defect("unsupported__heif.heic", lambda s: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64,
                   "rejected", "unsupported_format"),
    "too_small": Defect("small__16x12.jpg", lambda s: jpeg_bytes(s, (16, 12)), "rejected", "too_small"),
    "bad_aspect": Defect("aspect__800x40.jpg", lambda s: jpeg_bytes(s, (800, 40)), "rejected", "bad_aspect"),
}


def write_defects(folder: Path, seed: int = 0, kinds: list[str] | None = None) -> dict[str, Path]:
    """Write one file per defect kind into ``folder``; returns kind -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, kind in enumerate(kinds or list(DEFECTS)):
        spec = DEFECTS[kind]
        path = folder / spec.filename
        path.write_bytes(spec.make(seed * 1000 + i))
        out[kind] = path
    return out


# --- duplicates ----------------------------------------------------------------------------------

DUPLICATE_VARIANTS: dict[str, Callable[[Image.Image], bytes]] = {
    "exact": lambda im: b"",  # replaced by the original's bytes in write_duplicates
    "reencode_q50": lambda im: encode(im, "JPEG", quality=50),
    "resize50": lambda im: encode(im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR), "JPEG", quality=90),
    "crop5": lambda im: encode(im.crop((im.width // 20, im.height // 20, im.width - im.width // 20,
                                        im.height - im.height // 20)), "JPEG", quality=90),
    "brighten10": lambda im: encode(Image.eval(im, lambda v: min(255, int(v * 1.1))), "JPEG", quality=90),
    "png_copy": lambda im: encode(im, "PNG"),
    "gray": lambda im: encode(im.convert("L"), "JPEG", quality=90),
}
NOT_DUPLICATE_VARIANTS: dict[str, Callable[[Image.Image], bytes]] = {
    "flip_lr": lambda im: encode(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "JPEG", quality=90),
}


def write_duplicates(folder: Path, seed: int = 0, name: str = "a", size: tuple[int, int] = (256, 192)) -> dict[str, Path]:
    """Write ``orig__NAME.jpg``, ``dup_of_NAME__VARIANT.ext`` for each near-duplicate variant,
    ``notdup_of_NAME__flip_lr.jpg`` and ``distinct__NAME_other.jpg`` (an unrelated picture).

    Returns variant -> path, with keys ``orig`` and ``distinct`` for the two extra files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    im = picture(seed, size)
    orig = encode(im, "JPEG", quality=90)
    out = {"orig": folder / f"orig__{name}.jpg"}
    out["orig"].write_bytes(orig)
    for variant, make in DUPLICATE_VARIANTS.items():
        ext = "png" if variant == "png_copy" else "jpg"
        path = folder / f"dup_of_{name}__{variant}.{ext}"
        path.write_bytes(orig if variant == "exact" else make(im))
        out[variant] = path
    for variant, make in NOT_DUPLICATE_VARIANTS.items():
        out[variant] = folder / f"notdup_of_{name}__{variant}.jpg"
        out[variant].write_bytes(make(im))
    out["distinct"] = folder / f"distinct__{name}_other.jpg"
    out["distinct"].write_bytes(encode(picture(seed + 7919, size), "JPEG", quality=90))
    return out


# --- layouts -------------------------------------------------------------------------------------

def make_imagefolder(root: Path, wnids: list[str], per_class: int, seed: int = 0,
                     size: tuple[int, int] = (64, 48)) -> list[Path]:
    """``root/WNID/WNID_I.JPEG`` files (ImageNet training layout); returns the paths."""
    paths = []
    for c, wnid in enumerate(wnids):
        (root / wnid).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = root / wnid / f"{wnid}_{i + 1}.JPEG"
            path.write_bytes(jpeg_bytes(seed * 100_000 + c * 1000 + i, size))
            paths.append(path)
    return paths


def make_ilsvrc_val(folder: Path, labels: list[str], seed: int = 0, size: tuple[int, int] = (64, 48)) -> list[Path]:
    """Flat ``ILSVRC2012_val_0000000N.JPEG`` files, one per entry of ``labels`` (their true wnids)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, _ in enumerate(labels, start=1):
        path = folder / f"ILSVRC2012_val_{i:08d}.JPEG"
        path.write_bytes(jpeg_bytes(seed * 100_000 + i, size))
        paths.append(path)
    return paths


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every regular file under ``root`` (symlinks not followed), by relative path."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# --- photo-like bases and near-duplicate variants (the dedup threshold study) ----------------------

def make_base(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A distinct, photo-like RGB image determined by ``seed`` (1/f noise plus shapes)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    w, h = size
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    amp = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / max(w, h)) ** 1.1
    channels = []
    for _ in range(3):
        spec = amp * np.exp(2j * np.pi * rng.random(amp.shape)) * rng.standard_normal(amp.shape)
        field = np.fft.irfft2(spec, s=(h, w))
        field = (field - field.mean()) / (field.std() + 1e-9)
        channels.append(field)
    mix = rng.normal(size=(3, 3)) * 0.5 + np.eye(3)
    rgb = np.tensordot(mix, np.stack(channels), axes=1)
    rgb = 128 + 40 * rgb / (np.abs(rgb).max() / 3 + 1e-9)
    img = Image.fromarray(np.clip(rgb.transpose(1, 2, 0), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        x1, y1 = x0 + int(rng.integers(15, w // 2)), y0 + int(rng.integers(15, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    return img


def photo_jpeg(img: Image.Image, quality: int = 90) -> bytes:
    """``img`` encoded as a baseline JPEG."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _resize(scale: float) -> Callable[[Image.Image], Image.Image]:
    def apply(img: Image.Image) -> Image.Image:
        from PIL import Image

        return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)

    return apply


def _crop(left: float, top: float, right: float, bottom: float) -> Callable[[Image.Image], Image.Image]:
    def apply(img: Image.Image) -> Image.Image:
        w, h = img.size
        return img.crop((round(w * left), round(h * top), w - round(w * right), h - round(h * bottom)))

    return apply


@dataclass(frozen=True)
class Variant:
    """A near-duplicate transform: ``name`` (used in file names), the transform, the JPEG quality."""

    name: str
    transform: Callable[[Image.Image], Image.Image]
    quality: int = 90


VARIANTS: tuple[Variant, ...] = (
    Variant("resize50", _resize(0.5)),
    Variant("resize150", _resize(1.5)),
    Variant("recompress_q40", lambda im: im, quality=40),
    Variant("crop3pct_center", _crop(0.015, 0.015, 0.015, 0.015)),
    Variant("crop5pct_corner", _crop(0.05, 0.05, 0.0, 0.0)),
    Variant("resize70_q60_crop2pct", lambda im: _crop(0.02, 0.0, 0.0, 0.02)(_resize(0.7)(im)), quality=60),
)


def write_study_set(out: Path, n_bases: int, seed: int = 0) -> list[tuple[Path, int, str]]:
    """Write ``n_bases`` distinct JPEGs and every variant of each; return (path, base, variant)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for b in range(n_bases):
        base = make_base(seed * 100_003 + b)
        path = out / f"base{b:05d}__original.jpg"
        path.write_bytes(photo_jpeg(base))
        rows.append((path, b, "original"))
        for v in VARIANTS:
            vpath = out / f"base{b:05d}__dup__{v.name}.jpg"
            vpath.write_bytes(photo_jpeg(v.transform(base), v.quality))
            rows.append((vpath, b, v.name))
    return rows
