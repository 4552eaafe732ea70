"""Stage ``scan``: index the candidate pool into ``OUT/manifest.parquet``, one row per file.

Each file is stat-ed and its first bytes sniffed (so zero-byte files, text files, unreadable files,
symlink loops and non-UTF-8 names become ``rejected`` rows with a reason; everything else is
``pending`` for ``verify``). Labels resolve against a class list (see :mod:`.classes`).

Re-runs resume: a file already in the manifest keeps its key, and when its size and mtime are
unchanged it also keeps what later stages wrote (verify and dedup columns, a fixed copy).
"""

from __future__ import annotations

import collections
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgnet_tools.execute.local import map_ordered, resolve_workers
from imgnet_tools.images import caltech
from imgnet_tools.images import keys as keymod
from imgnet_tools.images.check import REASON_ORDER
from imgnet_tools.images.classes import ClassList, derive_classes, is_wnid, load_classes
from imgnet_tools.images.sniff import HEAD_BYTES, sniff_format
from imgnet_tools.images.sources import Candidate, Layout, discover, read_val_labels

MANIFEST = "manifest.parquet"
SCAN_COLUMNS = ("key", "path", "source_path", "split", "label", "wnid", "bytes", "mtime_ns",
                "source_bytes", "source_mtime_ns", "status", "reason")
SCAN_REASONS = frozenset({"missing", "unreadable", "symlink_loop", "not_a_file", "non_utf8_name",
                          "unknown_class", "empty", "not_an_image"})


@dataclass(frozen=True)
class ScanParams:
    """``imgnet scan`` options (field names = CLI option names)."""

    src: tuple[str, ...]
    out: str
    classes: str | None = None
    preset: str | None = None
    split: str | None = None
    val_labels: str | None = None
    val_id_map: str | None = None
    workers: int | None = None
    include_background: bool = False


@dataclass
class ScanResult:
    """Summary of a scan (``--json`` prints :meth:`to_dict`)."""

    manifest: str
    rows: int
    new: int
    kept: int
    removed: int
    classes: int
    splits: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def scan(params: ScanParams, progress: Callable[[int], None] | None = None) -> ScanResult:
    """Find, probe and label every candidate file; write ``OUT/manifest.parquet`` atomically."""
    from imgnet_tools.manifest.parquet import write_table

    rows, existing, classes = _plan(params, progress)
    out = Path(params.out) / MANIFEST
    write_table(to_table(rows), out, "manifest")
    caltech.write_table(out.parent, params.src, classes, rows, params.include_background)
    present = {r["source_path"] for r in rows}
    kept = sum(1 for p in present if p in existing)
    return ScanResult(
        manifest=str(out), rows=len(rows), new=len(rows) - kept, kept=kept,
        removed=sum(1 for p in existing if p not in present), classes=len(classes),
        splits=dict(sorted(collections.Counter(r["split"] for r in rows).items())),
        status=dict(sorted(collections.Counter(r["status"] for r in rows).items())),
        reasons=dict(sorted(collections.Counter(r["reason"] for r in rows if r["reason"]).items())),
    )


def outputs_complete(params: ScanParams) -> bool:
    """True when the manifest exists and a re-scan would produce exactly the same rows."""
    rows, existing, _ = _plan(params, None)
    return bool(existing) and len(rows) == len(existing) and all(_same_row(existing.get(r["source_path"]), r) for r in rows)


def _same_row(stored: dict[str, Any] | None, planned: dict[str, Any]) -> bool:
    """Equal rows, a column missing on one side counting as null (later stages add columns)."""
    return stored is not None and all(stored.get(k) == planned.get(k) for k in stored.keys() | planned.keys())


def _plan(params: ScanParams, progress: Callable[[int], None] | None
          ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], ClassList]:
    """The rows a scan would write, the existing rows by source path, and the class list used."""
    out = Path(params.out)
    classes = load_classes(params.classes, params.preset)
    labels = read_val_labels(params.val_labels, params.val_id_map) if params.val_labels else None
    layout = Layout(split=params.split, val_labels=labels, exclude=(os.path.abspath(out),),
                    include_background=params.include_background)
    cands = discover(tuple(params.src), layout)
    if classes is None:
        classes = derive_classes(c.class_name for c in cands)
    existing = _existing_rows(out)
    probes = map_ordered(probe, [c.path for c in cands], workers=resolve_workers(params.workers),
                         chunksize=64, progress=progress)
    alloc = keymod.KeyAllocator({existing[p]["key"] for p in map(stored_path, (c.path for c in cands)) if p in existing})
    rows = [_row(c, found, classes, existing, alloc) for c, found in zip(cands, probes)]
    return caltech.add_wnids(rows, params.src, classes), existing, classes


def stored_path(path: str) -> str:
    """``path`` as stored in the manifest: bytes of a non-UTF-8 name written as ``\\xNN`` escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _first_reason(*reasons: str | None) -> str | None:
    """The reason that comes first in the vocabulary's order (None when there is none)."""
    given = [r for r in reasons if r]
    return min(given, key=REASON_ORDER.index) if given else None


def _row(cand: Candidate, found: tuple[int | None, int | None, str | None], classes: ClassList,
         existing: dict[str, dict[str, Any]], alloc: keymod.KeyAllocator) -> dict[str, Any]:
    """The manifest row of one candidate, reusing an earlier run's row where the file is unchanged."""
    size, mtime, probe_reason = found
    path = stored_path(cand.path)
    label, wnid, class_name, label_reason = _resolve(cand, classes)
    reason = _first_reason(cand.reason, probe_reason, "non_utf8_name" if path != cand.path else None, label_reason)
    old = existing.get(path)
    if old is not None and reason is None and _unchanged(old, size, mtime) and old.get("reason") not in SCAN_REASONS:
        return {**old, "split": cand.split, "label": label, "wnid": wnid}
    key = old["key"] if old is not None else alloc.allocate(
        keymod.base_key(cand.split, class_name, os.path.basename(cand.path)))
    return {
        "key": key, "path": path, "source_path": path, "split": cand.split, "label": label, "wnid": wnid,
        "bytes": size, "mtime_ns": mtime, "source_bytes": size, "source_mtime_ns": mtime,
        "status": "rejected" if reason else "pending", "reason": reason,
    }


def _unchanged(old: dict[str, Any], size: int | None, mtime: int | None) -> bool:
    before = (old.get("source_bytes", old.get("bytes")), old.get("source_mtime_ns", old.get("mtime_ns")))
    return size is not None and before == (size, mtime)


def _resolve(cand: Candidate, classes: ClassList) -> tuple[int | None, str | None, str | None, str | None]:
    """(label, wnid, class name, reason) of a candidate; an unknown class is a row reason."""
    if cand.label is not None:
        if len(classes) and not 0 <= cand.label < len(classes):
            return None, None, None, "unknown_class"
        name = classes.names[cand.label] if len(classes) else cand.class_name
        return cand.label, name if is_wnid(name) else None, name, None
    if cand.class_name is None:
        return None, None, None, None
    index = classes.index(cand.class_name)
    wnid = cand.class_name if is_wnid(cand.class_name) else None
    return index, wnid, cand.class_name, None if index is not None else "unknown_class"


def _existing_rows(out: Path) -> dict[str, dict[str, Any]]:
    """Rows of a manifest from an earlier run, by source path (empty when there is none)."""
    from imgnet_tools.manifest.parquet import read_table

    path = out / MANIFEST
    if not path.is_file():
        return {}
    return {r["source_path"]: r for r in read_table(path, "manifest").to_pylist()}


def probe(path: str) -> tuple[int | None, int | None, str | None]:
    """(bytes, mtime_ns, reason) of one file: stat it and sniff its first bytes. Never raises."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return None, None, os_reason(exc)
    if not stat.S_ISREG(st.st_mode):
        return None, st.st_mtime_ns, "not_a_file"
    if st.st_size == 0:
        return 0, st.st_mtime_ns, "empty"
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        return st.st_size, st.st_mtime_ns, os_reason(exc)
    # formats we name but do not decode stay pending: verify reports them as unsupported_format
    reason = None if sniff_format(head) is not None else "not_an_image"
    return st.st_size, st.st_mtime_ns, reason


def os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink_loop"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "missing"
    if exc.errno == errno.EISDIR:
        return "not_a_file"
    return "unreadable"


def to_table(rows: list[dict[str, Any]]) -> Any:
    """Arrow table of ``rows`` with every column any row has, typed by the manifest schema."""
    import pyarrow as pa

    from imgnet_tools.manifest.parquet import arrow_schema

    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    schema = arrow_schema("manifest", columns or SCAN_COLUMNS)
    return pa.Table.from_pylist(rows, schema=schema)
