"""Stage ``verify``: judge every image in a manifest by its content and add the verify columns.

For each row: read the file once, hash those bytes (sha256), sniff the real format, decode fully,
check mode / EXIF / frames / size / bomb limit (:mod:`.check`). The manifest is rewritten
atomically (in place, or to ``out``) with ``format, mode, width, height, sha256, status, reason,
issues, verify_policy``. With ``fix``, fixable images get a normalised RGB JPEG copy at
``FIX/KEY.jpg``; their row becomes ``fixed`` and ``path`` points at the copy (``source_path`` keeps
the original, which is only ever read).

Re-runs resume: a row is skipped when it was verified under the same policy and its source (and
fixed copy, if any) still has the size and mtime recorded. Long runs checkpoint the manifest every
few minutes, so an interrupted run loses little.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgnet_tools.errors import InputError
from imgnet_tools.execute.local import map_ordered, resolve_workers
from imgnet_tools.images.check import (
    FIXABLE_REASONS,
    REASON_ORDER,
    Check,
    Policy,
    check_image,
)
from imgnet_tools.images.fix import DEFAULT_QUALITY, normalize_to_jpeg
from imgnet_tools.images.scan import SCAN_REASONS, os_reason
from imgnet_tools.manifest.atomic import atomic_write_bytes

VERIFIED = frozenset({"ok", "fixable", "fixed", "rejected", "duplicate"})
CHECKPOINT_SECONDS = 300.0
DEDUP_COLUMNS = frozenset({"phash", "cluster_id", "dup_of"})


@dataclass(frozen=True)
class VerifyParams:
    """``imgnet verify`` options (field names = CLI option names)."""

    manifest: str
    out: str | None = None
    fix: str | None = None
    # The acceptance policy's defaults live in one place, Policy.
    min_size: int = Policy.min_size
    max_size: int = Policy.max_size
    max_aspect: float = Policy.max_aspect
    max_pixels: int = Policy.max_pixels
    allow_grayscale: bool = Policy.allow_grayscale
    reject: tuple[str, ...] = Policy.reject
    fix_quality: int = DEFAULT_QUALITY
    workers: int | None = None

    def policy(self) -> Policy:
        """The acceptance policy these options describe."""
        return Policy(min_size=self.min_size, max_size=self.max_size, max_aspect=self.max_aspect,
                      max_pixels=self.max_pixels, allow_grayscale=self.allow_grayscale,
                      reject=tuple(sorted(set(self.reject))))


@dataclass
class VerifyResult:
    """Summary of a verify run (``--json`` prints :meth:`to_dict`)."""

    manifest: str
    rows: int
    checked: int
    skipped: int
    fixed: int
    status: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


Task = tuple[str, Policy, "str | None", int]


def verify(params: VerifyParams, progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Verify every row that needs it and write the manifest (atomically, with checkpoints)."""
    from imgnet_tools.manifest.parquet import read_table

    _validate(params)
    rows: list[dict[str, Any]] = read_table(params.manifest, "manifest").to_pylist()
    if params.fix:
        _check_fix_dir(params.fix, rows)
    todo = _todo(rows, params)
    if progress is not None and len(rows) > len(todo):
        progress(len(rows) - len(todo))
    out = Path(params.out or params.manifest)
    results = _run(rows, todo, params, progress)
    fixed = _apply(rows, todo, results, out)
    _write(rows, out)
    return VerifyResult(
        manifest=str(out), rows=len(rows), checked=len(todo), skipped=len(rows) - len(todo), fixed=fixed,
        status=dict(sorted(collections.Counter(r["status"] for r in rows).items())),
        reasons=dict(sorted(collections.Counter(r["reason"] for r in rows if r["reason"]).items())),
    )


def outputs_complete(params: VerifyParams) -> bool:
    """True when every row is verified under this policy and nothing changed on disk."""
    from imgnet_tools.manifest.parquet import read_table

    target = Path(params.out or params.manifest)
    if not target.is_file():
        return False
    return not _todo(read_table(target, "manifest").to_pylist(), params)


def _validate(params: VerifyParams) -> None:
    unknown = sorted(set(params.reject) - set(FIXABLE_REASONS))
    if unknown:
        raise InputError(f"--reject {', '.join(unknown)}: not a fixable reason; choose from {', '.join(FIXABLE_REASONS)}.")
    if params.min_size < 1 or params.max_pixels < 1 or params.max_aspect < 1:
        raise InputError("--min-size and --max-pixels must be at least 1, --max-aspect at least 1.0.")
    if not 1 <= params.fix_quality <= 100:
        raise InputError(f"--fix-quality {params.fix_quality} is outside 1..100.")


def _check_fix_dir(fix: str, rows: list[dict[str, Any]]) -> None:
    """Refuse a --fix folder that holds sources or sits in a folder of sources: the source tree stays untouched
    (and a later scan would pick the copies up as new candidates)."""
    target = os.path.realpath(fix)
    for folder in {os.path.dirname(r["source_path"]) for r in rows}:
        real = os.path.realpath(folder)
        if real == target or real.startswith(target + os.sep) or target.startswith(real + os.sep):
            raise InputError(f"--fix {fix} overlaps the source folder {folder}; write fixed copies outside the source tree.")


def _todo(rows: list[dict[str, Any]], params: VerifyParams) -> list[int]:
    """Indices of the rows to (re)check."""
    desc = params.policy().describe()
    return [i for i, row in enumerate(rows) if _needs_check(row, desc, params.fix is not None)]


def _needs_check(row: dict[str, Any], policy: str, fixing: bool) -> bool:
    if row.get("reason") in SCAN_REASONS:
        return False  # rejected by scan (missing, empty, ...): nothing to decode; re-scan to refresh
    if "url" in row and row["status"] == "rejected" and row.get("verify_policy") is None:
        return False  # rejected by collect (the fetch failed, no file): re-collect with --retry to refresh
    if row["status"] not in VERIFIED or row.get("verify_policy") != policy:
        return True
    if row["status"] == "fixable" and fixing:
        return True
    if not _same_file(row["source_path"], row.get("source_bytes"), row.get("source_mtime_ns")):
        return True
    return row["status"] == "fixed" and not _same_file(row["path"], row.get("bytes"), row.get("mtime_ns"))


def _same_file(path: str, size: int | None, mtime_ns: int | None) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == (size, mtime_ns)


def _run(rows: list[dict[str, Any]], todo: list[int], params: VerifyParams,
         progress: Callable[[int], None] | None) -> Iterator[dict[str, Any]]:
    """Check the ``todo`` rows on ``workers`` processes; results come back in ``todo`` order."""
    policy = params.policy()
    fix_dir = os.path.abspath(params.fix) if params.fix else None
    tasks: list[Task] = [
        (rows[i]["source_path"], policy, os.path.join(fix_dir, f"{rows[i]['key']}.jpg") if fix_dir else None,
         params.fix_quality)
        for i in todo
    ]
    workers = resolve_workers(params.workers)
    chunksize = max(1, min(64, len(tasks) // (workers * 8) if workers > 1 else 1))
    return map_ordered(verify_one, tasks, workers=workers, chunksize=chunksize, progress=progress)


def _apply(rows: list[dict[str, Any]], todo: list[int], results: Iterable[dict[str, Any]], out: Path) -> int:
    """Merge results into ``rows``, checkpointing the manifest every :data:`CHECKPOINT_SECONDS`."""
    fixed = 0
    last = time.monotonic()
    for i, update in zip(todo, results):
        rows[i].update(update)
        for column in DEDUP_COLUMNS & rows[i].keys():  # content was re-checked: dedup must look again
            rows[i][column] = None
        fixed += update["status"] == "fixed"
        if time.monotonic() - last > CHECKPOINT_SECONDS:
            _write(rows, out)
            last = time.monotonic()
    return fixed


def _write(rows: list[dict[str, Any]], out: Path) -> None:
    from imgnet_tools.images.scan import to_table
    from imgnet_tools.manifest.parquet import write_table

    write_table(to_table(rows), out, "manifest")


def verify_one(task: Task) -> dict[str, Any]:
    """Verify one file (and write its fixed copy when asked); the manifest columns it sets. Never raises."""
    path, policy, fix_to, quality = task
    described = _describe(policy)
    try:
        with open(path, "rb", buffering=0) as fh:  # one read into one buffer; hashed and decoded from it
            st = os.fstat(fh.fileno())
            data = fh.read()
    except OSError as exc:
        reason = os_reason(exc)
        return {"status": "rejected", "reason": reason, "issues": [reason], "verify_policy": described,
                "format": None, "mode": None, "width": None, "height": None, "sha256": None}
    try:
        found = check_image(data, os.path.basename(path), policy)
    except Exception:  # noqa: BLE001 - last resort: a decoder bug must still give a row, not stop the run
        found = Check(issues=["corrupt"])
    row = {
        "path": path, "bytes": len(data), "mtime_ns": st.st_mtime_ns, "source_bytes": len(data),
        "source_mtime_ns": st.st_mtime_ns, "sha256": hashlib.sha256(data).hexdigest(),
        "format": found.format, "mode": found.mode, "width": found.width, "height": found.height,
        "status": found.status(policy), "reason": found.reason(policy), "issues": sorted(found.issues, key=REASON_ORDER.index),
        "verify_policy": described,
    }
    if row["status"] == "fixable" and fix_to is not None:
        row.update(_write_fixed(data, found, fix_to, quality))
    return row


@functools.lru_cache(maxsize=8)
def _describe(policy: Policy) -> str:
    return policy.describe()


def _write_fixed(data: bytes, found: Check, target: str, quality: int) -> dict[str, Any]:
    """Write the normalised copy atomically; the columns that now describe the copy."""
    try:
        jpeg = normalize_to_jpeg(data, found.orientation, quality)
    except Exception:  # noqa: BLE001 - a decoder that passed the check but fails here: reject the row
        return {"status": "rejected", "reason": "corrupt", "issues": [*found.issues, "corrupt"]}
    atomic_write_bytes(target, jpeg)
    st = os.stat(target)
    return {"status": "fixed", "path": target, "bytes": len(jpeg), "mtime_ns": st.st_mtime_ns,
            "sha256": hashlib.sha256(jpeg).hexdigest(), "format": "JPEG", "mode": "RGB"}
