"""imgnet's own labeling page: its task file (``page_tasks.json``) and its answer journal.

The journal (``answers.jsonl``, schema ``votes_answers``) is how ``imgnet votes serve`` saves an
answer the moment it is made: one JSON line, written with a single ``write`` to a file opened
``O_APPEND`` and fsynced before the page hears "saved". Lines are never rewritten, so a crash can
at worst leave a torn last line, which readers skip (and ``import`` reports as malformed).
``imgnet votes import answers.jsonl`` reads the same file.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any, Sequence

from imgnet_tools.manifest.schemas import format_version
from imgnet_tools.votes.records import Problems, VoteRecord, parse_time
from imgnet_tools.votes.tasks import Task

JOURNAL_FILE = "answers.jsonl"


def page_tasks(batch: str, tasks: Sequence[Task]) -> dict[str, Any]:
    """The ``page_tasks.json`` document of a batch."""
    return {
        "format_version": format_version("votes_page_tasks"), "batch": batch,
        "tasks": [{"task_id": t.task_id, "wnid": t.wnid, "words": t.words, "gloss": t.gloss, "votes": t.votes,
                   "questions": [{"key": k, "gold": g} for k, g in t.questions]} for t in tasks],
    }


def read_page_tasks(path: Path) -> list[tuple[str, str]]:
    """The (key, wnid) questions of a ``page_tasks.json``, checked against its schema."""
    from imgnet_tools.errors import InputError
    from imgnet_tools.manifest.schemas import validate_json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"--tasks {path}: not readable JSON ({exc}).") from exc
    validate_json(doc, "votes_page_tasks", str(path))
    return [(q["key"], t["wnid"]) for t in doc["tasks"] for q in t["questions"]]


def journal_line(key: str, wnid: str, worker: str, answer: str, when: datetime.datetime) -> bytes:
    """One journal line (UTF-8, newline-terminated)."""
    doc = {"format_version": format_version("votes_answers"), "key": key, "wnid": wnid, "worker": worker,
           "answer": answer, "answered_at": when.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")}
    return (json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def open_journal(path: Path) -> int:
    """A descriptor that appends to the journal (created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)


def append_line(fd: int, line: bytes) -> None:
    """Append one line with one write and make it durable before returning."""
    written = os.write(fd, line)
    if written != len(line):  # pragma: no cover - a full disk; the reader will skip the torn line
        raise OSError(f"short write to the answer journal ({written} of {len(line)} bytes)")
    os.fsync(fd)


def read_journal(path: Path, problems: Problems, start: int = 0, final: bool = True) -> tuple[list[VoteRecord], int]:
    """Answers from byte ``start`` on, and the offset after the last complete line.

    ``final=False`` (the server folding a journal it is still writing) leaves an incomplete last
    line for next time instead of reporting it.
    """
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read()
    records: list[VoteRecord] = []
    offset = start
    lines = data.split(b"\n")
    for n, raw in enumerate(lines):
        last = n == len(lines) - 1
        if last and not final:
            break
        offset_after = offset + len(raw) + (0 if last else 1)
        where = f"{path.name}:byte {offset}"
        if raw.strip():
            record = _parse(raw, where, problems)
            if record is not None:
                records.append(record)
        offset = offset_after
    return records, offset


def _parse(raw: bytes, where: str, problems: Problems) -> VoteRecord | None:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        problems.add("malformed_row", f"{where} (not a JSON line)")
        return None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(f), str) for f in ("key", "wnid", "answer")):
        problems.add("malformed_row", f"{where} (needs key, wnid, worker, answer)")
        return None
    worker = doc.get("worker")
    if not isinstance(worker, str) or not worker.strip():
        problems.add("missing_worker", where)
        return None
    return VoteRecord(doc["key"], doc["wnid"], worker.strip(), doc["answer"], parse_time(doc.get("answered_at")), where)
