"""A deterministic mini-ImageNet, made on the spot, with planted faults for the pipeline to find.

Why: ``make demo`` and the end-to-end tests must work on a fresh machine with no data and no
network. The generator draws images whose look depends on their class (hue, shape family, stripe
angle) and on a seeded per-image random stream (positions, sizes, colours), so classes differ,
images within a class differ, and the same parameters always give the same bytes.

Layout written under ``OUT`` (ImageFolder, the layout of a preprocessed ILSVRC-2012 copy)::

    OUT/train/{wnid}/{wnid}_{NNNN}.JPEG
    OUT/val/{wnid}/{wnid}_val_{NNNN}.JPEG
    OUT/wnids.txt          the class list, one wnid per line, in class-index order
    OUT/faults.json        each planted fault, its file, and the stage and reason expected to catch it

Fault files are named for what they are (``corrupt__truncated.JPEG``, ``dup_of_..__resize75.JPEG``).
The whole directory is staged and moved into place atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from imgnet_tools.errors import InputError
from imgnet_tools.manifest.atomic import atomic_output_dir
from imgnet_tools.manifest.schemas import format_version, validate_json, validate_text

# Real ILSVRC-2012 classes (the ten of Imagenette), in the order classes are taken.
DEMO_WNIDS: tuple[tuple[str, str], ...] = (
    ("n01440764", "tench"),
    ("n02102040", "English springer"),
    ("n02979186", "cassette player"),
    ("n03000684", "chain saw"),
    ("n03028079", "church"),
    ("n03394916", "French horn"),
    ("n03417042", "garbage truck"),
    ("n03425413", "gas pump"),
    ("n03445777", "golf ball"),
    ("n03888605", "parachute"),
)
MIN_CLASSES = 5  # the planted faults need five distinct class folders
JPEG_QUALITY = 90
FAULTS_FILE = "faults.json"
WNIDS_FILE = "wnids.txt"


@dataclass(frozen=True)
class DemoParams:
    """What ``imgnet demo-data`` makes: how many classes and images, how big, from which seed."""

    out: str
    classes: int = 5
    train_per_class: int = 8
    val_per_class: int = 3
    size: int = 96
    seed: int = 0
    overwrite: bool = False

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise :class:`InputError` for values the generator cannot honour."""
        if not MIN_CLASSES <= self.classes <= len(DEMO_WNIDS):
            raise InputError(f"--classes must be between {MIN_CLASSES} and {len(DEMO_WNIDS)}, got {self.classes}.")
        if self.train_per_class < 3 or self.val_per_class < 1:
            raise InputError("--train-per-class must be at least 3 and --val-per-class at least 1.")
        if not 48 <= self.size <= 1024:
            raise InputError(f"--size must be between 48 and 1024 pixels, got {self.size}.")

    def record(self) -> dict[str, Any]:
        """The parameters that decide the bytes (what a re-run compares)."""
        doc = asdict(self)
        doc.pop("out")
        doc.pop("overwrite")
        return doc


@dataclass(frozen=True)
class Fault:
    """One planted fault: the file, what is wrong, and who should catch it with which verdict."""

    kind: str
    file: str
    stage: str
    status: str
    reason: str
    related: str | None = None
    description: str = ""


@dataclass
class DemoResult:
    """Summary of a demo-data run."""

    out: Path
    classes: list[str]
    images: dict[str, int]
    faults: list[Fault] = field(default_factory=list)
    created: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "created": self.created,
            "classes": self.classes,
            "images": self.images,
            "faults": [asdict(f) for f in self.faults],
        }


# ----------------------------------------------------------------------------------------------
# drawing


def _rng(seed: int, *parts: object) -> "Any":
    """A numpy Generator seeded from ``seed`` and a label, stable across runs and platforms."""
    import numpy as np

    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_image(class_index: int, n_classes: int, seed: int, tag: str, size: int) -> "Any":
    """A class-styled RGB image: gradient in the class hue, stripes at the class angle, shapes.

    The class fixes the hue, the shape family and the stripe angle; ``tag`` seeds the layout, so
    two tags give two images that a perceptual hash keeps apart.
    """
    import numpy as np
    from PIL import Image, ImageDraw

    rng = _rng(seed, "image", class_index, tag)
    hue = class_index / n_classes
    w = size + int(rng.integers(0, size // 3))
    h = size + int(rng.integers(0, size // 4))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = np.pi * class_index / n_classes
    wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / (3.0 + class_index) + rng.uniform(0, 6.3))
    base = np.array(_hsv(hue, 0.55, 0.75), dtype=np.float32)
    shade = 0.65 + 0.25 * wave[..., None] + 0.2 * (yy / h)[..., None] * rng.uniform(-1, 1)
    pixels = np.clip(base * shade + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(4, 8))):
        x0, y0 = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
        x1, y1 = x0 + int(rng.integers(w // 6, w // 2)), y0 + int(rng.integers(h // 6, h // 2))
        colour = _hsv(hue + rng.uniform(-0.08, 0.08), rng.uniform(0.4, 1.0), rng.uniform(0.1, 1.0))
        shape = (class_index + int(rng.integers(0, 2))) % 3
        if shape == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif shape == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=colour)
    return img


def _encode(img: "Any", fmt: str = "JPEG", quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, format="JPEG", quality=quality)
    else:
        img.save(buf, format=fmt)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# the dataset


def _clean_files(params: DemoParams, wnids: list[str]) -> dict[str, bytes]:
    """Relative path -> bytes for every clean image, train then val, class by class."""
    files: dict[str, bytes] = {}
    for split, count in (("train", params.train_per_class), ("val", params.val_per_class)):
        for ci, wnid in enumerate(wnids):
            for i in range(count):
                name = f"{wnid}_{i:04d}.JPEG" if split == "train" else f"{wnid}_val_{i:04d}.JPEG"
                img = draw_image(ci, len(wnids), params.seed, f"{split}/{i}", params.size)
                files[f"{split}/{wnid}/{name}"] = _encode(img)
    return files


def _plant_faults(params: DemoParams, wnids: list[str], files: dict[str, bytes]) -> list[Fault]:
    """Add the faulty files to ``files`` and return what each is and who must catch it."""
    from PIL import Image

    faults: list[Fault] = []

    def plant(kind: str, path: str, data: bytes, stage: str, status: str, reason: str,
              related: str | None = None, description: str = "") -> None:
        files[path] = data
        faults.append(Fault(kind, path, stage, status, reason, related, description))

    def fresh(ci: int, tag: str) -> Any:
        return draw_image(ci, len(wnids), params.seed, f"fault/{tag}", params.size)

    w0, w1, w2, w3, w4 = wnids[:5]
    full = _encode(fresh(0, "truncated"))
    plant("truncated_jpeg", f"train/{w0}/corrupt__truncated.JPEG", full[: len(full) // 2], "verify", "rejected",
          "truncated", description="JPEG cut in half: the decoder runs out of data")
    plant("cmyk_jpeg", f"train/{w1}/cmyk__colorspace.JPEG", _encode(fresh(1, "cmyk").convert("CMYK")), "verify",
          "fixable", "cmyk", description="JPEG in CMYK: loaders expect RGB")
    plant("png_named_jpeg", f"train/{w2}/png_named__jpeg.JPEG", _encode(fresh(2, "png"), "PNG"), "verify",
          "fixable", "format_mismatch", description="PNG bytes under a .JPEG name")
    plant("grayscale", f"train/{w3}/grayscale__L.JPEG", _encode(fresh(3, "gray").convert("L")), "verify",
          "fixable", "grayscale", description="one-channel JPEG: loaders expect three channels")
    plant("zero_byte", f"train/{w3}/empty__zero_bytes.JPEG", b"", "scan", "rejected", "empty",
          description="zero-byte file")
    tiny = fresh(4, "tiny").resize((8, 8), Image.Resampling.BILINEAR)
    plant("tiny_image", f"train/{w4}/tiny__8x8.JPEG", _encode(tiny), "verify", "rejected", "too_small",
          description="8x8 pixels: too small to train on")
    src0 = f"train/{w0}/{w0}_0001.JPEG"
    plant("exact_duplicate", f"train/{w0}/dup_of_{w0}_0001__exact.JPEG", files[src0], "dedup", "duplicate",
          "exact", related=src0, description="byte-identical copy of another train image")
    src1 = f"train/{w1}/{w1}_0002.JPEG"
    with Image.open(io.BytesIO(files[src1])) as im:
        smaller = im.convert("RGB").resize((im.width * 3 // 4, im.height * 3 // 4), Image.Resampling.LANCZOS)
    plant("near_duplicate", f"train/{w1}/dup_of_{w1}_0002__resize75.JPEG", _encode(smaller, quality=85), "dedup",
          "duplicate", "near", related=src1, description="75% resize and re-encode of another train image")
    src2 = f"train/{w2}/{w2}_0000.JPEG"
    plant("train_val_leak", f"val/{w2}/leak_of_train__{w2}_0000.JPEG", files[src2], "dedup", "duplicate",
          "cross_split", related=src2, description="a train image copied into val")
    return faults


def _faults_doc(params: DemoParams, wnids: list[str], faults: list[Fault]) -> dict[str, Any]:
    return {
        "format_version": format_version("demo_faults"),
        "params": params.record(),
        "classes": [{"index": i, "wnid": w, "name": dict(DEMO_WNIDS)[w]} for i, w in enumerate(wnids)],
        "faults": [asdict(f) for f in faults],
    }


def _existing(params: DemoParams) -> dict[str, Any] | None:
    """The faults record of a complete earlier run with the same parameters, else None."""
    path = Path(params.out) / FAULTS_FILE
    if not path.is_file():
        return None
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if doc.get("format_version") != format_version("demo_faults") or doc.get("params") != params.record():
        return None
    if not all((Path(params.out) / f["file"]).is_file() for f in doc.get("faults", [])):
        return None
    return doc


def _count(files: dict[str, bytes]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rel in files:
        split = rel.split("/", 1)[0]
        counts[split] = counts.get(split, 0) + 1
    return counts


def make_demo(params: DemoParams, progress: Callable[[int], None] | None = None) -> DemoResult:
    """Write the demo dataset to ``params.out``; a complete earlier run with the same params is kept.

    Refuses a non-empty ``out`` that is not such a run unless ``params.overwrite``.
    """
    wnids = [w for w, _ in DEMO_WNIDS[: params.classes]]
    doc = _existing(params)
    if doc is not None and not params.overwrite:
        faults = [Fault(**f) for f in doc["faults"]]
        counts = {s: sum(1 for p in (Path(params.out) / s).rglob("*") if p.is_file()) for s in ("train", "val")}
        return DemoResult(Path(params.out), wnids, counts, faults, created=False)
    files = _clean_files(params, wnids)
    faults = _plant_faults(params, wnids, files)
    doc = _faults_doc(params, wnids, faults)
    validate_json(doc, "demo_faults", FAULTS_FILE)
    with atomic_output_dir(Path(params.out), overwrite=params.overwrite) as stage:
        stage.chmod(0o755)  # mkdtemp makes it 0700; the dataset is meant to be read by others
        for rel, data in sorted(files.items()):
            target = stage / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if progress is not None:
                progress(1)
        (stage / WNIDS_FILE).write_text("".join(f"{w}\n" for w in wnids), encoding="utf-8")
        validate_text(stage / WNIDS_FILE, "demo_wnids")
        # faults.json last: its presence marks a complete demo directory.
        (stage / FAULTS_FILE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return DemoResult(Path(params.out), wnids, _count(files), faults)


def image_count(params: DemoParams) -> int:
    """How many files :func:`make_demo` writes (for a progress bar)."""
    return params.classes * (params.train_per_class + params.val_per_class) + 9


def outputs_complete(params: DemoParams) -> bool:
    """True when ``params.out`` holds a complete demo made with the same parameters (recipes skip it)."""
    return _existing(params) is not None
