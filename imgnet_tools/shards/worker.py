"""Write one shard: the tar and its DALI index (one task); then its Parquet slice and done record.

A task is self-contained and deterministic: the same :class:`ShardTask` gives the same bytes in
any process on any machine, so the local pool and Ray produce identical output and a retried or
resumed shard is simply written again. Every file goes to a temporary name and is renamed into
place; the task first removes any old record, and :func:`commit` (run by the driver as each task
returns) writes the record last, so a crash at any point leaves no shard marked done that is
incomplete. A sample whose file cannot be read or decoded is left out and listed in the record
(``failed``), never raised.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgnet_tools.manifest.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from imgnet_tools.manifest.schemas import format_version
from imgnet_tools.shards import state
from imgnet_tools.shards.index import IndexEntry, format_index
from imgnet_tools.shards.plan import SampleIn, ShardPlan
from imgnet_tools.shards.sink import ShardSink
from imgnet_tools.shards.tario import TarBuilder
from imgnet_tools.shards.transform import JPEG_MAGIC, Encoded, TransformParams, encode, needs_decode, upright_size



@dataclass(frozen=True)
class ShardTask:
    """Everything needed to write one shard."""

    out: str
    plan: ShardPlan
    transform: TransformParams
    fingerprint: str


def _stored(sample: SampleIn, data: bytes, transform: TransformParams) -> Encoded:
    """The bytes to store: the source as is when possible (no decode), else re-encoded."""
    if data[:3] == JPEG_MAGIC and not needs_decode(transform):
        if sample.width is not None and sample.height is not None:
            return Encoded(data, sample.width, sample.height, reencoded=False)
        width, height = upright_size(data)
        return Encoded(data, width, height, reencoded=False)
    return encode(data, transform)


def _read(sample: SampleIn) -> tuple[bytes, str | None] | str:
    """The file's bytes and, when the manifest's sha256 can be trusted, that sha256.

    Change detection is make-style: an ``ok`` row whose file still has the size and mtime the
    scan recorded keeps verify's sha256 (hashing every source again would halve copy speed;
    ``imgnet shards check`` re-hashes every member). Otherwise the bytes are hashed and compared.
    Returns the reason instead when the file is unreadable or has changed.
    """
    try:
        with open(sample.path, "rb") as fh:
            info = os.fstat(fh.fileno())
            data = fh.read()
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if sample.mtime_ns is not None and sample.bytes is not None:
        if (info.st_size, info.st_mtime_ns) != (sample.bytes, sample.mtime_ns):
            return "changed since scan: size or mtime differs from the manifest"
        return data, sample.sha256
    if sample.sha256 and hashlib.sha256(data).hexdigest() != sample.sha256:
        return "changed since verify: sha256 differs from the manifest"
    return data, sample.sha256


def _load(sample: SampleIn, transform: TransformParams) -> tuple[Encoded, str] | str:
    """(stored image, source sha256), or the reason the sample has to be left out."""
    read = _read(sample)
    if isinstance(read, str):
        return read
    data, source_sha = read
    try:
        image = _stored(sample, data, transform)
    except Exception as exc:  # any decoder error is a per-image failure, not a run failure
        return f"undecodable: {type(exc).__name__}: {exc}"
    return image, source_sha or hashlib.sha256(data).hexdigest()


def _meta(sample: SampleIn, image: Encoded, source_sha: str) -> bytes:
    """The KEY.json member: keys in sorted order, compact, ASCII (the same bytes on any machine)."""
    doc = {"height": image.height, "key": sample.source_key, "label": sample.label, "path": sample.source_path,
           "sha256": source_sha, "split": sample.split, "width": image.width, "wnid": sample.wnid}
    return json.dumps(doc, separators=(",", ":")).encode("ascii")


def _row(task: ShardTask, position: int, sample: SampleIn, image: Encoded, source_sha: str, spans: list[Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "key": sample.key, "source_key": sample.source_key, "shard": f"{task.plan.stem}.tar",
        "shard_index": task.plan.index, "position": position, "split": sample.split, "label": sample.label,
        "wnid": sample.wnid, "width": image.width, "height": image.height,
        "sha256": source_sha if not image.reencoded else hashlib.sha256(image.data).hexdigest(),
        "source_sha256": source_sha, "source_path": sample.source_path, "reencoded": image.reencoded,
    }
    for ext, span in zip(("jpg", "cls", "json"), spans):
        row[f"{ext}_header_offset"], row[f"{ext}_offset"], row[f"{ext}_size"] = span.header_offset, span.offset, span.size
    return row


def _write_tar(task: ShardTask, tar_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, str]], int, str]:
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    with atomic_path(tar_path) as tmp:
        with ShardSink(tmp) as sink:
            builder = TarBuilder(sink)
            for sample in task.plan.samples:
                loaded = _load(sample, task.transform)
                if isinstance(loaded, str):
                    failed.append({"key": sample.source_key, "reason": loaded})
                    continue
                image, source_sha = loaded
                label = b"-1" if sample.label is None else str(sample.label).encode("ascii")
                spans = [builder.add(f"{sample.key}.jpg", image.data), builder.add(f"{sample.key}.cls", label),
                         builder.add(f"{sample.key}.json", _meta(sample, image, source_sha))]
                rows.append(_row(task, len(rows), sample, image, source_sha, spans))
            size = builder.finish()
    return rows, failed, size, sink.hexdigest()


def _index_text(rows: list[dict[str, Any]]) -> str:
    return format_index([
        [IndexEntry(ext, row[f"{ext}_offset"], row[f"{ext}_size"], f"{row['key']}.{ext}") for ext in ("jpg", "cls", "json")]
        for row in rows
    ])


def write_shard(task: ShardTask) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write shard ``task.plan``'s tar and DALI index into ``task.out``; return its record and rows.

    The caller commits the shard with :func:`commit` (Parquet slice, then the record), so that
    workers never import pyarrow and start fast.
    """
    out = Path(task.out)
    state.record_path(out, task.plan.stem).unlink(missing_ok=True)  # never vouch for new, half-written files
    tar_path = out / f"{task.plan.stem}.tar"
    rows, failed, size, digest = _write_tar(task, tar_path)
    index = _index_text(rows).encode("ascii")
    atomic_write_bytes(tar_path.with_suffix(".idx"), index, fsync=False)  # the record holds its hash
    record = {"format_version": format_version("shard_record"), "file": tar_path.name, "split": task.plan.split,
              "index": task.plan.index, "fingerprint": task.fingerprint, "samples": len(rows), "bytes": size,
              "sha256": digest, "index_sha256": hashlib.sha256(index).hexdigest(), "failed": failed}
    return record, rows


def commit(out: Path, record: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Write the shard's Parquet slice, then its record: from now on the shard counts as done.

    fsync policy: the tar is fsynced before it is renamed into place; the small files (index,
    slice, record) are renamed into place without fsync, and the record carries the sha256 of the
    index and the slice, so a resume after a power loss redoes any shard whose small files did
    not survive intact (:func:`imgnet_tools.shards.state.done_record`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from imgnet_tools.manifest.parquet import arrow_schema, conform

    tar_path = out / record["file"]
    buffer = pa.BufferOutputStream()
    table = conform(pa.Table.from_pylist(rows, schema=arrow_schema("shard_manifest")), "shard_manifest")
    pq.write_table(table, buffer, compression="zstd")
    data = buffer.getvalue().to_pybytes()
    atomic_write_bytes(tar_path.with_suffix(".parquet"), data, fsync=False)
    record = {**record, "manifest_sha256": hashlib.sha256(data).hexdigest()}
    atomic_write_text(state.record_path(out, tar_path.stem), state.dump_json(record), fsync=False)
