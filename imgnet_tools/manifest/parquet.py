"""Parquet tables declared in ``schemas/``: Arrow schema from the JSON, atomic write, checked read.

The Arrow schema's metadata carries ``imgnet.schema`` (artifact name) and
``imgnet.format_version``; :func:`read_table` refuses a file whose name or version it does not know.
A table may hold a subset of the declared columns (the manifest grows stage by stage), but every
column it holds must be declared, with the declared type, and every ``required`` column must be there.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from imgnet_tools.errors import SchemaError
from imgnet_tools.manifest.atomic import atomic_path
from imgnet_tools.manifest.schemas import check_version, format_version, load_schema

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

META_SCHEMA = b"imgnet.schema"
META_VERSION = b"imgnet.format_version"


def arrow_without_pandas() -> None:
    """Let pyarrow find pandas missing in this process (a no-op when pandas is already imported).

    pyarrow imports pandas, when it is installed (crowd-kit needs it), the first time it converts
    Python objects (``pa.array``, ``Table.from_pylist``), to check for pandas objects: about 0.2 s
    of CPU in every process that builds a table, for interop imgnet never uses (no stage calls
    ``to_pandas`` or ``from_pandas``). pyarrow tries that import once per process, so one conversion
    made while ``import pandas`` fails settles it; pandas itself stays importable. Only where
    imgnet owns the whole process (:func:`own_process`: the ``imgnet`` console script, the local
    pool's workers); a library caller's process is left alone."""
    import sys

    if "pandas" in sys.modules or _NoPandas.settled or not _NoPandas.owned:
        return
    import pyarrow as pa

    _NoPandas.settled = True
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(finder)


def own_process() -> None:
    """Say that imgnet owns this whole process (see :func:`arrow_without_pandas`)."""
    _NoPandas.owned = True


class _NoPandas:
    """An import finder that refuses pandas (in place only while pyarrow makes its one try)."""

    settled = False
    owned = False

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.partition(".")[0] == "pandas":
            raise ImportError("pandas is not used by imgnet")
        return None


def _arrow_type(spec: str) -> "pa.DataType":
    import pyarrow as pa

    spec = spec.strip()
    if spec.startswith("list<") and spec.endswith(">"):
        return pa.list_(_arrow_type(spec[5:-1]))
    simple = {
        "string": pa.string(), "bool": pa.bool_(), "binary": pa.binary(),
        "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
        "uint8": pa.uint8(), "uint16": pa.uint16(), "uint32": pa.uint32(), "uint64": pa.uint64(),
        "float32": pa.float32(), "float64": pa.float64(),
        "timestamp[ns]": pa.timestamp("ns"), "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
    }
    if spec not in simple:
        raise SchemaError(f"unknown column type {spec!r} in a schema file")
    return simple[spec]


def arrow_schema(name: str, columns: Iterable[str] | None = None) -> "pa.Schema":
    """Arrow schema of artifact ``name`` (all declared columns, or just ``columns``, in declared order)."""
    return _arrow_schema(name, None if columns is None else tuple(columns))


@functools.lru_cache(maxsize=256)
def _arrow_schema(name: str, columns: tuple[str, ...] | None) -> "pa.Schema":  # schemas are immutable: shared
    import pyarrow as pa

    schema = load_schema(name)
    if schema.get("kind") != "parquet":
        raise SchemaError(f"schema {name} describes {schema.get('kind')}, not a Parquet table")
    wanted = None if columns is None else set(columns)
    fields = [
        pa.field(f["name"], _arrow_type(f["type"]), nullable=bool(f.get("nullable", True)))
        for f in schema["fields"]
        if wanted is None or f["name"] in wanted
    ]
    if wanted is not None:
        unknown = wanted - {f.name for f in fields}
        if unknown:
            raise SchemaError(f"columns {sorted(unknown)} are not declared in schema {name}")
    meta = {META_SCHEMA: name.encode(), META_VERSION: str(format_version(name)).encode()}
    return pa.schema(fields, metadata=meta)


def conform(table: "pa.Table", name: str, where: str | None = None,
            only: "Sequence[str] | None" = None) -> "pa.Table":
    """Return ``table`` with declared column order, declared types and the schema metadata; for a
    schema with ``full_columns`` (the manifest), every declared column, missing ones as nulls.

    Raises :class:`SchemaError` (naming ``where`` and the column) for an undeclared column, a
    missing required column, a null in a non-nullable column, or a value that cannot be cast to
    the declared type. ``only``: a projection; just these columns are checked and returned.
    """
    import pyarrow as pa

    schema = load_schema(name)
    place = f"{where}: " if where else ""
    required = [f["name"] for f in schema["fields"] if f.get("required", False) and (only is None or f["name"] in only)]
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise SchemaError(f"{place}{name} table lacks required columns {missing}")
    declared = {f["name"] for f in schema["fields"]}
    undeclared = [c for c in table.column_names if c not in declared]
    if undeclared:
        raise SchemaError(f"{place}{name} table has columns {undeclared} that are not declared in schema {name}")
    full = bool(schema.get("full_columns"))
    if only is not None:
        target = arrow_schema(name, [c for c in only if c in declared and (full or c in table.column_names)])
    else:
        target = arrow_schema(name) if full else arrow_schema(name, table.column_names)
    arrays = []
    for field in target:
        if field.name not in table.column_names:
            arrays.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        if column.type != field.type and not _same_kind(column.type, field.type):
            raise SchemaError(f"{place}{name} column {field.name!r} holds {column.type}, but schema {name} declares "
                              f"{field.type}; the file was not written by imgnet, or was edited: write it again.")
        if not field.nullable and column.null_count:
            raise SchemaError(f"{place}{name} column {field.name!r} has {column.null_count} nulls but is not nullable")
        try:
            arrays.append(column.cast(field.type) if column.type != field.type else column)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise SchemaError(f"{place}{name} column {field.name!r}: cannot store {column.type} as "
                              f"{field.type}: {exc}") from exc
    return pa.Table.from_arrays(arrays, schema=target)


def _kind(t: "pa.DataType") -> str:
    import pyarrow as pa

    for kind, test in (("int", pa.types.is_integer), ("float", pa.types.is_floating), ("bool", pa.types.is_boolean),
                       ("string", lambda x: pa.types.is_string(x) or pa.types.is_large_string(x)),
                       ("binary", lambda x: pa.types.is_binary(x) or pa.types.is_large_binary(x)),
                       ("timestamp", pa.types.is_timestamp)):
        if test(t):
            return kind
    return str(t)


def _same_kind(found: "pa.DataType", declared: "pa.DataType") -> bool:
    """Whether a column of type ``found`` may be cast to ``declared``: within one kind (int32 to
    int64, large_string to string, a list of such), or an all-null column. A string column where
    numbers are declared (or the reverse) is a wrong file, never silently converted."""
    import pyarrow as pa

    if pa.types.is_null(found):
        return True
    if pa.types.is_list(declared) or pa.types.is_large_list(declared):
        return (pa.types.is_list(found) or pa.types.is_large_list(found)) and _same_kind(found.value_type,
                                                                                         declared.value_type)
    return _kind(found) == _kind(declared)


def table_from_columns(columns: Mapping[str, list[Any]], name: str) -> "pa.Table":
    """A table of artifact ``name`` from one Python list per declared column, typed by the schema.

    For tables we build ourselves (a shard's manifest slice): what :func:`conform` checks of a
    table from elsewhere comes from the schema here, except nulls in a non-nullable column,
    which raise :class:`SchemaError` as they do there.
    """
    import pyarrow as pa

    schema = arrow_schema(name)
    table = pa.Table.from_pydict(dict(columns), schema=schema)
    for field in schema:
        if not field.nullable and table.column(field.name).null_count:
            raise SchemaError(f"{name} column {field.name!r} has nulls but is not nullable")
    return table


def write_table(table: "pa.Table", path: str | os.PathLike[str], name: str, **kwargs: Any) -> Path:
    """Conform ``table`` to schema ``name`` and write it to ``path`` atomically (zstd Parquet)."""
    import pyarrow.parquet as pq

    table = conform(table, name)
    path = Path(path)
    with atomic_path(path) as tmp:
        kwargs.setdefault("write_page_checksum", True)  # read_table verifies them: corruption is an error
        pq.write_table(table, tmp, compression=kwargs.pop("compression", "zstd"), **kwargs)
    return path


def check_file(path: str | os.PathLike[str], name: str) -> tuple["pa.Schema", int]:
    """The Arrow schema and ``format_version`` of a Parquet artifact, checked: it exists, it is a
    readable Parquet file, it is artifact ``name``, at a version this imgnet reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a Parquet file" if path.is_dir() else "does not exist"
        raise SchemaError(f"{path} {what}; pass the {name} file a stage wrote (see `imgnet --help`).")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise SchemaError(f"{path} is not a readable Parquet file ({_first_line(exc)}); it may be truncated or "
                          "corrupt: restore it, or write it again with the stage that made it.") from exc
    meta = schema.metadata or {}
    found = meta.get(META_SCHEMA, b"").decode("utf-8", "replace")
    if found != name:
        raise SchemaError(f"{path} is a {found or 'foreign'} table, not {name}; pass the right file.")
    version = check_version(name, meta.get(META_VERSION, b"?").decode("utf-8", "replace"), str(path))
    _check_columns(schema, name, str(path))
    return schema, version


def _check_columns(schema: "pa.Schema", name: str, where: str) -> None:
    """The footer's columns against the declared ones: every required column there, every declared
    column of a castable type. From the footer alone, so a stage that reads only a few columns
    still refuses a file whose other columns are wrong (before any work starts)."""
    declared = arrow_schema(name)
    missing = [f["name"] for f in load_schema(name)["fields"] if f.get("required") and f["name"] not in schema.names]
    if missing:
        raise SchemaError(f"{where}: {name} table lacks required columns {missing}")
    for field in schema:
        index = declared.get_field_index(field.name)
        if index < 0:
            continue
        want = declared.field(index).type
        if field.type != want and not _same_kind(field.type, want):
            raise SchemaError(f"{where}: {name} column {field.name!r} holds {field.type}, but schema {name} declares "
                              f"{want}; the file was not written by imgnet, or was edited: write it again.")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_table(path: str | os.PathLike[str], name: str, columns: list[str] | None = None) -> "pa.Table":
    """Read a Parquet artifact whole (checked as :func:`check_file` does, conformed to its schema).

    For small tables; stages read manifests chunk by chunk (:mod:`imgnet_tools.manifest.stream`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema, _ = check_file(path, name)
    present = [c for c in (columns or schema.names) if c in schema.names]
    try:
        table = pq.read_table(path, columns=present, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as exc:
        raise SchemaError(f"{path} cannot be read ({_first_line(exc)}); it may be truncated or corrupt.") from exc
    return conform(table, name, str(path), only=columns)
