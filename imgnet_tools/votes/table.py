"""The votes table (schema ``votes``): one row per answer, appended atomically and de-duplicated.

Appending reads the table, adds the rows it does not hold yet (equal on every column, the
answer time included) and rewrites it atomically, all under an exclusive ``flock`` on a lock
file beside it, so ``imgnet votes import`` and ``imgnet votes serve`` can append at the same
time without losing each other's rows. Importing the same file twice therefore adds nothing.

A worker may answer a question more than once (the page lets people change their mind); the
table keeps every answer and :func:`latest_answers` picks each worker's last one: the latest
``answered_at``, then the row appended last.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

SCHEMA = "votes"
COLUMNS = ("key", "wnid", "worker", "answer", "source", "answered_at")
ANSWERS = ("yes", "no", "maybe")
SOURCES = ("mturk", "label_studio", "page", "table")
WNID_RE = re.compile(r"n[0-9]{8}")

# What people and tools write for the three answers (compared lower-cased and stripped).
_ANSWER_WORDS = {
    "yes": "yes", "y": "yes", "true": "yes", "1": "yes", "on": "yes",
    "no": "no", "n": "no", "false": "no", "0": "no", "off": "no",
    "maybe": "maybe", "unsure": "maybe", "not sure": "maybe", "?": "maybe", "can't tell": "maybe",
    "cannot tell": "maybe", "don't know": "maybe",
}


def normalize_answer(value: Any) -> str | None:
    """``yes``, ``no`` or ``maybe`` for the usual spellings of them; None for anything else."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (str, int)):
        return None
    return _ANSWER_WORDS.get(str(value).strip().lower())


def is_wnid(value: Any) -> bool:
    """True for a WordNet noun id: ``n`` and eight digits."""
    return isinstance(value, str) and WNID_RE.fullmatch(value) is not None


def lock_path(path: Path) -> Path:
    """The lock file of the votes table at ``path`` (hidden, beside it)."""
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the votes table's exclusive lock (waits for another writer; released if we die)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path(target), "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def empty_votes() -> "pa.Table":
    """A votes table with no rows."""
    from imgnet_tools.manifest.parquet import arrow_schema

    return arrow_schema(SCHEMA).empty_table()


def votes_from_columns(columns: Mapping[str, Sequence[Any]]) -> "pa.Table":
    """A votes table from one sequence per column (``answered_at``: datetimes or None)."""
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import arrow_schema

    schema = arrow_schema(SCHEMA)
    return pa.Table.from_pydict({c: list(columns[c]) for c in COLUMNS}, schema=schema)


def read_votes(path: str | os.PathLike[str], missing_ok: bool = True) -> "pa.Table":
    """The votes table at ``path`` (every column); an empty one when it does not exist yet."""
    from imgnet_tools.manifest.parquet import conform, read_table

    if missing_ok and not Path(path).exists():
        return empty_votes()
    return conform(read_table(path, SCHEMA), SCHEMA)


@dataclass(frozen=True)
class AppendResult:
    """What an append did: rows offered, rows added, rows already there (or repeated)."""

    offered: int
    added: int
    duplicates: int
    total: int


def _identity(table: "pa.Table") -> "pa.Array":
    """One string per row that is equal exactly when the rows are equal on every column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    when = pc.cast(pc.cast(table.column("answered_at"), pa.int64()), pa.string())
    parts = [table.column(c) for c in COLUMNS[:-1]] + [pc.fill_null(when, "")]
    joined = pc.binary_join_element_wise(*parts, "\x1f", null_handling="replace", null_replacement="")
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def new_rows(old: "pa.Table", new: "pa.Table") -> "pa.Table":
    """The rows of ``new`` that ``old`` does not hold, each once, in their order in ``new``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if new.num_rows == 0:
        return new
    ids = _identity(new)
    first = pa.table({"id": ids, "row": pa.array(np.arange(len(ids)))}).group_by("id", use_threads=False).aggregate(
        [("row", "min")])
    keep = np.zeros(len(ids), dtype=bool)
    keep[first.column("row_min").to_numpy()] = True
    if old.num_rows:
        keep &= ~pc.is_in(ids, value_set=_identity(old)).to_numpy(zero_copy_only=False)
    return new.filter(pa.array(keep))


def append_votes(path: str | os.PathLike[str], new: "pa.Table") -> AppendResult:
    """Add the rows of ``new`` that the table at ``path`` lacks; rewrite it atomically if any."""
    return append_many(path, [new])[0]


def append_many(path: str | os.PathLike[str], tables: Sequence["pa.Table"]) -> list[AppendResult]:
    """Append several tables in one atomic rewrite; one result per table, in order (a row that
    an earlier table of the same call added counts as a duplicate for a later one)."""
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import conform, write_table

    results = []
    with locked(path):
        current = read_votes(path)
        before = current.num_rows
        for new in tables:
            new = conform(new.select(list(COLUMNS)), SCHEMA)
            fresh = new_rows(current, new)
            if fresh.num_rows:
                current = pa.concat_tables([current, fresh])
            results.append(AppendResult(new.num_rows, fresh.num_rows, new.num_rows - fresh.num_rows, current.num_rows))
        if current.num_rows != before or not Path(path).exists():
            write_table(current.combine_chunks(), path, SCHEMA)
    return results


def latest_answers(table: "pa.Table") -> "pa.Table":
    """Each worker's last answer to each question (latest ``answered_at``, then last appended)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return table
    question = _codes(pc.binary_join_element_wise(table.column("key"), table.column("wnid"), "\x1f"))
    worker = _codes(table.column("worker"))
    group = question.astype(np.int64) * (int(worker.max()) + 1) + worker
    when = pc.fill_null(pc.cast(table.column("answered_at"), pa.int64()), np.iinfo(np.int64).min)
    when = when.to_numpy() if isinstance(when, pa.ChunkedArray) else when.to_numpy(zero_copy_only=False)
    order = np.lexsort((np.arange(len(group)), when, group))
    last = np.ones(len(order), dtype=bool)
    last[:-1] = group[order][1:] != group[order][:-1]
    picked = np.sort(order[last])
    return table.take(pa.array(picked))


def _codes(column: Any) -> Any:
    """Dense integer codes (0..n-1) of a string column, as a numpy array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return pc.dictionary_encode(column).indices.to_numpy(zero_copy_only=False)
