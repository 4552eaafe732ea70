"""The final manifest, assembled chunk by chunk: the plan (or the earlier manifest) with each
chunk's fetch results laid over it, written through ``manifest.stream.TableWriter`` while the
chunks are fetched (``run._StreamedManifest``).

Memory is one chunk at a time (and at most 64 results that came in ahead of their turn) plus
8 bytes per row for the keys handed out so far
(:class:`~imgnet_tools.manifest.hashset.HashSet64`), so a 14-million-row list assembles in about
115 MB. Rows keep the input's order. Keys are unique: a key that an earlier row already has (an
image id listed twice) gets ``-r<position>`` (the row's position in the manifest) on every row
after its first, so the same input always gives the same keys. (A 64-bit hash collision can give
a key a suffix it did not need, about once in 10^5 ImageNet-21k-sized runs; never a duplicate key.)

A fetched row is ``pending`` with ``path`` = ``source_path`` = the stored file; a row that was not
fetched is ``rejected`` with a ``path`` under ``DIR/_state/failed/`` that never exists.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import TYPE_CHECKING

from imgnet_tools.collect.state import STATE

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

# Columns a refetched row gets from its new result (verify's columns cleared: it must look again).
VERIFY_COLUMNS = ("format", "mode", "width", "height", "issues", "detail", "verify_policy")


class Assembler:
    """Turns (base chunk, committed results) into manifest chunks and counts what they hold.

    ``unique``: hand out unique keys (the plan's base keys); False when the base is an earlier
    manifest, whose keys are unique already."""

    def __init__(self, out: Path, unique: bool) -> None:
        from imgnet_tools.manifest.hashset import HashSet64

        self.failed_prefix = f"{out}/{STATE}/failed/"
        self.unique = unique
        self.keys = HashSet64()
        self.rows = 0
        self.status: collections.Counter[str] = collections.Counter()
        self.reasons: collections.Counter[str] = collections.Counter()

    def chunk(self, base: "pa.Table", results: "pa.Table | None") -> "pa.Table":
        """One manifest chunk: ``base`` with unique keys, ``results`` (rows by ``offset``) laid over it."""
        import pyarrow as pa

        from imgnet_tools.images.verify import apply_updates
        from imgnet_tools.manifest.parquet import conform

        if self.unique:
            base = self._unique_keys(base)
        if "path" not in base.column_names:  # a plan chunk: nothing stored yet
            failed = self._fill_path(base.append_column("path", pa.nulls(base.num_rows, pa.string())))
            base = base.append_column("path", failed).append_column("source_path", failed)
        table = conform(base, "manifest")  # every column, so that every result column lands
        if results is not None and results.num_rows:
            table = apply_updates(table, self._update(table, results))
        self.rows += table.num_rows
        count_rows(table, self.status, self.reasons)
        return table

    def _update(self, base: "pa.Table", results: "pa.Table") -> "pa.Table":
        """The columns each fetched row gets: the fetch's, its path as source too, verify's cleared."""
        import pyarrow as pa

        from imgnet_tools.manifest.parquet import arrow_schema

        keys = base.column("key").take(results.column("offset"))
        path = self._fill_path(pa.table({"path": results.column("path"), "key": keys}))
        columns = {name: results.column(name) for name in results.column_names if name not in ("tried", "new_file")}
        columns.update(path=path, source_path=path, source_bytes=results.column("bytes"),
                       source_mtime_ns=results.column("mtime_ns"))
        schema = arrow_schema("manifest", VERIFY_COLUMNS)
        for name in VERIFY_COLUMNS:
            columns[name] = pa.nulls(results.num_rows, schema.field(name).type)
        return pa.table(columns)

    def _fill_path(self, table: "pa.Table") -> "pa.ChunkedArray":
        """``path``, with ``DIR/_state/failed/KEY`` where it is null."""
        import pyarrow as pa
        import pyarrow.compute as pc

        failed = pc.binary_join_element_wise(pa.scalar(self.failed_prefix), table.column("key"), "")
        return pc.coalesce(table.column("path"), failed)

    def _unique_keys(self, base: "pa.Table") -> "pa.Table":
        import pyarrow as pa

        from imgnet_tools.manifest.hashset import hash64

        keys = base.column("key").to_pylist()
        clash = self.keys.contains_hashes(hash64(keys)).tolist()
        chosen: set[str] = set()
        changed = False
        for i, key in enumerate(keys):
            if clash[i] or key in chosen:
                new, position = key, self.rows + i
                while new in chosen or bool(self.keys.contains([new])[0]):
                    new = f"{new}-r{position}"
                keys[i], changed = new, True
            chosen.add(keys[i])
        self.keys.add(keys)
        return _set(base, "key", pa.array(keys, pa.string())) if changed else base


def _set(table: "pa.Table", name: str, values: "pa.Array | pa.ChunkedArray") -> "pa.Table":
    index = table.column_names.index(name)
    return table.set_column(index, table.schema.field(index), values.cast(table.schema.field(index).type))


def count_rows(table: "pa.Table", status: collections.Counter[str], reasons: collections.Counter[str]) -> None:
    import pyarrow.compute as pc

    for entry in pc.value_counts(table.column("status")).to_pylist():
        if entry["values"] is not None:
            status[entry["values"]] += entry["counts"]
    for entry in pc.value_counts(table.column("reason")).to_pylist():
        if entry["values"] is not None:
            reasons[entry["values"]] += entry["counts"]


def summarize(manifest: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(rows by status, rejected rows by reason) of a manifest, read a few columns at a time."""
    from imgnet_tools.manifest.stream import iter_chunks

    status: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    for table in iter_chunks(manifest, "manifest", 65536, columns=["status", "reason"]):
        count_rows(table, status, reasons)
    return dict(sorted(status.items())), dict(sorted(reasons.items()))
