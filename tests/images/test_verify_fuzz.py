"""Fuzz: malformed bytes never crash the verifier, and every file still gets a row."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgnet_tools.images.check import REASON_ORDER, Policy, check_image
from imgnet_tools.images.scan import ScanParams, scan
from imgnet_tools.images.verify import VerifyParams, verify
from imgnet_tools.manifest.parquet import read_table
from tests import imagegen

# small seeds, so the valid bases are made once and hypothesis mutates them
BASES = {
    "jpeg": imagegen.jpeg_bytes(1, (48, 40)),
    "progressive": imagegen.jpeg_bytes(2, (48, 40), progressive=True),
    "png": imagegen.encode(imagegen.picture(3, (48, 40)), "PNG"),
    "gif": imagegen.animated_gif(4, 2, (32, 24)),
    "webp": imagegen.encode(imagegen.picture(5, (48, 40)), "WEBP"),
    "bmp": imagegen.encode(imagegen.picture(6, (16, 12)), "BMP"),
    "tiff": imagegen.encode(imagegen.picture(7, (16, 12)), "TIFF"),
    "exif": imagegen.with_exif(imagegen.jpeg_bytes(8, (48, 40)), imagegen.exif_orientation(3)),
}
# bombs stay cheap: a fuzzed header claiming a large size is rejected before decoding
POLICY = Policy(max_pixels=2_000_000)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif data:
            del data[at:at + draw(st.integers(1, 64))]
    return bytes(data)


def _assert_sane(data: bytes, name: str) -> None:
    found = check_image(data, name, POLICY)
    status, reason = found.status(POLICY), found.reason(POLICY)
    assert status in ("ok", "fixable", "rejected")
    assert (reason is None) == (status == "ok")
    assert all(r in REASON_ORDER for r in found.issues)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated(), name=st.sampled_from(["x.jpg", "x.JPEG", "x.png", "x.gif", "x", "x.webp"]))
def test_mutated_images_never_crash(data: bytes, name: str) -> None:
    _assert_sane(data, name)


@settings(max_examples=200, deadline=None)
@given(prefix=st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP",
                               b"BM", b"II*\x00", b"MM\x00*"]),
       tail=st.binary(max_size=512))
def test_random_bytes_behind_magic_never_crash(prefix: bytes, tail: bytes) -> None:
    _assert_sane(prefix + tail, "x.jpg")


def test_fuzzed_files_each_get_a_row(tmp_path: Path) -> None:
    import random

    rng = random.Random(1234)
    folder = tmp_path / "train" / "n01440764"
    folder.mkdir(parents=True)
    names = []
    for i in range(40):
        data = bytearray(BASES[sorted(BASES)[i % len(BASES)]])
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if i % 3 == 0:
            del data[rng.randrange(4, len(data)):]
        name = f"fuzz__{i:02d}.jpg"
        (folder / name).write_bytes(bytes(data))
        names.append(name)
    scan(ScanParams(src=(str(tmp_path / "train"),), out=str(tmp_path / "work"), workers=1))
    verify(VerifyParams(manifest=str(tmp_path / "work" / "manifest.parquet"), max_pixels=POLICY.max_pixels, workers=2))
    rows = read_table(tmp_path / "work" / "manifest.parquet", "manifest").to_pylist()
    assert sorted(Path(r["source_path"]).name for r in rows) == names
    assert all(r["status"] in ("ok", "fixable", "rejected") for r in rows)
