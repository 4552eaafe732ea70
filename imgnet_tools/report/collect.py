"""Find and read what a run left in a directory, each artifact through its schema-checked reader.

Where to look: ``DIR`` itself, its direct sub-directories, and every path named in the parameters
of ``DIR/run.json`` (so a recipe whose outputs live elsewhere is still found). Only those
directories are listed, never walked, so a report next to a million-image tree stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from imgnet_tools.errors import SchemaError
from imgnet_tools.manifest.atomic import TMP_PREFIX
from imgnet_tools.manifest.schemas import validate_json

RUN_RECORD = "run.json"
MANIFEST = "manifest.parquet"
DATASET = "dataset.json"
BENCH_SCHEMA = "bench_report"
VOTES_KINDS = ("votes", "votes_consensus", "votes_workers")


@dataclass(frozen=True)
class Source:
    """One artifact the report used: path, kind, size and sha256 (what a re-run compares).

    Content, not mtime: ``imgnet run`` re-runs scan, which rewrites an unchanged manifest.
    """

    path: Path
    kind: str
    bytes: int
    sha256: str

    @classmethod
    def of(cls, path: Path, kind: str) -> "Source":
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return cls(path.resolve(), kind, path.stat().st_size, digest.hexdigest())

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind, "bytes": self.bytes, "sha256": self.sha256}


@dataclass
class RunData:
    """Everything the report draws, with the sources it came from (None: not found)."""

    dir: Path
    run: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    bench: list[dict[str, Any]] = field(default_factory=list)
    votes: dict[str, Any] | None = None  # report.votes.summarise: only when a votes table is found
    sources: list[Source] = field(default_factory=list)


def _param_paths(value: Any) -> Iterable[Path]:
    if isinstance(value, str) and value.startswith("/"):
        yield Path(value)
    elif isinstance(value, list):
        for v in value:
            yield from _param_paths(v)


def candidate_dirs(root: Path, run: dict[str, Any] | None) -> list[Path]:
    """Directories to list: root, its children, and the directories named in run.json params."""
    dirs = [root]
    with os.scandir(root) as it:
        dirs += sorted(Path(e.path) for e in it if e.is_dir() and not e.name.startswith((".", "_")))
    for step in (run or {}).get("steps", []):
        for value in step.get("params", {}).values():
            for p in _param_paths(value):
                dirs.append(p if p.is_dir() else p.parent)
    seen, out = set(), []
    for d in dirs:
        key = d.resolve()
        if key not in seen and key.is_dir():
            seen.add(key)
            out.append(key)
    return out


def _files(dirs: list[Path]) -> list[Path]:
    found = []
    for d in dirs:
        with os.scandir(d) as it:
            found += sorted(Path(e.path) for e in it if e.is_file() and not e.name.startswith(TMP_PREFIX))
    return found


def _parquet_kind(path: Path) -> str:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):
        return ""
    return meta.get(b"imgnet.schema", b"").decode()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path}: not readable JSON: {exc}") from exc


def _read_bench(path: Path) -> list[dict[str, Any]]:
    """The bench report's measurements as rows (mode, images per second, parameters)."""
    doc = _read_json(path)
    if not isinstance(doc, dict) or "format_version" not in doc:
        return []
    try:
        validate_json(doc, BENCH_SCHEMA, str(path))
    except SchemaError:
        return []
    return bench_rows(doc)


def bench_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows ``{mode, images_per_s, ...}`` from a bench report document."""
    rows = []
    for m in doc.get("results", doc.get("measurements", [])):
        if isinstance(m, dict) and "mode" in m:
            rate = m.get("images_per_s", m.get("throughput"))
            if isinstance(rate, (int, float)):
                rows.append({**m, "images_per_s": float(rate)})
    return rows


def discover(root: Path) -> tuple[dict[str, Any] | None, dict[str, Path]]:
    """run.json (validated, or None) and the newest artifact of each kind found from ``root``."""
    run = None
    record = root / RUN_RECORD
    if record.is_file():
        run = _read_json(record)
        validate_json(run, "run_record", str(record))
    files = _files(candidate_dirs(root, run))
    found: dict[str, Path] = {}
    kinds = {
        "manifest": [p for p in files if p.name == MANIFEST and _parquet_kind(p) == "manifest"],
        "dataset": [p for p in files if p.name == DATASET],
        "bench_report": [p for p in files if p.suffix == ".json" and "bench" in p.name and _read_bench(p)],
    }
    # Votes tables by their schema name; only Parquet files named like them are opened (a shard
    # directory holds a Parquet slice per shard).
    votes_like = [p for p in files if p.suffix == ".parquet" and ("votes" in p.name or "consensus" in p.name)]
    for kind in VOTES_KINDS:
        kinds[kind] = [p for p in votes_like if _parquet_kind(p) == kind]
    for kind, paths in kinds.items():
        if paths:
            found[kind] = max(paths, key=lambda p: p.stat().st_mtime_ns)
    return run, found


MANIFEST_COLUMNS = ("key", "split", "label", "wnid", "status", "reason", "path", "source_path", "cluster_id", "dup_of")


def _manifest_summary(path: Path) -> dict[str, Any]:
    """Counts by (split, class, status) and by reason, and the rows of duplicate clusters.

    Aggregated in Arrow so that a 1.2M-row manifest never becomes Python objects row by row.
    """
    import pyarrow.parquet as pq

    from imgnet_tools.manifest.parquet import read_table

    present = set(pq.read_schema(path).names)
    table = read_table(path, "manifest", columns=[c for c in MANIFEST_COLUMNS if c in present])
    for col in ("label", "wnid", "reason", "cluster_id", "dup_of"):
        if col not in table.column_names:
            import pyarrow as pa

            table = table.append_column(col, pa.nulls(table.num_rows))
    by_class = table.group_by(["split", "label", "wnid", "status"]).aggregate([("key", "count")]).to_pylist()
    by_reason = table.group_by(["status", "reason"]).aggregate([("key", "count")]).to_pylist()
    import pyarrow.compute as pc

    dups = table.filter(pc.is_valid(table["cluster_id"])).select(
        ["key", "split", "path", "source_path", "cluster_id", "dup_of", "status"]).to_pylist()
    return {"rows": table.num_rows, "by_class": by_class, "by_reason": by_reason, "clusters": dups}


def collect(root: Path) -> RunData:
    """Read every artifact the report knows from ``root`` (see module docstring)."""
    data = RunData(root.resolve())
    data.run, found = discover(root)
    if "manifest" in found:
        data.manifest = _manifest_summary(found["manifest"])
    if "dataset" in found:
        doc = _read_json(found["dataset"])
        validate_json(doc, "dataset", str(found["dataset"]))
        data.dataset = doc
    if "bench_report" in found:
        data.bench = _read_bench(found["bench_report"])
    from imgnet_tools.report.votes import summarise

    data.votes = summarise(found)
    data.sources = [Source.of(p, kind) for kind, p in found.items()]
    return data


def fingerprint(root: Path) -> list[dict[str, Any]]:
    """The artifacts a report of ``root`` would draw now (what ``outputs_complete`` compares).

    run.json is left out on purpose: ``imgnet run`` rewrites it on every run, and the figures
    do not depend on it.
    """
    _, found = discover(root)
    return [Source.of(p, kind).to_dict() for kind, p in found.items()]
