"""The final manifest: every chunk's part, in chunk order, as one ``manifest.parquet``.

Rows keep the input's order (chunks are consecutive row ranges). Keys are unique within the
manifest: a key that two input rows share (an image id listed twice) gets ``-r`` and the row's
position appended on every row after its first, so the same input always gives the same keys.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

from imgnet_tools.collect.state import MANIFEST, part_path
from imgnet_tools.errors import SchemaError


def assemble(out: Path, chunks: int) -> Path:
    """Write ``out/manifest.parquet`` from the ``chunks`` parts (all of which must exist)."""
    import pyarrow as pa

    from imgnet_tools.collect.chunk import ROW_COLUMNS
    from imgnet_tools.manifest.parquet import arrow_schema, read_table, write_table

    schema = arrow_schema("manifest", ROW_COLUMNS)
    tables = []
    for i in range(chunks):
        part = part_path(out, i)
        if not part.is_file():
            raise SchemaError(f"{part} is missing though its chunk finished; run `imgnet collect` again to redo it.")
        tables.append(read_table(part, "manifest", columns=list(ROW_COLUMNS)).cast(schema))
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    table = _unique_keys(table)
    return write_table(table, out / MANIFEST, "manifest")


def _unique_keys(table: Any) -> Any:
    """``table`` with repeated keys made unique (``KEY-rN``, N the row's position)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    counts = table.group_by("key").aggregate([("key", "count")])
    repeated = pc.filter(counts.column("key"), pc.greater(counts.column("key_count"), 1))
    if not len(repeated):
        return table
    keys = table.column("key").to_pylist()
    dup = set(repeated.to_pylist())
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if key in dup:
            if key in seen:
                keys[i] = f"{key}-r{i}"
            seen.add(key)
    index = table.schema.get_field_index("key")
    return table.set_column(index, table.schema.field("key"), pa.array(keys, pa.string()))


def summarize(manifest: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(rows by status, rejected rows by reason) of a manifest, read column by column."""
    from imgnet_tools.manifest.parquet import read_table

    table = read_table(manifest, "manifest", columns=["status", "reason"])
    status = collections.Counter(table.column("status").to_pylist())
    reasons = collections.Counter(r for r in table.column("reason").to_pylist() if r)
    return dict(sorted(status.items())), dict(sorted(reasons.items()))
