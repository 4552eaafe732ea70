"""The chunk plan: input rows labelled, keyed and spooled into chunk files of ``chunk_size`` rows.

The driver reads the lists once (twice when the class list is derived from them), a block at a
time, and writes each chunk's rows to ``_state/chunks/NNNNNN.parquet`` (schema
``collect_chunk``). A task then needs only its chunk's number, so millions of URLs never travel
to the workers, nor sit in the driver's memory, at once.

Per row: the split (the row's own, else ``--split``), the class (``label`` wins over ``wnid``;
resolved against ``--classes``/``--preset``, else against the sorted wnids of the input, as scan
does), and the sample key ``split-[class-]id`` (:mod:`imgnet_tools.images.keys`), where the id is
the fall11 image id (``n02084071_1234``) or the row number (``000000042``). Rows that cannot be
fetched are marked here: ``unknown_class``, or ``bad_url`` for a line that did not parse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from imgnet_tools.collect.inputs import ListRow, read_rows
from imgnet_tools.collect.state import chunk_path
from imgnet_tools.images import keys as keymod
from imgnet_tools.synsets.classlists import ClassList, derive_classes, is_wnid, load_classes

CHUNK_COLUMNS = ("row", "key", "url", "split", "label", "wnid", "caption", "reason", "fetch_error")
READ_BLOCK = 10_000


def class_list(paths: list[Path], classes: str | None, preset: str | None) -> ClassList:
    """The class list: from ``--classes``/``--preset``, else the sorted wnids found in the lists
    (one extra pass over them, keeping only the distinct names)."""
    given = load_classes(classes, preset)
    if given is not None:
        return given
    names: set[str] = set()
    for block in read_rows(paths, READ_BLOCK):
        names.update(r.wnid for r in block if r.wnid and r.label is None)
    return derive_classes(names)


def resolve(row: ListRow, classes: ClassList, split: str) -> dict[str, Any]:
    """A chunk row: split, label, wnid, key, and the reason it cannot be fetched (if any)."""
    row_split = row.split or split
    label, wnid, name, reason, error = _label(row, classes)
    if row.error is not None:
        reason, error = "bad_url", row.error
    key = keymod.base_key(row_split, name, row.id or f"{row.row:09d}")
    return {"row": row.row, "key": key, "url": row.url, "split": row_split, "label": label, "wnid": wnid,
            "caption": row.caption, "reason": reason, "fetch_error": error}


def _label(row: ListRow, classes: ClassList) -> tuple[int | None, str | None, str | None, str | None, str | None]:
    """(label, wnid, class name, reason, detail) of a row."""
    if row.label is not None:
        try:
            label = int(row.label)
        except ValueError:
            return None, None, None, "unknown_class", f"label {row.label[:40]!r} is not a class index"
        if len(classes) and not 0 <= label < len(classes):
            return None, None, None, "unknown_class", f"label {label} is outside the class list (0..{len(classes) - 1})"
        name = classes.names[label] if len(classes) else None
        return label, name if is_wnid(name) else None, name, None, None
    if row.wnid is None:
        return None, None, None, None, None
    index = classes.index(row.wnid)
    wnid = row.wnid if is_wnid(row.wnid) else None
    if index is None:
        return None, wnid, row.wnid, "unknown_class", f"class {row.wnid[:40]!r} is not in the class list"
    return index, wnid, row.wnid, None, None


def spool(paths: list[Path], classes: ClassList, split: str, chunk_size: int, out: Path,
          progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Write every chunk file; (rows, chunks). Chunks are cut at exactly ``chunk_size`` rows."""
    rows = chunks = 0
    for block in _chunks(paths, classes, split, chunk_size):
        _write_chunk(chunk_path(out, chunks), block)
        rows += len(block)
        chunks += 1
        if progress is not None:
            progress(len(block))
    return rows, chunks


def _chunks(paths: list[Path], classes: ClassList, split: str, chunk_size: int) -> Iterator[list[dict[str, Any]]]:
    pending: list[dict[str, Any]] = []
    for block in read_rows(paths, min(READ_BLOCK, chunk_size)):
        pending.extend(resolve(r, classes, split) for r in block)
        while len(pending) >= chunk_size:
            yield pending[:chunk_size]
            pending = pending[chunk_size:]
    if pending:
        yield pending


def _write_chunk(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import arrow_schema, write_table

    table = pa.Table.from_pylist(rows, schema=arrow_schema("collect_chunk", CHUNK_COLUMNS))
    write_table(table, path, "collect_chunk", compression="zstd")


def read_chunk(path: Path) -> list[dict[str, Any]]:
    """A chunk's rows, as written by :func:`spool`."""
    from imgnet_tools.manifest.parquet import read_table

    rows: list[dict[str, Any]] = read_table(path, "collect_chunk").to_pylist()
    return rows
