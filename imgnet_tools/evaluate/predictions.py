"""Predictions files: the table ``imgnet predict`` writes and ``imgnet eval`` scores, and the devkit format.

Formats read (``format="auto"`` picks by suffix):

* ``parquet``: our table (schema ``predictions``: ``key``, ranked ``labels`` and ``wnids`` lists,
  optional ``scores``), or any Parquet file in the wide form below;
* ``csv`` / ``tsv``: wide form, a ``key`` column and ``pred_1`` .. ``pred_K`` (K <= 5), each cell a
  wnid (``n01440764``) or a class index, best guess first; empty cells after the last guess;
* ``devkit`` (``.txt``): the ILSVRC submission format, one line per validation image in file-name
  order, up to five space-separated ``ILSVRC2012_ID`` s (1..1000, the devkit's own numbering).

A malformed file (no ``key`` column, an empty or duplicated key, more than five guesses, a cell that
is neither a wnid nor an integer, a gap between guesses) is a run-level :class:`InputError` naming
the line; what the values *mean* (unknown wnids, indices out of range) is checked against the class
list by :mod:`imgnet_tools.evaluate.run`, which counts it.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from imgnet_tools.errors import InputError
from imgnet_tools.evaluate.metrics import TOP_K

SCHEMA = "predictions"
FORMATS = ("auto", "parquet", "csv", "tsv", "devkit")
WNID_RE = re.compile(r"n\d{8}")
WIDE_RE = re.compile(r"pred_(\d+)")

Token = int | str


@dataclass(frozen=True)
class Predictions:
    """Ranked guesses per row; ``kind`` says what the tokens are: ``index``, ``wnid`` or ``devkit_id``.

    ``keys`` is None for the devkit format, whose rows are validation images in file-name order.
    """

    path: str
    format: str
    kind: str
    keys: tuple[str, ...] | None
    guesses: tuple[tuple[Token, ...], ...]

    def __len__(self) -> int:
        return len(self.guesses)


def detect_format(path: Path, fmt: str) -> str:
    """The format to read ``path`` as (``auto`` decides by suffix)."""
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    by_suffix = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".txt": "devkit"}
    if suffix not in by_suffix:
        raise InputError(f"{path}: cannot tell the predictions format from the suffix {suffix!r}; name it .parquet, "
                         ".csv, .tsv or .txt (devkit), or pass --format.")
    return by_suffix[suffix]


def read_predictions(path: str | Path, fmt: str = "auto") -> Predictions:
    """Read a predictions file in any of the formats above."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; write it with `imgnet predict CKPT SHARDS --out {path}`.")
    fmt = detect_format(path, fmt)
    if fmt == "devkit":
        return _read_devkit(path)
    if fmt == "parquet":
        keys, rows = _read_parquet(path)
    else:
        keys, rows = _read_delimited(path, "\t" if fmt == "tsv" else ",")
    _check_keys(path, keys)
    kind, guesses = _typed(path, rows)
    return Predictions(str(path), fmt, kind, tuple(keys), guesses)


def _read_devkit(path: Path) -> Predictions:
    rows: list[tuple[Token, ...]] = []
    for lineno, line in enumerate(path.read_text(encoding="ascii", errors="replace").splitlines(), start=1):
        cells = line.split()
        if len(cells) > TOP_K:
            raise InputError(f"{path}:{lineno}: {len(cells)} guesses; the devkit format takes at most {TOP_K}.")
        if not all(c.isdigit() for c in cells):
            raise InputError(f"{path}:{lineno}: {line[:60]!r} is not space-separated ILSVRC2012_IDs (1..1000).")
        rows.append(tuple(int(c) for c in cells))
    if not rows:
        raise InputError(f"{path} holds no predictions.")
    return Predictions(str(path), "devkit", "devkit_id", None, tuple(rows))


def _wide_columns(path: Path, names: Sequence[str]) -> list[str]:
    found = sorted((int(m.group(1)), n) for n in names if (m := WIDE_RE.fullmatch(n)))
    if "key" not in names or not found:
        raise InputError(f"{path}: expected a 'key' column and pred_1..pred_{TOP_K} (ranked guesses), found "
                         f"{', '.join(names)}.")
    if [i for i, _ in found] != list(range(1, len(found) + 1)):
        raise InputError(f"{path}: guess columns must be pred_1..pred_K without gaps, found {[n for _, n in found]}.")
    if len(found) > TOP_K:
        raise InputError(f"{path}: {len(found)} guess columns; at most {TOP_K} (pred_1..pred_{TOP_K}) are scored.")
    return [n for _, n in found]


def _read_delimited(path: Path, delimiter: str) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path} is empty; expected a header 'key,pred_1,...'.")
            header = [h.strip() for h in header]
            cols = [header.index(n) for n in _wide_columns(path, header)]
            key_col = header.index("key")
            keys, rows = [], []
            for row in reader:
                if not any(c.strip() for c in row):
                    continue
                cells = row + [""] * (len(header) - len(row))
                keys.append(cells[key_col].strip())
                rows.append([cells[c].strip() for c in cols])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read predictions {path}: {exc}") from exc
    return keys, rows


def _read_parquet(path: Path) -> tuple[list[str], list[list[str]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path} is not a readable Parquet file: {exc}") from exc
    if meta.get(b"imgnet.schema") == SCHEMA.encode():
        from imgnet_tools.manifest.parquet import read_table

        table = read_table(path, SCHEMA)
        keys = [str(k) for k in table.column("key").to_pylist()]
        wnids = table.column("wnids").to_pylist() if "wnids" in table.column_names else None
        labels = table.column("labels").to_pylist()
        use_wnids = wnids is not None and all(w is not None and all(x is not None for x in w) for w in wnids)
        source = wnids if use_wnids else labels
        return keys, [[str(v) for v in (row or [])] for row in source]  # type: ignore[union-attr]
    cols = _wide_columns(path, table.column_names)
    keys = ["" if k is None else str(k) for k in table.column("key").to_pylist()]
    values = [table.column(c).to_pylist() for c in cols]
    return keys, [["" if v is None else str(v) for v in row] for row in zip(*values)] if values else []


def _check_keys(path: Path, keys: list[str]) -> None:
    empty = [i for i, k in enumerate(keys, start=2) if not k]
    if empty:
        raise InputError(f"{path}: row {empty[0]} has an empty key ({len(empty)} such rows).")
    dups = [k for k, n in Counter(keys).items() if n > 1]
    if dups:
        raise InputError(f"{path}: {len(dups)} key(s) appear more than once (first: {', '.join(sorted(dups)[:5])}); "
                         "each image needs exactly one prediction row.")
    if not keys:
        raise InputError(f"{path} holds no predictions.")


def _typed(path: Path, rows: list[list[str]]) -> tuple[str, tuple[tuple[Token, ...], ...]]:
    """All tokens as wnids or all as class indices; gaps between guesses are errors."""
    kinds: set[str] = set()
    out: list[tuple[Token, ...]] = []
    for lineno, row in enumerate(rows, start=2):
        while row and not row[-1]:
            row = row[:-1]
        if any(not c for c in row):
            raise InputError(f"{path}: row {lineno} has an empty guess before a later one; list guesses best first.")
        typed: list[Token] = []
        for cell in row:
            if WNID_RE.fullmatch(cell):
                kinds.add("wnid")
                typed.append(cell)
            elif re.fullmatch(r"-?\d+", cell):
                kinds.add("index")
                typed.append(int(cell))
            else:
                raise InputError(f"{path}: row {lineno}: guess {cell!r} is neither a wnid (n + 8 digits) nor a class index.")
        out.append(tuple(typed))
    if len(kinds) > 1:
        raise InputError(f"{path}: guesses mix wnids and class indices; use one kind throughout.")
    return (kinds.pop() if kinds else "index"), tuple(out)


def write_predictions(path: str | Path, keys: Sequence[str], labels: Sequence[Sequence[int]],
                      wnids: Sequence[Sequence[str | None]] | None = None,
                      scores: Sequence[Sequence[float]] | None = None) -> Path:
    """Write ranked predictions atomically: ``.parquet`` (schema ``predictions``) or ``.csv`` (wide form)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return _write_csv(path, keys, labels, wnids)
    if path.suffix.lower() != ".parquet":
        raise InputError(f"{path}: predictions are written as .parquet or .csv; rename the output.")
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import arrow_schema, write_table

    cols: dict[str, Any] = {"key": list(keys), "labels": [list(map(int, r)) for r in labels]}
    if wnids is not None and all(w is not None for row in wnids for w in row):
        cols["wnids"] = [list(r) for r in wnids]
    if scores is not None:
        cols["scores"] = [[float(s) for s in r] for r in scores]
    schema = arrow_schema(SCHEMA, cols)
    write_table(pa.Table.from_pydict(cols, schema=schema), path, SCHEMA)
    return path


def _write_csv(path: Path, keys: Sequence[str], labels: Sequence[Sequence[int]],
               wnids: Sequence[Sequence[str | None]] | None) -> Path:
    import io

    from imgnet_tools.manifest.atomic import atomic_write_text

    use = wnids if wnids is not None and all(w is not None for row in wnids for w in row) else labels
    width = max((len(r) for r in use), default=0)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["key", *(f"pred_{i}" for i in range(1, width + 1))])
    for key, row in zip(keys, use, strict=True):
        writer.writerow([key, *row, *([""] * (width - len(row)))])
    atomic_write_text(path, buf.getvalue())
    return path
