"""``imgnet shards check|info``: re-read a shard directory against dataset.json and its manifests.

``check_shards`` re-reads every shard (one task per shard on the local pool) and compares it to
``dataset.json``, ``manifest.parquet``, the shard's Parquet slice and its DALI index: file size
and sha256, sample count, member names and order, header and data offsets and sizes, label,
per-member sha256, the JSON member, and that every image decodes. Problems are collected as
lines of text, never raised; a directory that cannot be read at all is a run-level error.

Memory: the driver reads ``manifest.parquet`` once as the ``shard`` column alone, chunk by chunk,
and keeps only where each shard's rows lie (runs of row numbers: one per shard in a manifest
``imgnet shard`` wrote, whose row groups follow shard order); each task then reads just its own
shard's rows (the row groups holding them), so no process holds a row of every sample at once.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from imgnet_tools.errors import SchemaError
from imgnet_tools.execute.params import ExecutorParams
from imgnet_tools.execute.tasks import run_tasks
from imgnet_tools.manifest.schemas import validate_json
from imgnet_tools.shards import state
from imgnet_tools.shards.index import parse_index
from imgnet_tools.shards.tario import Member, UnsafeMemberError, read_members

COMPONENTS = ("jpg", "cls", "json")


@dataclass(frozen=True)
class CheckParams:
    """``imgnet shards check DIR`` (``workers``: processes; None: every core)."""

    dir: str
    workers: int | None = None


@dataclass
class CheckResult:
    """Problems found (empty: the directory is sound), with what was checked."""

    dir: str
    shards: int
    samples: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def load_dataset(directory: str | Path) -> dict[str, Any]:
    """The validated ``dataset.json`` of a shard directory (SchemaError when missing or wrong)."""
    path = Path(directory) / state.DATASET_NAME
    if not path.is_file():
        raise SchemaError(f"{path} is missing: {directory} is not a finished shard directory (re-run imgnet shard).")
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SchemaError(f"{path} is not valid JSON: {exc}") from exc
    validate_json(doc, "dataset", str(path))
    return doc


def check_shards(params: CheckParams, progress: Callable[[int], None] | None = None) -> CheckResult:
    """Re-read every shard of ``params.dir``; ``progress`` gets each shard's sample count."""
    directory = Path(params.dir)
    doc = load_dataset(directory)
    by_shard = _shard_runs(directory / state.MANIFEST_NAME)
    tasks = [(str(directory), entry, by_shard.pop(entry["file"], [])) for entry in doc["shards"]]
    problems = [f"manifest.parquet lists shard {name} that dataset.json does not" for name in sorted(by_shard)]
    listed = {entry["file"] for entry in doc["shards"]}
    problems += [f"{p.name}: tar file not listed in dataset.json" for p in sorted(directory.glob("*.tar")) if p.name not in listed]
    if sum(e["samples"] for e in doc["shards"]) != doc["samples"]:
        problems.append("dataset.json: shard sample counts do not add up to 'samples'")
    results = run_tasks(_check_one, tasks, ExecutorParams(workers=params.workers),
                        on_done=lambda i, _: progress(tasks[i][1]["samples"]) if progress else None)
    problems += [p for found in results for p in found]
    return CheckResult(str(directory), len(tasks), doc["samples"], problems)


# Rows [start, stop) of manifest.parquet, in file order.
Run = tuple[int, int]
MANIFEST_CHUNK_ROWS = 65536


def _shard_runs(manifest: Path) -> dict[str, list[Run]]:
    """Where each shard's rows lie in ``manifest``: shard name -> runs of consecutive rows, in file
    order (read as the ``shard`` column alone, chunk by chunk; one Python object per run, not per row)."""
    import pyarrow.compute as pc

    from imgnet_tools.manifest.stream import iter_chunks

    runs: dict[str, list[Run]] = {}
    last: str | None = None
    start = 0
    for table in iter_chunks(manifest, "shard_manifest", MANIFEST_CHUNK_ROWS, columns=["shard"]):
        values = table.column("shard").combine_chunks()
        n = len(values)
        if not n:
            continue
        heads: list[int] = [0]
        if n > 1:
            changes = pc.not_equal(values.slice(1), values.slice(0, n - 1))
            heads += [i + 1 for i in pc.indices_nonzero(changes).to_pylist()]
        for head, tail in zip(heads, heads[1:] + [n]):
            name = values[head].as_py()
            if name == last:  # the run goes on from the previous chunk
                runs[name][-1] = (runs[name][-1][0], start + tail)
            else:
                runs.setdefault(name, []).append((start + head, start + tail))
            last = name
        start += n
    return runs


def _read_rows(manifest: Path, runs: list[Run]) -> list[dict[str, Any]]:
    """The rows of ``manifest`` in ``runs`` (one shard's), conformed; only the row groups holding
    them are read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from imgnet_tools.manifest.parquet import _first_line, check_file, conform

    if not runs:
        return []
    check_file(manifest, "shard_manifest")
    try:
        reader = pq.ParquetFile(manifest, page_checksum_verification=True)
        bounds = [0]
        for group in range(reader.metadata.num_row_groups):
            bounds.append(bounds[-1] + reader.metadata.row_group(group).num_rows)
        pieces = []
        for start, stop in runs:
            groups = [g for g in range(len(bounds) - 1) if bounds[g] < stop and bounds[g + 1] > start]
            if not groups or bounds[groups[-1] + 1] < stop:
                raise SchemaError(f"{manifest} changed while it was being checked; run the check again.")
            table = reader.read_row_groups(groups, use_threads=False)
            first = bounds[groups[0]]
            pieces.append(table.slice(start - first, stop - start))
        table = pa.concat_tables(pieces)
    except (pa.ArrowException, OSError) as exc:
        raise SchemaError(f"{manifest} cannot be read ({_first_line(exc)}); it may be truncated or corrupt.") from exc
    return conform(table, "shard_manifest", str(manifest)).to_pylist()


def _check_one(task: tuple[str, dict[str, Any], list[Run]]) -> list[str]:
    """Problems in one shard (a worker task): its rows are read from manifest.parquet here."""
    directory, entry, runs = task
    tar = Path(directory) / entry["file"]
    rows = _read_rows(Path(directory) / state.MANIFEST_NAME, runs)
    if not tar.is_file():
        return [f"{entry['file']}: missing"]
    problems = _check_file(tar, entry)
    try:
        members = list(read_members(str(tar)))
    except (UnsafeMemberError, tarfile.TarError, OSError, EOFError, ValueError) as exc:
        return problems + [f"{entry['file']}: cannot be read safely: {exc}"]
    if len(members) != 3 * entry["samples"]:
        problems.append(f"{entry['file']}: {len(members)} members, expected {3 * entry['samples']} ({entry['samples']} samples)")
    if len(rows) != entry["samples"]:
        problems.append(f"{entry['file']}: manifest.parquet has {len(rows)} rows, dataset.json says {entry['samples']}")
    for row, group in zip(rows, _groups(members)):
        problems += [f"{entry['file']}: {row['key']}: {p}" for p in _check_sample(row, group)]
    problems += _check_side_files(tar, rows)
    return problems


def _check_file(tar: Path, entry: dict[str, Any]) -> list[str]:
    problems = []
    size = tar.stat().st_size
    if size != entry["bytes"]:
        problems.append(f"{entry['file']}: {size} bytes, dataset.json says {entry['bytes']}")
    digest = hashlib.sha256()
    with open(tar, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    if digest.hexdigest() != entry["sha256"]:
        problems.append(f"{entry['file']}: sha256 differs from dataset.json")
    return problems


def _groups(members: list[Member]) -> list[list[Member]]:
    return [members[i:i + 3] for i in range(0, len(members), 3)]


def _check_sample(row: dict[str, Any], group: list[Member]) -> list[str]:
    names = [m.name for m in group]
    expected = [f"{row['key']}.{ext}" for ext in COMPONENTS]
    if names != expected:
        return [f"members {names}, expected {expected}"]
    problems = []
    for ext, member in zip(COMPONENTS, group):
        where = (member.header_offset, member.offset, len(member.data))
        if where != (row[f"{ext}_header_offset"], row[f"{ext}_offset"], row[f"{ext}_size"]):
            problems.append(f"{member.name}: header/data offset and size {where} differ from the manifest")
    image, label, meta = (m.data for m in group)
    if hashlib.sha256(image).hexdigest() != row["sha256"]:
        problems.append("image sha256 differs from the manifest")
    if label != str(-1 if row["label"] is None else row["label"]).encode():
        problems.append(f"label {label!r} differs from the manifest ({row['label']})")
    problems += _check_meta(row, meta)
    problems += _check_decode(image, row)
    return problems


def _check_meta(row: dict[str, Any], meta: bytes) -> list[str]:
    try:
        doc = json.loads(meta)
    except ValueError:
        return ["json member is not valid JSON"]
    expected = {"key": row["source_key"], "label": row["label"], "wnid": row["wnid"], "width": row["width"],
                "height": row["height"], "sha256": row["source_sha256"], "path": row["source_path"], "split": row["split"]}
    wrong = sorted(k for k, v in expected.items() if doc.get(k) != v)
    return [f"json member differs from the manifest in {wrong}"] if wrong else []


def _check_decode(image: bytes, row: dict[str, Any]) -> list[str]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image)) as decoded:
            decoded.load()
            size = decoded.size
    except Exception as exc:  # any decoder error is a finding, not a crash
        return [f"image does not decode: {type(exc).__name__}: {exc}"]
    if sorted(size) != sorted((row["width"], row["height"])):
        return [f"image is {size[0]}x{size[1]}, manifest says {row['width']}x{row['height']}"]
    return []


def _check_side_files(tar: Path, rows: list[dict[str, Any]]) -> list[str]:
    """The DALI index and the Parquet slice must say what manifest.parquet says."""
    from imgnet_tools.manifest.parquet import read_table

    problems = []
    try:
        index = parse_index(tar.with_suffix(".idx"))
        expected = [[(ext, r[f"{ext}_offset"], r[f"{ext}_size"], f"{r['key']}.{ext}") for ext in COMPONENTS] for r in rows]
        if [[(c.ext, c.offset, c.size, c.name) for c in s] for s in index] != expected:
            problems.append(f"{tar.with_suffix('.idx').name}: does not match the manifest")
    except (OSError, SchemaError) as exc:
        problems.append(f"{tar.with_suffix('.idx').name}: {exc}")
    try:
        if read_table(tar.with_suffix(".parquet"), "shard_manifest").to_pylist() != rows:
            problems.append(f"{tar.with_suffix('.parquet').name}: differs from manifest.parquet")
    except SchemaError as exc:
        problems.append(f"{tar.with_suffix('.parquet').name}: {exc}")
    return problems


def shards_info(directory: str) -> dict[str, Any]:
    """A summary of a shard directory from its dataset.json (reads no shard)."""
    doc = load_dataset(directory)
    counts = [s["samples"] for s in doc["shards"]]
    return {
        "dir": str(directory), "format_version": doc["format_version"], "created_by": doc["created_by"],
        "samples": doc["samples"], "shards": len(doc["shards"]), "bytes": sum(s["bytes"] for s in doc["shards"]),
        "classes": len(doc["classes"]), "splits": {k: {kk: v[kk] for kk in ("samples", "shards", "bytes")} for k, v in doc["splits"].items()},
        "samples_per_shard": {"min": min(counts, default=0), "max": max(counts, default=0)},
        "failed": len(doc["failed"]), "skipped": doc["source"]["skipped"], "params": doc["params"],
    }
