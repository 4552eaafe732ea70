"""Gold questions: (key, wnid) pairs whose answer is known, read from ``--gold-file`` files.

A gold file is a CSV or Parquet table with ``key, wnid, answer`` (answer yes or no; the schema
``votes_gold``, which ``imgnet votes export`` writes as ``gold.parquet``), or a consensus table
from ``imgnet votes aggregate`` / ``next``, whose ``yes`` and ``no`` decisions become gold: that
is how "earlier consensus" measures the workers of later batches. A bad gold file is a run-level
error naming the file and line: gold that is wrong would mis-measure every worker.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from imgnet_tools.errors import InputError
from imgnet_tools.votes.table import is_wnid, normalize_answer


@dataclass
class Gold:
    """Known answers: (key, wnid) -> ``yes`` or ``no``."""

    answers: dict[tuple[str, str], str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.answers)

    def add(self, key: str, wnid: str, answer: str, where: str) -> None:
        old = self.answers.get((key, wnid))
        if old is not None and old != answer:
            raise InputError(f"{where}: gold answer {answer!r} for ({key}, {wnid}) contradicts an earlier {old!r}; "
                             "fix the gold files so that each question has one answer.")
        self.answers[(key, wnid)] = answer


def _parquet_kind(path: Path) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"--gold-file {path}: not a readable Parquet file ({exc}).") from exc
    return meta.get(b"imgnet.schema", b"").decode()


def _rows_parquet(path: Path) -> Iterable[tuple[int, str, str, str]]:
    from imgnet_tools.manifest.parquet import read_table

    kind = _parquet_kind(path)
    if kind == "votes_consensus":
        table = read_table(path, kind, columns=["key", "wnid", "decision"])
        for i, (k, w, d) in enumerate(zip(*(table.column(c).to_pylist() for c in ("key", "wnid", "decision"))), 1):
            if d in ("yes", "no"):
                yield i, k, w, d
        return
    if kind != "votes_gold":
        raise InputError(f"--gold-file {path} is a {kind or 'foreign'} table; pass a gold table (key, wnid, answer) "
                         "or a consensus table from imgnet votes aggregate.")
    table = read_table(path, kind)
    yield from ((i, k, w, a) for i, (k, w, a) in
                enumerate(zip(*(table.column(c).to_pylist() for c in ("key", "wnid", "answer"))), 1))


def _rows_csv(path: Path) -> Iterable[tuple[int, str, str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"key", "wnid", "answer"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"--gold-file {path}: no column(s) {', '.join(sorted(missing))}; "
                             "a gold CSV has the columns key, wnid, answer.")
        for row in reader:
            yield reader.line_num, row["key"] or "", row["wnid"] or "", row["answer"] or ""


def load_gold(paths: Iterable[str | Path]) -> Gold:
    """Every gold file's answers (see module docstring)."""
    gold = Gold()
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"--gold-file {path} does not exist.")
        rows = _rows_parquet(path) if path.suffix == ".parquet" else _rows_csv(path)
        for line, key, wnid, raw in rows:
            answer = normalize_answer(raw)
            if not key or not is_wnid(wnid) or answer not in ("yes", "no"):
                raise InputError(f"{path}:{line}: a gold row needs a key, a wnid (n + 8 digits) and the answer yes or no; "
                                 f"got {key!r}, {wnid!r}, {raw!r}.")
            gold.add(key, wnid, answer, f"{path}:{line}")
    return gold


def write_gold(gold: Gold, path: Path) -> None:
    """Write ``gold`` as a ``votes_gold`` Parquet table (sorted by wnid, key)."""
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import arrow_schema, write_table

    items = sorted(gold.answers.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    table = pa.table({"key": [k for (k, _), _ in items], "wnid": [w for (_, w), _ in items],
                      "answer": [a for _, a in items]}, schema=arrow_schema("votes_gold"))
    write_table(table, path, "votes_gold")
