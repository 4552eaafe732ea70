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
from imgnet_tools.manifest.schemas import read_valid_json, validate_json

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
    train: dict[str, Any] | None = None  # the newest *.train.json (schema train_record)
    evaluation: dict[str, Any] | None = None  # the newest imgnet eval --out report (schema eval_report)
    caltech: dict[str, Any] | None = None  # caltech_classes.json of a Caltech-101 scan
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


def _parquet_kind(path: Path, strict: bool = True) -> str:
    """The artifact a ``manifest.parquet`` in the run holds; one that does not read, or is not
    ours, is an error naming it (a report that quietly said "no data" would hide the damage).

    ``strict=False`` (Parquet files merely named like a votes table): the schema name, "" when the
    file does not read or is not ours.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, ValueError, pa.ArrowException) as exc:
        if not strict:
            return ""
        raise SchemaError(f"{path} is not a readable Parquet file ({str(exc).strip().splitlines()[0][:200]}); it may "
                          "be truncated or corrupt: restore it, or write it again with the stage that made it.") from exc
    kind = meta.get(b"imgnet.schema", b"").decode("utf-8", "replace")
    if strict and kind not in ("manifest", "shard_manifest"):
        raise SchemaError(f"{path} is a {kind or 'foreign'} table, not an imgnet manifest; move it out of the run "
                          "directory or write it again with the stage that made it.")
    return kind


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
        **learning_kinds(files),
    }
    # Votes tables by their schema name; only Parquet files named like them are opened (a shard
    # directory holds a Parquet slice per shard).
    votes_like = [p for p in files if p.suffix == ".parquet" and ("votes" in p.name or "consensus" in p.name)]
    for kind in VOTES_KINDS:
        kinds[kind] = [p for p in votes_like if _parquet_kind(p, strict=False) == kind]
    for kind, paths in kinds.items():
        if paths:
            found[kind] = max(paths, key=lambda p: p.stat().st_mtime_ns)
    return run, found


def _valid_doc(path: Path, schema: str) -> dict[str, Any] | None:
    """The JSON document at ``path`` when it follows ``schema``, else None."""
    return read_valid_json(path, schema)


def learning_kinds(files: list[Path]) -> dict[str, list[Path]]:
    """Training records, evaluation reports and Caltech name tables among ``files`` (learning sections)."""
    return {
        "train_record": [p for p in files if p.name.endswith(".train.json") and _valid_doc(p, "train_record")],
        "eval_report": [p for p in files if p.suffix == ".json" and "eval" in p.name and _valid_doc(p, "eval_report")],
        "caltech_classes": [p for p in files if p.name == "caltech_classes.json" and _valid_doc(p, "caltech_classes")],
    }


MANIFEST_COLUMNS = ("key", "split", "label", "wnid", "status", "reason", "path", "source_path", "cluster_id", "dup_of")


MAX_CLUSTERS = 500  # clusters whose rows the report keeps (the largest; the dedup reports list all)


def _manifest_summary(path: Path) -> dict[str, Any]:
    """Counts by (split, class, status) and by reason, and the rows of the largest duplicate clusters.

    Read chunk by chunk and aggregated in Arrow, so a 14M-row manifest never becomes Python rows:
    the counts are summed over chunks, cluster sizes kept as one numpy array, and a second pass
    reads the rows of the :data:`MAX_CLUSTERS` largest clusters only.
    """
    import collections

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from imgnet_tools.manifest.stream import iter_chunks

    by_class: collections.Counter[tuple[Any, ...]] = collections.Counter()
    by_reason: collections.Counter[tuple[Any, ...]] = collections.Counter()
    sizes = np.zeros(0, dtype=np.int64)
    rows = 0
    for table in iter_chunks(path, "manifest", 65536, columns=list(MANIFEST_COLUMNS)):
        rows += table.num_rows
        for col in ("label", "wnid", "reason", "cluster_id", "dup_of"):  # optional ones a manifest may lack
            if col not in table.column_names:
                table = table.append_column(col, pa.nulls(table.num_rows, pa.int64() if col == "cluster_id" else pa.string()))
        for counter, keys in ((by_class, ["split", "label", "wnid", "status"]), (by_reason, ["status", "reason"])):
            for entry in table.group_by(keys, use_threads=False).aggregate([("key", "count")]).to_pylist():
                counter[tuple(entry[k] for k in keys)] += entry["key_count"]
        ids = pc.drop_null(table.column("cluster_id")).to_numpy()
        if len(ids):
            counts = np.bincount(ids)
            if len(counts) > len(sizes):
                sizes = np.concatenate([sizes, np.zeros(len(counts) - len(sizes), dtype=np.int64)])
            sizes[:len(counts)] += counts
    present = np.flatnonzero(sizes)
    top = present[np.lexsort((present, -sizes[present]))][:MAX_CLUSTERS]
    clusters: list[dict[str, Any]] = []
    if len(top):
        wanted = pa.array(np.sort(top))
        for table in iter_chunks(path, "manifest", 65536, columns=list(MANIFEST_COLUMNS)):
            picked = table.filter(pc.fill_null(pc.is_in(table.column("cluster_id"), value_set=wanted), False))
            clusters += picked.select(["key", "split", "path", "source_path", "cluster_id", "dup_of", "status"]).to_pylist()
    return {"rows": rows,
            "by_class": [dict(zip(["split", "label", "wnid", "status"], k), key_count=n) for k, n in by_class.items()],
            "by_reason": [dict(zip(["status", "reason"], k), key_count=n) for k, n in by_reason.items()],
            "clusters": clusters, "clusters_total": len(present), "clustered_rows": int(sizes.sum())}


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
    data.train, data.evaluation, data.caltech = (_valid_doc(found[k], k) if k in found else None
                                                 for k in ("train_record", "eval_report", "caltech_classes"))
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
