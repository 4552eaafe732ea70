"""URL lists: read CSV/TSV/Parquet/JSONL lists and ImageNet's ``fall11_urls.txt`` in bounded blocks.

Accepted inputs (by suffix):

* ``.csv`` / ``.tsv`` with a header, ``.parquet``, ``.jsonl`` / ``.ndjson`` (one JSON object per
  line): a ``url`` column, and ``wnid`` (class name) or ``label`` (class index), optionally
  ``split`` and ``caption``. Column names are matched case-insensitively.
* ``.txt``: ImageNet's ``fall11_urls.txt`` (``n02084071_1234<TAB>http://...``); the wnid is the
  id's part before ``_``, the id becomes the sample key.

Every input row becomes one :class:`ListRow`, numbered across all inputs in order (``row``):
malformed lines, missing URLs and undecodable bytes are rows that carry an ``error`` (collect
rejects them with ``bad_url``), never exceptions. Only an unreadable file or a list without a
``url`` column is an :class:`InputError`. Rows come in blocks of at most ``block`` rows, so a
14-million-row ImageNet-21k list never sits in memory as Python objects at once.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgnet_tools.errors import InputError

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl", ".ndjson")
FALL11_SUFFIXES = (".txt",)
COLUMNS = ("url", "wnid", "label", "split", "caption")


@dataclass(frozen=True)
class ListRow:
    """One input row as read: nothing checked yet except that text decoded (``error`` says what did not)."""

    row: int
    url: str | None
    id: str | None = None
    wnid: str | None = None
    label: str | None = None
    split: str | None = None
    caption: str | None = None
    error: str | None = None


def check_inputs(paths: tuple[str, ...]) -> list[Path]:
    """The inputs as absolute paths; an :class:`InputError` for a missing file or an unknown suffix."""
    if not paths:
        raise InputError("give at least one URL list (.csv, .tsv, .parquet, .jsonl, or fall11_urls.txt).")
    found = []
    for name in paths:
        path = Path(os.path.abspath(name))
        if not path.is_file():
            raise InputError(f"URL list {name} does not exist or is not a file.")
        if path.suffix.lower() not in TABLE_SUFFIXES + FALL11_SUFFIXES:
            raise InputError(f"{name}: unknown list format; use .csv, .tsv, .parquet, .jsonl/.ndjson, "
                             "or .txt for ImageNet's fall11_urls.txt (id<TAB>url).")
        found.append(path)
    return found


def read_rows(paths: list[Path], block: int = 10_000) -> Iterator[list[ListRow]]:
    """Every row of every list, numbered from 0 across the lists, in blocks of at most ``block``."""
    start = 0
    for path in paths:
        for rows in _read_one(path, start, block):
            if rows:
                start = rows[-1].row + 1
                yield rows


def _read_one(path: Path, start: int, block: int) -> Iterator[list[ListRow]]:
    suffix = path.suffix.lower()
    try:
        if suffix in FALL11_SUFFIXES:
            yield from _fall11(path, start, block)
        elif suffix == ".parquet":
            yield from _parquet(path, start, block)
        elif suffix in (".jsonl", ".ndjson"):
            yield from _jsonl(path, start, block)
        else:
            yield from _delimited(path, start, block, "\t" if suffix == ".tsv" else ",")
    except OSError as exc:
        raise InputError(f"cannot read URL list {path}: {exc}") from exc


def decode_url(raw: bytes) -> str:
    """URL text from raw bytes: UTF-8, with bytes that are not UTF-8 written as ``%XX`` (what a
    browser sends for them), so that old lists with Latin-1 bytes in their URLs still fetch."""
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "surrogateescape")
        return "".join(f"%{ord(c) - 0xDC00:02X}" if "\udc80" <= c <= "\udcff" else c for c in text).strip()


def _text(value: Any) -> str | None:
    """A cell as stripped text (None when empty); bytes decoded leniently."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    return text or None


def _fall11(path: Path, start: int, block: int) -> Iterator[list[ListRow]]:
    """``id<TAB>url`` lines; a line without a TAB (or an empty id) is a row with an error."""
    rows: list[ListRow] = []
    n = start
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            ident_raw, tab, url_raw = line.partition(b"\t")
            ident = ident_raw.decode("utf-8", "replace").strip() or None
            if not tab:
                rows.append(ListRow(n, None, id=ident, error=f"line {lineno}: no TAB between id and URL"))
            else:
                wnid = ident.split("_", 1)[0] if ident and "_" in ident else None
                rows.append(ListRow(n, decode_url(url_raw) or None, id=ident, wnid=wnid))
            n += 1
            if len(rows) >= block:
                yield rows
                rows = []
    yield rows


def _columns(path: Path, names: list[str]) -> dict[str, str]:
    """Our column name -> the list's own name (case-insensitive); a list without ``url`` is refused."""
    lower = {n.strip().lower(): n for n in names}
    if "url" not in lower:
        raise InputError(f"{path}: no 'url' column (found {', '.join(names[:8]) or 'none'}); "
                         "lists need url and wnid or label, optionally split and caption.")
    return {c: lower[c] for c in COLUMNS if c in lower}


def _row(n: int, cells: dict[str, Any], url: str | None = None) -> ListRow:
    return ListRow(n, url if url is not None else _text(cells.get("url")), wnid=_text(cells.get("wnid")),
                   label=_text(cells.get("label")), split=_text(cells.get("split")), caption=_text(cells.get("caption")))


def _delimited(path: Path, start: int, block: int, delimiter: str) -> Iterator[list[ListRow]]:
    """CSV/TSV through the csv module on a lenient text stream (bad bytes become U+FFFD, except in URLs
    where they become %XX; a caption may hold quoted newlines)."""
    with open(path, "rb") as raw:
        fh = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"{path}: cannot read the header: {exc}") from exc
        mapping = _columns(path, header)
        where = {ours: header.index(theirs) for ours, theirs in mapping.items()}
        rows: list[ListRow] = []
        n = start
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # a malformed record: a row with an error, then go on
                rows.append(ListRow(n, None, error=f"line {reader.line_num}: {exc}"))
                n += 1
                continue
            if not any(c.strip() for c in cells):
                continue
            got = {k: (cells[i] if i < len(cells) else None) for k, i in where.items()}
            url = got.get("url")
            url_text = decode_url(url.encode("utf-8", "surrogateescape")) if url else None
            clean = {k: (v.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if v else v)
                     for k, v in got.items()}
            rows.append(_row(n, clean, url_text or None))
            n += 1
            if len(rows) >= block:
                yield rows
                rows = []
        yield rows


def _parquet(path: Path, start: int, block: int) -> Iterator[list[ListRow]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a file that is not Parquet
        raise InputError(f"cannot read URL list {path}: {exc}") from exc
    mapping = _columns(path, pf.schema_arrow.names)
    n = start
    for batch in pf.iter_batches(batch_size=block, columns=list(mapping.values())):
        data = {ours: batch.column(theirs).to_pylist() for ours, theirs in mapping.items()}
        rows = [_row(n + i, {k: v[i] for k, v in data.items()}) for i in range(batch.num_rows)]
        n += batch.num_rows
        yield rows


def _jsonl(path: Path, start: int, block: int) -> Iterator[list[ListRow]]:
    """One JSON object per line; a line that is not one is a row with an error."""
    rows: list[ListRow] = []
    n = start
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            error: str | None = None
            try:
                doc = json.loads(raw)
            except ValueError as exc:
                doc, error = None, f"line {lineno}: not JSON ({exc})"
            if not isinstance(doc, dict):
                rows.append(ListRow(n, None, error=error or f"line {lineno}: not a JSON object"))
            else:
                cells = {k.strip().lower(): v for k, v in doc.items() if isinstance(k, str)}
                rows.append(_row(n, cells))
            n += 1
            if len(rows) >= block:
                yield rows
                rows = []
    yield rows
