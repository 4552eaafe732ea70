"""Which questions a manifest asks, and a row's status before the votes touched it.

The question of a manifest row is (key, wnid): "does this image show its own synset?". Rows are
asked when they are usable (status ok, fixed or fixable) or were set aside by an earlier
``votes apply`` (reason votes_no, no_consensus or votes_pending: new votes may bring them
back); rejected and duplicate rows are never shown to anyone. An extra questions file (CSV or
Parquet with key, wnid) asks about other synsets too, for multi-label rows.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgnet_tools.errors import InputError
from imgnet_tools.images.check import VOTE_REASONS
from imgnet_tools.votes.table import is_wnid

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

USABLE = ("ok", "fixed", "fixable")
COLUMNS = ("key", "wnid", "label", "path", "status", "reason", "pre_votes_status", "pre_votes_reason")


@dataclass
class ManifestQuestions:
    """The manifest's columns needed by the votes commands, and the rows to ask about."""

    table: "pa.Table"  # COLUMNS that the manifest has (missing ones as nulls), every row
    asked: "pa.Table"  # key, wnid of the rows asked about (own label), manifest order

    def classes(self) -> dict[str, int]:
        """wnid -> class index, from the rows that have both."""
        return {w: int(lab) for w, lab in zip(self.table.column("wnid").to_pylist(), self.table.column("label").to_pylist())
                if w is not None and lab is not None}

    def paths(self) -> dict[str, str]:
        """key -> path of the bytes, for the rows asked about."""
        chosen = self.table.filter(base_usable(self.table))
        return dict(zip(chosen.column("key").to_pylist(), chosen.column("path").to_pylist()))

    def keys(self) -> set[str]:
        return set(self.table.column("key").to_pylist())


def base_status(table: "pa.Table") -> "pa.Array":
    """Each row's status as if ``votes apply`` had never rejected it."""
    import pyarrow.compute as pc

    by_votes = pc.fill_null(pc.is_in(table.column("reason"), value_set=_vote_reasons()), False)
    restorable = pc.and_(by_votes, pc.is_valid(table.column("pre_votes_status")))
    return pc.if_else(restorable, table.column("pre_votes_status"), table.column("status"))


def base_usable(table: "pa.Table") -> "pa.Array":
    """True for rows that are asked about (usable before the votes, with a wnid)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    usable = pc.is_in(base_status(table), value_set=pa.array(USABLE))
    return pc.and_(usable, pc.is_valid(table.column("wnid")))


def _vote_reasons() -> "pa.Array":
    import pyarrow as pa

    return pa.array(list(VOTE_REASONS), pa.string())


def read_manifest(path: str | Path) -> ManifestQuestions:
    """The manifest's votes-related columns and its asked questions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from imgnet_tools.manifest.parquet import arrow_schema, read_table

    try:
        present = set(pq.read_schema(path).names)
    except (OSError, pa.ArrowInvalid):
        present = set()  # read_table below reports the problem properly
    table = read_table(path, "manifest", columns=[c for c in COLUMNS if c in present])
    for field in arrow_schema("manifest", COLUMNS):
        if field.name not in table.column_names:  # optional columns a young manifest lacks
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    table = table.select(list(COLUMNS))
    asked = table.filter(base_usable(table)).select(["key", "wnid"])
    return ManifestQuestions(table, asked)


def read_questions_file(path: str | Path, known_keys: set[str]) -> "pa.Table":
    """An extra questions file (CSV or Parquet with columns key, wnid); every row checked."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise InputError(f"--questions {path} does not exist.")
    rows: list[tuple[int, Any, Any]]
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        if not {"key", "wnid"} <= set(table.column_names):
            raise InputError(f"--questions {path}: needs the columns key and wnid.")
        rows = [(i + 2, k, w) for i, (k, w) in enumerate(zip(table.column("key").to_pylist(), table.column("wnid").to_pylist()))]
    else:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not {"key", "wnid"} <= set(reader.fieldnames or []):
                raise InputError(f"--questions {path}: needs a header with the columns key and wnid.")
            rows = [(reader.line_num, r["key"], r["wnid"]) for r in reader]
    for line, key, wnid in rows:
        if key not in known_keys or not is_wnid(wnid):
            raise InputError(f"{path}:{line}: ({key!r}, {wnid!r}) is not a manifest key with a wnid (n + 8 digits).")
    return pa.table({"key": pa.array([r[1] for r in rows], pa.string()), "wnid": pa.array([r[2] for r in rows], pa.string())})
