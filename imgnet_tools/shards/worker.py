"""Write one shard: the tar and its DALI index (one task); then its Parquet slice and done record.

A task is self-contained and deterministic: the same :class:`ShardTask` gives the same bytes in
any process on any machine, so the local pool and Ray produce identical output and a retried or
resumed shard is simply written again. Every file goes to a temporary name and is renamed into
place; the task first removes any old record, and the driver, as each task returns, writes the
shard's Parquet slice (:func:`write_slice`) and, once the tar is on disk, the record
(:func:`write_record`), so a crash at any point leaves no shard marked done that is incomplete.
A sample whose file cannot be read or decoded is left out and listed in the record (``failed``),
never raised.

Copy mode is the hot path (about 100 KB per sample, so per-sample costs count): for a row that
vouches for its file (size, mtime, sha256, width, height) the source is read once, straight into
the tar's write buffer, and the sample's three members are laid out in that one area
(:func:`_copy_vouched`); other JPEG rows are read in place too (:func:`_copy_jpeg`), then hashed.
The row is a tuple, and the shard's rows go back to the driver as columns.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import os
import re
import stat
from dataclasses import asdict, dataclass
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgnet_tools.manifest.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from imgnet_tools.manifest.schemas import format_version
from imgnet_tools.shards import state
from imgnet_tools.shards.index import format_index_columns
from imgnet_tools.shards.plan import SampleIn, ShardPlan
from imgnet_tools.shards.sink import ShardSink
from imgnet_tools.shards.tario import BLOCK, ZEROS, MemberSpan, TarBuilder, member_header
from imgnet_tools.shards.transform import JPEG_MAGIC, Encoded, TransformParams, encode, needs_decode, upright_size

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


@dataclass(frozen=True)
class ShardTask:
    """Everything needed to write one shard."""

    out: str
    plan: ShardPlan
    transform: TransformParams
    sync: bool = True  # fsync the tar; False: the caller makes it durable before committing the shard

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of everything that decides the shard's bytes (computed by the worker that
        writes the shard, and by the driver only for shards that may already be done)."""
        return self.plan.fingerprint(asdict(self.transform))


def _stored(sample: SampleIn, data: bytes, transform: TransformParams) -> Encoded:
    """The bytes to store: the source as is when possible (no decode), else re-encoded."""
    if data[:3] == JPEG_MAGIC and not needs_decode(transform):
        if sample.width is not None and sample.height is not None:
            return Encoded(data, sample.width, sample.height, reencoded=False)
        width, height = upright_size(data)
        return Encoded(data, width, height, reencoded=False)
    return encode(data, transform)


def _changed(sample: SampleIn, info: os.stat_result) -> str | None:
    """Why an ``ok`` row's file no longer matches the scan (size or mtime), or ``None``."""
    if sample.mtime_ns is not None and sample.bytes is not None:
        if (info.st_size, info.st_mtime_ns) != (sample.bytes, sample.mtime_ns):
            return "changed since scan: size or mtime differs from the manifest"
    return None


def _trusted(sample: SampleIn) -> bool:
    """Whether the manifest's sha256 vouches for the file once its size and mtime match."""
    return sample.mtime_ns is not None and sample.bytes is not None


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
    changed = _changed(sample, info)
    if changed is not None:
        return changed
    if _trusted(sample):
        return data, sample.sha256
    if sample.sha256 and hashlib.sha256(data).hexdigest() != sample.sha256:
        return "changed since verify: sha256 differs from the manifest"
    return data, sample.sha256


def _copy_jpeg(builder: TarBuilder, sample: SampleIn) -> tuple[MemberSpan, str] | str | None:
    """Copy mode's fast path: read a JPEG source straight into the tar's buffer as ``KEY.jpg``.

    One ``readinto`` per file, no intermediate bytes object, no second copy; the checks and
    results are those of :func:`_read` + :func:`_stored` + :func:`_load` (the same bytes land
    in the tar). Returns the member's span and the source sha256, a reason to leave the sample
    out, or ``None`` when the sample needs the general path (not a JPEG, a short read): the
    member is then dropped and nothing is written. Only errors of the source file become a
    reason; an error of the tar's own file (disk full) propagates and stops the run.
    """
    try:
        fh = open(sample.path, "rb", buffering=0)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    with fh:
        try:
            info = os.fstat(fh.fileno())
        except OSError as exc:
            return f"unreadable: {exc.strerror or exc}"
        changed = _changed(sample, info)
        if changed is not None:
            return changed
        area = builder.begin(f"{sample.key}.jpg", info.st_size)
        try:
            got = _read_into(fh.fileno(), area)
        except OSError as exc:
            builder.cancel()
            return f"unreadable: {exc.strerror or exc}"
    if got != len(area) or area[:3] != JPEG_MAGIC:
        builder.cancel()
        return None
    source_sha = sample.sha256
    if not _trusted(sample) or source_sha is None:
        digest = hashlib.sha256(area).hexdigest()
        if source_sha and digest != source_sha:
            builder.cancel()
            return "changed since verify: sha256 differs from the manifest"
        source_sha = digest
    return builder.end(), source_sha


def _read_into(fd: int, area: memoryview) -> int:
    """Fill ``area`` from file descriptor ``fd``; return the bytes read (fewer at end of file)."""
    got = 0
    while got < len(area):
        n = os.readv(fd, [area[got:]])
        if not n:
            break
        got += n
    return got


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _load(sample: SampleIn, transform: TransformParams) -> tuple[Encoded, str] | str:
    """(stored image, source sha256), or the reason the sample has to be left out."""
    read = _read(sample)
    if isinstance(read, str):
        return read
    data, source_sha = read
    try:
        image = _stored(sample, data, transform)
    except Exception as exc:  # any decoder error is a per-image failure, not a run failure
        # without object addresses (PIL names its BytesIO): the same file gives the same reason in every run
        return f"undecodable: {type(exc).__name__}: {_ADDRESS.sub('', str(exc))}"
    return image, source_sha or hashlib.sha256(data).hexdigest()


def _meta(sample: SampleIn, width: int, height: int, source_sha: str) -> bytes:
    """The KEY.json member: keys in sorted order, compact, ASCII (the same bytes on any machine).

    Formatted directly (about 5x faster than ``json.dumps`` of a dict), with the same escaping
    as ``json.dumps`` (its own ``encode_basestring_ascii``) and the same number and null
    spellings, so the bytes equal ``json.dumps(doc, separators=(",", ":"))`` of the sorted dict.
    """
    return (f'{{"height":{_json_int(height)},"key":{_json_str(sample.source_key)},'
            f'"label":{_json_int(sample.label)},"path":{_json_str(sample.source_path)},'
            f'"sha256":{_json_str(source_sha)},"split":{_json_str(sample.split)},'
            f'"width":{_json_int(width)},"wnid":{_json_str(sample.wnid)}}}').encode("ascii")


def _json_int(value: int | None) -> str:
    return "null" if value is None else int.__repr__(value)


def _json_str(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


# The shard manifest's columns, in the order :func:`_row` gives them.
COLUMNS = ("key", "source_key", "shard", "shard_index", "position", "split", "label", "wnid", "width", "height",
           "sha256", "source_sha256", "source_path", "reencoded",
           *(f"{ext}_{field}" for ext in ("jpg", "cls", "json") for field in ("header_offset", "offset", "size")))
Columns = dict[str, list[Any]]


def _row(task: ShardTask, position: int, sample: SampleIn, image: Encoded, source_sha: str,
         spans: list[MemberSpan]) -> tuple[Any, ...]:
    """One sample's shard-manifest values in :data:`COLUMNS` order (a tuple: cheap to build)."""
    jpg, cls, meta = spans
    return (sample.key, sample.source_key, f"{task.plan.stem}.tar", task.plan.index, position, sample.split,
            sample.label, sample.wnid, image.width, image.height,
            source_sha if not image.reencoded else hashlib.sha256(image.data).hexdigest(),
            source_sha, sample.source_path, image.reencoded,
            jpg.header_offset, jpg.offset, jpg.size, cls.header_offset, cls.offset, cls.size,
            meta.header_offset, meta.offset, meta.size)


def _write_tar(task: ShardTask, tar_path: Path) -> tuple[Columns, list[dict[str, str]], int, str]:
    """Write the shard's tar; return its manifest columns, the failed samples, its size and sha256."""
    rows: list[tuple[Any, ...]] = []
    failed: list[dict[str, str]] = []
    copy_mode = not needs_decode(task.transform)
    shard_file, shard_index = f"{task.plan.stem}.tar", task.plan.index
    with atomic_path(tar_path, fsync=False) as tmp:  # ShardSink.close fsyncs (task.sync): once per tar is enough
        with ShardSink(tmp, sync=task.sync) as sink:
            builder = TarBuilder(sink)
            for sample in task.plan.samples:
                row: tuple[Any, ...] | str | None = None
                if copy_mode and _vouched(sample):
                    row = _copy_vouched(builder, sample, shard_file, shard_index, len(rows))
                if row is None:
                    added = _add_sample(builder, sample, task.transform, copy_mode)
                    row = added if isinstance(added, str) else _row(task, len(rows), sample, *added)
                if isinstance(row, str):
                    failed.append({"key": sample.source_key, "reason": row})
                else:
                    rows.append(row)
            size = builder.finish()
    columns = {name: list(values) for name, values in zip(COLUMNS, zip(*rows))} if rows else {n: [] for n in COLUMNS}
    return columns, failed, size, sink.hexdigest()


def _vouched(sample: SampleIn) -> bool:
    """Whether the row says all a copied sample needs: size and mtime (so its sha256 holds while
    they match), sha256, width and height."""
    return (sample.mtime_ns is not None and sample.bytes is not None and sample.sha256 is not None
            and sample.width is not None and sample.height is not None)


def _copy_vouched(builder: TarBuilder, sample: SampleIn, shard_file: str, shard_index: int,
                  position: int) -> tuple[Any, ...] | str | None:
    """Copy mode's hot path, for a :func:`_vouched` row: the sample's three members (KEY.jpg
    read from the source straight into place, KEY.cls, KEY.json) laid out in one area of the
    sink's buffer and written at once; returns the sample's manifest row.

    The bytes and the checks are those of the general path (:func:`_copy_jpeg` then
    :func:`_add_label_and_meta`; a test holds the two equal). Returns a reason to leave the sample
    out when the file is unreadable or changed since the scan, or ``None`` (nothing written) for
    the general path to take it: not a JPEG, a short read, or too large for one buffer.
    """
    try:
        fd = os.open(sample.path, _READ_FLAGS)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    try:
        try:
            info = os.fstat(fd)
        except OSError as exc:
            return f"unreadable: {exc.strerror or exc}"
        if not stat.S_ISREG(info.st_mode):  # what open() says of a folder; anything else: the general path
            return f"unreadable: {os.strerror(errno.EISDIR)}" if stat.S_ISDIR(info.st_mode) else None
        changed = _changed(sample, info)
        if changed is not None:
            return changed
        size, key = info.st_size, sample.key
        label = b"-1" if sample.label is None else b"%d" % sample.label
        meta = _meta(sample, sample.width, sample.height, sample.sha256)  # type: ignore[arg-type]
        jpg_pad, label_pad = -size % BLOCK, -len(label) % BLOCK
        small = b"".join((member_header(f"{key}.cls", len(label)), label, ZEROS[:label_pad],
                          member_header(f"{key}.json", len(meta)), meta, ZEROS[:-len(meta) % BLOCK]))
        total = BLOCK + size + jpg_pad + len(small)
        lent = builder.lend(total)
        if lent is None:
            return None
        area, start = lent
        payload = area[BLOCK:BLOCK + size]
        try:
            got = _read_into(fd, payload)
        except OSError as exc:
            return f"unreadable: {exc.strerror or exc}"
    finally:
        os.close(fd)
    if got != size or payload[:3] != JPEG_MAGIC:
        return None
    end = BLOCK + size
    area[:BLOCK] = member_header(f"{key}.jpg", size)
    area[end:end + jpg_pad] = ZEROS[:jpg_pad]  # a lent buffer holds old bytes
    area[end + jpg_pad:] = small
    builder.advance(total)
    cls_at = start + end + jpg_pad
    meta_at = cls_at + BLOCK + len(label) + label_pad
    return (key, sample.source_key, shard_file, shard_index, position, sample.split, sample.label, sample.wnid,
            sample.width, sample.height, sample.sha256, sample.sha256, sample.source_path, False,
            start, start + BLOCK, size, cls_at, cls_at + BLOCK, len(label), meta_at, meta_at + BLOCK, len(meta))


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def _add_sample(builder: TarBuilder, sample: SampleIn, transform: TransformParams,
                copy_mode: bool) -> tuple[Encoded, str, list[MemberSpan]] | str:
    """Write one sample's three members (jpg, cls, json); return what its row needs, or the
    reason it was left out. JPEGs in copy mode whose size is known take :func:`_copy_jpeg`."""
    if copy_mode and sample.width is not None and sample.height is not None:
        copied = _copy_jpeg(builder, sample)
        if isinstance(copied, str):
            return copied
        if copied is not None:
            jpg, source_sha = copied
            image = Encoded(b"", sample.width, sample.height, reencoded=False)  # its bytes are in the tar already
            return image, source_sha, [jpg, *_add_label_and_meta(builder, sample, image, source_sha)]
    loaded = _load(sample, transform)
    if isinstance(loaded, str):
        return loaded
    image, source_sha = loaded
    jpg = builder.add(f"{sample.key}.jpg", image.data)
    return image, source_sha, [jpg, *_add_label_and_meta(builder, sample, image, source_sha)]


def _add_label_and_meta(builder: TarBuilder, sample: SampleIn, image: Encoded, source_sha: str) -> list[MemberSpan]:
    """The sample's KEY.cls and KEY.json members, in one write."""
    label = b"-1" if sample.label is None else str(sample.label).encode("ascii")
    return builder.add_small([(f"{sample.key}.cls", label),
                              (f"{sample.key}.json", _meta(sample, image.width, image.height, source_sha))])


def _index_text(columns: Columns) -> str:
    exts = ("jpg", "cls", "json")
    return format_index_columns(columns["key"], exts, [columns[f"{ext}_offset"] for ext in exts],
                                [columns[f"{ext}_size"] for ext in exts])


def write_shard(task: ShardTask) -> tuple[dict[str, Any], Columns]:
    """Write shard ``task.plan``'s tar and DALI index into ``task.out``; return its record and its
    shard-manifest columns (columns, not row dicts: a fraction of the pickling, and Arrow takes
    them as they are).

    The caller commits the shard (:func:`write_slice`, then :func:`write_record`), so that
    workers never import pyarrow and start fast; with ``task.sync`` false, the caller fsyncs the
    tar before it writes the record.
    """
    out = Path(task.out)
    state.record_path(out, task.plan.stem).unlink(missing_ok=True)  # never vouch for new, half-written files
    tar_path = out / f"{task.plan.stem}.tar"
    columns, failed, size, digest = _write_tar(task, tar_path)
    index = _index_text(columns).encode("ascii")
    atomic_write_bytes(tar_path.with_suffix(".idx"), index, fsync=False)  # the record holds its hash
    record = {"format_version": format_version("shard_record"), "file": tar_path.name, "split": task.plan.split,
              "index": task.plan.index, "fingerprint": task.fingerprint, "samples": len(columns["key"]),
              "bytes": size, "sha256": digest, "index_sha256": hashlib.sha256(index).hexdigest(), "failed": failed}
    return record, columns


def write_slice(out: Path, record: dict[str, Any], columns: Columns) -> tuple[dict[str, Any], "pa.Table"]:
    """Write the shard's Parquet slice; return the record to write (with the slice's sha256) and
    the slice as a table.

    fsync policy: the tar is fsynced before its record is written; the small files (index,
    slice, record) are renamed into place without fsync, and the record carries the sha256 of the
    index and the slice, so a resume after a power loss redoes any shard whose small files did
    not survive intact (:func:`imgnet_tools.shards.state.done_record`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from imgnet_tools.manifest.parquet import table_from_columns

    tar_path = out / record["file"]
    buffer = pa.BufferOutputStream()
    table = table_from_columns(columns, "shard_manifest")
    # A slice is small and read whole: snappy, no dictionaries or statistics (0.35 ms for 250 rows
    # where zstd takes 0.8 ms; 55 KB where zstd makes 31 KB).
    pq.write_table(table, buffer, compression="snappy", use_dictionary=False, write_statistics=False)
    data = buffer.getvalue().to_pybytes()
    atomic_write_bytes(tar_path.with_suffix(".parquet"), data, fsync=False)
    return {**record, "manifest_sha256": hashlib.sha256(data).hexdigest()}, table


def write_record(out: Path, record: dict[str, Any]) -> None:
    """Write the shard's done record (after :func:`write_slice`, and once the tar is on disk)."""
    atomic_write_text(state.record_path(out, Path(record["file"]).stem), state.dump_json(record), fsync=False)
