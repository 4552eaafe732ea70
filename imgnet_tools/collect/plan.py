"""The plan: input rows labelled and keyed, as Arrow tables of exactly ``chunk_rows`` rows.

The driver reads the lists a block at a time (:mod:`.inputs`) and cuts them into chunks; chunk
``i`` always holds input rows ``i * chunk_rows`` to ``(i + 1) * chunk_rows - 1``, so the plan can
be made again, the same, whenever it is needed (once to hand out the fetches, once more to
assemble the manifest) and never sits in memory whole: 14 million URLs cost one chunk at a time.

Per row: the split (the row's own, else ``--split``), the class (``label`` wins over ``wnid``;
resolved against ``--classes``/``--preset``, else against the sorted wnids of the input, as scan
does), and the base key ``split-[class-]id`` (:mod:`imgnet_tools.images.keys`), where the id is
the fall11 image id (``n02084071_1234``) or the row number (``000000042``); assembly makes keys
unique. Rows that will not be fetched are marked here: ``unknown_class``, or ``bad_url`` for a line
that did not parse.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgnet_tools.collect.inputs import ListRow, read_rows
from imgnet_tools.images import keys as keymod
from imgnet_tools.synsets.classlists import ClassList, derive_classes, is_wnid, load_classes

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

# The manifest columns the plan decides (assembly adds what the fetch found).
PLAN_COLUMNS = ("key", "split", "label", "wnid", "status", "reason", "url", "caption", "fetch_error")
READ_BLOCK = 10_000


def survey(paths: list[Path], classes: str | None, preset: str | None) -> tuple[ClassList, int]:
    """The class list and the number of input rows, in one pass over the lists.

    The class list comes from ``--classes``/``--preset``, else it is the sorted wnids found in the
    lists (only the distinct names are kept)."""
    given = load_classes(classes, preset)
    names: set[str] = set()
    rows = 0
    for block in read_rows(paths, READ_BLOCK):
        rows += len(block)
        if given is None:
            names.update(r.wnid for r in block if r.wnid and r.label is None)
    return (given if given is not None else derive_classes(names)), rows


def class_list(paths: list[Path], classes: str | None, preset: str | None) -> ClassList:
    """The class list alone (see :func:`survey`)."""
    return survey(paths, classes, preset)[0]


def resolve(row: ListRow, classes: ClassList, split: str) -> dict[str, Any]:
    """A plan row: split, label, wnid, base key, and the reason it cannot be fetched (if any)."""
    row_split = row.split or split
    label, wnid, name, reason, error = _label(row, classes)
    if row.error is not None:
        reason, error = "bad_url", row.error
    key = keymod.base_key(row_split, name, row.id or f"{row.row:09d}")
    return {"key": key, "url": row.url, "split": row_split, "label": label, "wnid": wnid, "caption": row.caption,
            "status": "rejected" if reason else "pending", "reason": reason, "fetch_error": error}


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


def plan_tables(paths: list[Path], classes: ClassList, split: str, chunk_rows: int) -> Iterator["pa.Table"]:
    """The plan, chunk by chunk: tables of :data:`PLAN_COLUMNS`, exactly ``chunk_rows`` rows each
    (the last one shorter)."""
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import arrow_schema

    schema = arrow_schema("manifest", PLAN_COLUMNS)
    pending: list[dict[str, Any]] = []
    for block in read_rows(paths, min(READ_BLOCK, chunk_rows)):
        pending.extend(resolve(r, classes, split) for r in block)
        while len(pending) >= chunk_rows:
            yield pa.Table.from_pylist(pending[:chunk_rows], schema=schema)
            del pending[:chunk_rows]
    if pending:
        yield pa.Table.from_pylist(pending, schema=schema)
