"""Bad manifests and recipes: one clear line naming the file (and the field), exit 2, for every
command that reads them (verify, dedup, shard, report, run).

Manifests: cut in half, random bytes in the middle of a column chunk (caught by the pages' CRC32,
which imgnet writes and checks), a required column missing, a column of the wrong type (strings
where numbers are declared, numbers where strings are), a future ``format_version``, a foreign
Parquet file, a CSV named ``manifest.parquet``. Recipes: unknown keys (top level and a stage's
parameter), a wrong type, a duplicate key, a future ``format_version``, broken YAML, an unknown
stage.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imgnet_tools.images.scan import ScanParams, scan
from imgnet_tools.images.verify import VerifyParams, verify
from tests import imagegen
from tests.conftest import run_installed


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real scanned and verified manifest of 40 images."""
    base = tmp_path_factory.mktemp("good")
    imagegen.make_imagefolder(base / "src" / "train", ["n01440764", "n01443537"], per_class=20)
    scan(ScanParams(src=(str(base / "src"),), out=str(base / "work"), executor="inline"))
    verify(VerifyParams(manifest=str(base / "work" / "manifest.parquet"), executor="inline"))
    return base / "work" / "manifest.parquet"


def _keep_meta(table: pa.Table, like: pa.Table) -> pa.Table:
    return table.replace_schema_metadata(like.schema.metadata)


def truncated(good: Path, out: Path) -> str:
    data = good.read_bytes()
    out.write_bytes(data[:len(data) // 2])
    return "not a readable Parquet file"


def corrupt(good: Path, out: Path) -> str:
    """Random bytes over the middle of the ``key`` column chunk (data pages, not the footer; every
    command reads the keys)."""
    meta = pq.ParquetFile(good).metadata.row_group(0)
    chunk = meta.column(pq.read_schema(good).names.index("key"))
    start = chunk.data_page_offset + chunk.total_compressed_size // 2 - 8
    data = bytearray(good.read_bytes())
    data[start:start + 16] = random.Random(13).randbytes(16)
    out.write_bytes(bytes(data))
    return "corrupt"


def missing_column(good: Path, out: Path) -> str:
    table = pq.read_table(good)
    pq.write_table(_keep_meta(table.drop(["status"]), table), out)
    return "'status'"


def strings_for_numbers(good: Path, out: Path) -> str:
    table = pq.read_table(good)
    column = pa.array([f"{v} px" for v in table.column("width").to_pylist()])
    pq.write_table(_keep_meta(table.set_column(table.column_names.index("width"), "width", column), table), out)
    return "'width'"


def numbers_for_strings(good: Path, out: Path) -> str:
    table = pq.read_table(good)
    column = pa.array(range(table.num_rows), pa.int64())
    pq.write_table(_keep_meta(table.set_column(table.column_names.index("status"), "status", column), table), out)
    return "'status'"


def future_version(good: Path, out: Path) -> str:
    table = pq.read_table(good)
    meta = {**table.schema.metadata, b"imgnet.format_version": b"99"}
    pq.write_table(table.replace_schema_metadata(meta), out)
    return "format_version '99'"


def foreign(good: Path, out: Path) -> str:
    pq.write_table(pa.table({"filename": ["a.jpg"], "class": [3]}), out)
    return "foreign"


def csv_named_parquet(good: Path, out: Path) -> str:
    out.write_text("path,label\na.jpg,3\n")
    return "not a readable Parquet file"


BAD_MANIFESTS: list[Callable[[Path, Path], str]] = [truncated, corrupt, missing_column, strings_for_numbers,
                                                    numbers_for_strings, future_version, foreign, csv_named_parquet]
RECIPE = """\
format_version: 1
name: bad-manifest
inputs:
  work: work
outputs:
  shards: shards
stages:
  - stage: verify
    params:
      manifest: ${work}/manifest.parquet
      workers: 1
"""


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("command", ["verify", "dedup", "shard", "report", "run"])
@pytest.mark.parametrize("make", BAD_MANIFESTS, ids=lambda f: f.__name__)
def test_bad_manifest_is_one_line_exit_2(good: Path, tmp_path: Path, make: Callable[[Path, Path], str],
                                         command: str, invoke) -> None:  # type: ignore[no-untyped-def]
    manifest = tmp_path / "work" / "manifest.parquet"
    manifest.parent.mkdir()
    field = make(good, manifest)
    before = manifest.read_bytes()
    args = {
        "verify": ["verify", manifest],
        "dedup": ["dedup", manifest],
        "shard": ["shard", manifest, "--out", tmp_path / "shards"],
        "report": ["report", tmp_path, "--out", tmp_path / "report"],
        "run": ["run", tmp_path / "recipe.yaml", "-q"],
    }[command]
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    line = _one_error_line(result.stderr)
    assert str(manifest) in line or str(manifest.relative_to(tmp_path)) in line, line
    assert field in line, line
    assert manifest.read_bytes() == before  # a bad input is never rewritten


def test_corrupt_bytes_anywhere_in_the_data_never_read_as_values(good: Path, tmp_path: Path) -> None:
    """Without page checksums a flipped byte in a zstd page decoded as another number; now every
    spoiled page is an error (the bytes of 40 spots across the file's column chunks)."""
    from imgnet_tools.errors import SchemaError
    from imgnet_tools.manifest.parquet import read_table
    from imgnet_tools.manifest.stream import iter_chunks

    want = pq.read_table(good)
    meta = pq.ParquetFile(good).metadata.row_group(0)
    spans = [(meta.column(i).data_page_offset, meta.column(i).total_compressed_size) for i in range(meta.num_columns)]
    rng = random.Random(7)
    for n in range(40):
        start, size = rng.choice(spans)
        at = start + rng.randrange(size)
        data = bytearray(good.read_bytes())
        data[at] ^= 1 << rng.randrange(8)
        path = tmp_path / f"spoiled_{n}.parquet"
        path.write_bytes(bytes(data))
        for read in (lambda: read_table(path, "manifest"),
                     lambda: pa.concat_tables(list(iter_chunks(path, "manifest", 16)))):
            try:
                got = read()
            except SchemaError:
                continue
            assert got.equals(read_table(good, "manifest")), f"byte {at} spoiled a value silently"
    assert want.num_rows == 40


RECIPE_OK = """\
format_version: 1
name: recipe
inputs:
  data: data
outputs:
  work: work
stages:
  - stage: scan
    params:
      src: ["${data}"]
      out: ${work}
"""


@pytest.mark.parametrize("edit,field", [
    (lambda t: t + "colour: red\n", "'colour'"),
    (lambda t: t + "      bogus: 1\n", "'bogus'"),
    (lambda t: t + "      chunk-rows: many\n", "'chunk_rows'"),
    (lambda t: t + "      workers: 2\n      workers: 3\n", "'workers'"),
    (lambda t: t.replace("format_version: 1", "format_version: 99"), "format_version"),
    (lambda t: t.replace("name: recipe", "name: [recipe"), "not valid YAML"),
    (lambda t: t.replace("stage: scan", "stage: sacn"), "'sacn'"),
    (lambda t: t.replace("name: recipe\n", "name: recipe\nname: again\n"), "'name'"),
], ids=["unknown_top_key", "unknown_param", "wrong_type", "duplicate_param", "future_version", "broken_yaml",
        "unknown_stage", "duplicate_top_key"])
def test_bad_recipe_is_one_line_naming_file_and_field(tmp_path: Path, edit: Callable[[str], str], field: str,
                                                      invoke) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "data").mkdir()
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(edit(RECIPE_OK))
    for extra in (["--dry-run"], ["-q"]):
        result = invoke("run", recipe, *extra)
        assert result.exit_code == 2, result.output
        line = _one_error_line(result.stderr)
        assert "bad.yaml:" in line and field in line, line
    assert not (tmp_path / "work").exists()  # validated before anything ran


def test_bad_manifest_through_the_installed_console_script(good: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.parquet"
    corrupt(good, manifest)
    shutil.copy(manifest, tmp_path / "copy.parquet")
    proc = run_installed("verify", str(manifest))
    assert proc.returncode == 2
    assert str(manifest) in _one_error_line(proc.stderr)
