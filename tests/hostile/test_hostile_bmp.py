"""Issue 13's reproduction: a BMP whose width field (little-endian int32 at byte 18) says -127.

Pillow reads that width as 4294967169, which no int32 manifest column can hold; it once killed
verify's final Parquet write and lost the whole run. Now it costs one ``bad_header`` row: alone,
and among good JPEGs (every one of them ``ok``), through the real CLI, and the manifest reads.
Width and height boundary values (0, -1, 2^31-1, 2^31, 2^32-1) each get a row reason too.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest
from PIL import Image

from imgnet_tools.images.scan import ScanParams, scan
from imgnet_tools.images.verify import VerifyParams, verify
from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.manifest.stream import table_info
from tests import imagegen
from tests.conftest import run_installed


def bmp_with_field(offset: int, value: int) -> bytes:
    """A valid 16x12 BMP with the int32 at ``offset`` (18: width, 22: height) set to ``value``."""
    out = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 10, 10)).save(out, "BMP")
    data = bytearray(out.getvalue())
    data[offset:offset + 4] = struct.pack("<I", value & 0xFFFFFFFF)
    return bytes(data)


def _verdicts(manifest: Path) -> dict[str, tuple[str, str | None]]:
    return {Path(r["source_path"]).name: (r["status"], r["reason"])
            for r in read_table(manifest, "manifest").to_pylist()}


def test_negative_width_bmp_alone_is_one_bad_header_row(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "width_minus_127.bmp").write_bytes(bmp_with_field(18, -127))
    work = tmp_path / "work"
    assert run_installed("scan", str(src), "--out", str(work), "-q").returncode == 0
    proc = run_installed("verify", str(work / "manifest.parquet"), "-q", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["reasons"] == {"bad_header": 1}
    row = read_table(work / "manifest.parquet", "manifest").to_pylist()[0]
    assert (row["status"], row["reason"], row["width"], row["height"]) == ("rejected", "bad_header", None, None)
    assert "4294967169" in row["detail"]  # what the header said, for the person who reads the row


def test_negative_width_bmp_among_good_jpegs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "width_minus_127.bmp").write_bytes(bmp_with_field(18, -127))
    for i in range(6):
        (src / f"good_{i}.jpg").write_bytes(imagegen.jpeg_bytes(i, (64, 48)))
    work = tmp_path / "work"
    assert run_installed("scan", str(src), "--out", str(work), "-q").returncode == 0
    proc = run_installed("verify", str(work / "manifest.parquet"), "-q", "--json")
    assert proc.returncode == 0, proc.stderr
    got = _verdicts(work / "manifest.parquet")
    assert got.pop("width_minus_127.bmp") == ("rejected", "bad_header")
    assert got == {f"good_{i}.jpg": ("ok", None) for i in range(6)}
    assert table_info(work / "manifest.parquet", "manifest").rows == 7
    # the later stages take the same manifest without a second look at the header
    for args in (["dedup", str(work / "manifest.parquet")],
                 ["shard", str(work / "manifest.parquet"), "--out", str(tmp_path / "shards"), "--resize-short", "32"]):
        proc = run_installed(*args, "-q", "--json")
        assert proc.returncode == 0, proc.stderr
    shard = json.loads(proc.stdout)
    assert shard["samples"] == 6 and shard["failed"] == [] and shard["skipped"] == {"rejected": 1}


@pytest.mark.parametrize("field,offset", [("width", 18), ("height", 22)])
@pytest.mark.parametrize("value", [0, -1, -127, 2**31 - 1, 2**31, 2**32 - 1])
def test_header_boundary_values_are_row_reasons(tmp_path: Path, field: str, offset: int, value: int) -> None:
    src = tmp_path / "src"
    src.mkdir()
    name = f"{field}_{value}.bmp"
    (src / name).write_bytes(bmp_with_field(offset, value))
    scan(ScanParams(src=(str(src),), out=str(tmp_path / "work"), executor="inline"))
    manifest = tmp_path / "work" / "manifest.parquet"
    verify(VerifyParams(manifest=str(manifest), workers=1))
    status, reason = _verdicts(manifest)[name]
    # a negative height is a top-down BMP, legal; the image is then 16x1 (too small), not broken
    assert status == "rejected" and reason in {"bad_header", "bomb", "corrupt", "truncated", "too_small"}, reason
    row = read_table(manifest, "manifest").to_pylist()[0]
    assert row["width"] is None or 0 <= row["width"] < 2**31
    assert row["height"] is None or 0 <= row["height"] < 2**31
