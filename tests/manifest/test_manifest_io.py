"""Schemas, atomic writes and Parquet I/O shared by every stage."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imgnet_tools.errors import OutputExistsError, SchemaError
from imgnet_tools.manifest import atomic, parquet, schemas


def test_every_schema_file_is_well_formed() -> None:
    names = schemas.schema_names()
    assert "manifest" in names
    for name in names:
        doc = schemas.load_schema(name)
        assert isinstance(doc["format_version"], int) and doc["format_version"] >= 1, name
        assert doc["kind"] in {"parquet", "json", "text"}, name
        assert doc.get("description"), f"{name} schema has no description"
        if doc["kind"] == "parquet":
            arrow = parquet.arrow_schema(name)
            assert len(arrow) == len(doc["fields"]) and all(f.get("description") for f in doc["fields"]), name
        elif doc["kind"] == "json":
            jsonschema.Draft202012Validator.check_schema(doc["json_schema"])
            assert "format_version" in doc["json_schema"].get("required", []), f"{name}: format_version not required"
        else:
            assert doc["line_pattern"], name


def _manifest_rows() -> pa.Table:
    return pa.table({
        "key": ["train_n1_a", "train_n1_b"], "path": ["/x/a.jpg", "/x/b.jpg"], "source_path": ["/x/a.jpg", "/x/b.jpg"],
        "split": ["train", "train"], "label": [0, 1], "status": ["pending", "pending"],
    })


def test_parquet_round_trip_keeps_declared_types_and_version(tmp_path: Path) -> None:
    out = parquet.write_table(_manifest_rows(), tmp_path / "manifest.parquet", "manifest")
    table = parquet.read_table(out, "manifest")
    assert table.schema.field("label").type == pa.int32()
    declared = [f["name"] for f in schemas.load_schema("manifest")["fields"]]
    assert table.column_names == declared  # format 2: every declared column, nulls where no stage wrote
    assert table.column("key").to_pylist() == ["train_n1_a", "train_n1_b"]
    assert table.column("phash").null_count == 2
    assert pq.read_schema(out).metadata[b"imgnet.format_version"] == b"2"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.parquet"]  # no temp file left


def test_a_format_1_manifest_still_reads_and_streams(tmp_path: Path) -> None:
    """The first release wrote only the columns its stages had filled, as format_version 1."""
    from imgnet_tools.manifest.stream import iter_chunks, table_info

    old = _manifest_rows().replace_schema_metadata({b"imgnet.schema": b"manifest", b"imgnet.format_version": b"1"})
    pq.write_table(old, tmp_path / "v1.parquet")
    assert table_info(tmp_path / "v1.parquet", "manifest").version == 1
    table = parquet.read_table(tmp_path / "v1.parquet", "manifest")
    assert table.column("key").to_pylist() == ["train_n1_a", "train_n1_b"] and table.column("sha256").null_count == 2
    chunks = list(iter_chunks(tmp_path / "v1.parquet", "manifest", 1, columns=["key", "sha256"]))
    assert [c.column_names for c in chunks] == [["key", "sha256"]] * 2


def test_undeclared_or_missing_columns_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="not declared"):
        parquet.write_table(_manifest_rows().append_column("colour", pa.array(["r", "g"])), tmp_path / "m.parquet", "manifest")
    with pytest.raises(SchemaError, match="lacks required columns"):
        parquet.write_table(_manifest_rows().drop(["status"]), tmp_path / "m.parquet", "manifest")
    with pytest.raises(SchemaError, match="nulls"):
        parquet.write_table(_manifest_rows().set_column(0, "key", pa.array([None, "b"], pa.string())), tmp_path / "m.parquet", "manifest")
    assert not list(tmp_path.iterdir())


def test_unknown_format_version_and_foreign_files_are_clear_errors(tmp_path: Path) -> None:
    table = parquet.conform(_manifest_rows(), "manifest")
    future = table.replace_schema_metadata({b"imgnet.schema": b"manifest", b"imgnet.format_version": b"99"})
    pq.write_table(future, tmp_path / "future.parquet")
    with pytest.raises(SchemaError, match="format_version '99'"):
        parquet.read_table(tmp_path / "future.parquet", "manifest")
    pq.write_table(pa.table({"a": [1]}), tmp_path / "foreign.parquet")
    with pytest.raises(SchemaError, match="foreign"):
        parquet.read_table(tmp_path / "foreign.parquet", "manifest")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(SchemaError, match="not a readable Parquet"):
        parquet.read_table(tmp_path / "junk.parquet", "manifest")
    with pytest.raises(SchemaError, match="does not exist"):
        parquet.read_table(tmp_path / "missing.parquet", "manifest")


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic.atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_output_dir_refuses_then_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic.atomic_output_dir(out) as stage:
        (stage / "a.txt").write_text("1")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        with atomic.atomic_output_dir(out):
            pass
    with pytest.raises(ValueError):
        with atomic.atomic_output_dir(out, overwrite=True) as stage:
            (stage / "b.txt").write_text("2")
            raise ValueError("stage failed")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]  # untouched by the failed run
    with atomic.atomic_output_dir(out, overwrite=True) as stage:
        (stage / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_validate_json_names_the_field() -> None:
    names = [n for n in schemas.schema_names() if schemas.load_schema(n)["kind"] == "json"]
    if not names:
        pytest.skip("no JSON artifact schema shipped yet")
    with pytest.raises(SchemaError, match="does not match schema"):
        schemas.validate_json({"format_version": "not-an-int-or-object"}, names[0])


def test_schema_files_are_valid_json() -> None:
    for path in schemas.schemas_dir().glob("*.schema.json"):
        json.loads(path.read_text())


def test_atomic_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    """mkstemp/mkdtemp make 0600/0700; shared datasets need what open()/mkdir() would give."""
    import os

    mask = os.umask(0o022)
    try:
        atomic.atomic_write_text(tmp_path / "f.txt", "x")
        with atomic.atomic_output_dir(tmp_path / "d") as stage:
            (stage / "g.txt").write_text("y")
    finally:
        os.umask(mask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    atomic.atomic_write_bytes(target, b"old")  # creates the missing folder
    with pytest.raises(TypeError):
        atomic.atomic_write_bytes(target, 12345)  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]
