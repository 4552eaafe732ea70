"""A plain long table of answers: CSV or Parquet with ``key, wnid, worker, answer`` (and optionally
``answered_at``, ISO 8601), one answer per row: what any other tool can be made to write."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterator

from imgnet_tools.errors import InputError
from imgnet_tools.votes.records import Problems, VoteRecord, parse_time

NEEDED = ("key", "wnid", "worker", "answer")


def looks_like_table(columns: list[str]) -> bool:
    return set(NEEDED) <= set(columns)


def _record(row: dict[str, Any], where: str, problems: Problems) -> VoteRecord | None:
    values = {c: row.get(c) for c in NEEDED}
    if any(v is None for v in values.values()):
        problems.add("malformed_row", f"{where} (missing fields)")
        return None
    worker = str(values["worker"]).strip()
    if not worker:
        problems.add("missing_worker", where)
        return None
    when = row.get("answered_at")
    stamp = when if hasattr(when, "tzinfo") else parse_time(when)
    return VoteRecord(str(values["key"]).strip(), str(values["wnid"]).strip(), worker, str(values["answer"]), stamp, where)


def read_csv(path: Path, problems: Problems) -> Iterator[VoteRecord]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not looks_like_table(list(reader.fieldnames or [])):
            raise InputError(f"{path}: a long table needs the columns {', '.join(NEEDED)}.")
        try:
            for row in reader:
                where = f"{path.name}:{reader.line_num}"
                if None in row:  # more fields than the header
                    problems.add("malformed_row", f"{where} (extra fields)")
                    continue
                record = _record(row, where, problems)
                if record is not None:
                    yield record
        except csv.Error as exc:
            problems.add("malformed_row", f"{path.name}:{reader.line_num} ({exc})")


def read_parquet(path: Path, problems: Problems) -> Iterator[VoteRecord]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if not looks_like_table(table.column_names):
        raise InputError(f"{path}: a long table needs the columns {', '.join(NEEDED)}.")
    for i, row in enumerate(table.to_pylist(), start=1):
        record = _record(row, f"{path.name}:row {i}", problems)
        if record is not None:
            yield record
