"""``imgnet votes import FILES... --votes VOTES``: answers from crowd platforms into the votes table.

Each file's format is found from its name and content (``--format`` forces one): an MTurk batch
results CSV (:mod:`.mturk`), a Label Studio JSON export (:mod:`.label_studio`), the page's
``answers.jsonl`` (:mod:`.page`), or a plain long CSV/Parquet table (:mod:`.longtable`). Every
answer is then checked: a yes/no/maybe answer, a wnid, and with ``--manifest`` a key of the
manifest and a wnid among its classes. What fails is counted by reason (:data:`.records.PROBLEMS`)
with examples, never raised. All files go in with one atomic append, under the table's lock;
rows the table already holds are not added again, so a re-import adds nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from imgnet_tools.errors import InputError
from imgnet_tools.votes import label_studio, longtable, mturk, page
from imgnet_tools.votes.records import Problems, VoteRecord
from imgnet_tools.votes.table import is_wnid, normalize_answer

FORMATS = ("auto", "mturk", "label_studio", "page", "table")


@dataclass(frozen=True)
class ImportParams:
    """``imgnet votes import`` options (field names = CLI option names)."""

    files: tuple[str, ...]
    votes: str
    manifest: str | None = None
    format: str = "auto"


@dataclass
class FileResult:
    """What one file gave."""

    file: str
    format: str
    answers: int = 0
    added: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ImportResult:
    """Per file and in all: answers read, added, already there, skipped by reason."""

    votes: str
    files: list[FileResult]
    added: int
    duplicates: int
    skipped: dict[str, int]
    total: int

    def to_dict(self) -> dict[str, Any]:
        return {"votes": self.votes, "added": self.added, "duplicates": self.duplicates, "skipped": self.skipped,
                "total": self.total, "files": [dict(f.__dict__) for f in self.files]}


def detect_format(path: Path) -> str:
    """``mturk``, ``label_studio``, ``page`` or ``table`` from the file's name and first bytes."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "page"
    if suffix == ".parquet":
        return "table"
    if suffix == ".json":
        return "label_studio"
    if suffix in (".csv", ".tsv", ".txt"):
        import csv

        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
        if mturk.looks_like_results(header):
            return "mturk"
        if longtable.looks_like_table(header):
            return "table"
        raise InputError(f"{path}: a CSV with neither MTurk's result columns (HITId, WorkerId, AssignmentStatus, Input.*) "
                         f"nor a long table's ({', '.join(longtable.NEEDED)}); pass --format if it is one of them.")
    raise InputError(f"{path}: cannot tell the format from the name; pass --format ({', '.join(FORMATS[1:])}).")


def _records(path: Path, fmt: str, problems: Problems) -> Iterable[VoteRecord]:
    if fmt == "mturk":
        return mturk.read_results(path, problems)
    if fmt == "page":
        return page.read_journal(path, problems)[0]
    if fmt == "table":
        return longtable.read_parquet(path, problems) if path.suffix.lower() == ".parquet" else longtable.read_csv(path, problems)
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not readable JSON ({exc}); a Label Studio export is a JSON list of tasks.") from exc
    if not label_studio.looks_like_export(doc) and doc != []:
        raise InputError(f"{path}: not a Label Studio JSON or JSON-MIN export (a list of tasks with annotations).")
    return label_studio.read_export(path, doc, problems)


@dataclass(frozen=True)
class Checker:
    """Checks an answer against the vocabulary and, with a manifest, its keys and classes."""

    keys: frozenset[str] | None = None
    wnids: frozenset[str] | None = None

    def reason(self, r: VoteRecord) -> str | None:
        if normalize_answer(r.answer) is None:
            return "bad_answer"
        if not is_wnid(r.wnid):
            return "bad_wnid"
        if self.keys is not None and r.key not in self.keys:
            return "unknown_key"
        if self.wnids is not None and r.wnid not in self.wnids:
            return "unknown_wnid"
        return None


def checker_for(manifest: str | None) -> Checker:
    """A checker knowing the manifest's keys and classes (or only the vocabulary)."""
    if manifest is None:
        return Checker()
    from imgnet_tools.votes.questions import read_manifest

    mq = read_manifest(manifest)
    wnids = {w for w in mq.table.column("wnid").to_pylist() if w}
    return Checker(frozenset(mq.keys()), frozenset(wnids))


def parse_file(path: Path, fmt: str, check: Checker, source: str) -> tuple[dict[str, list[Any]], Problems]:
    """The good answers of one file as votes-table columns, and what was skipped."""
    problems = Problems()
    cols: dict[str, list[Any]] = {c: [] for c in ("key", "wnid", "worker", "answer", "source", "answered_at")}
    for r in _records(path, fmt, problems):
        reason = check.reason(r)
        if reason is not None:
            problems.add(reason, r.where)
            continue
        for name, value in (("key", r.key), ("wnid", r.wnid), ("worker", r.worker), ("answer", normalize_answer(r.answer)),
                            ("source", source), ("answered_at", r.answered_at)):
            cols[name].append(value)
    return cols, problems


def import_votes(params: ImportParams, progress: Callable[[int], None] | None = None) -> ImportResult:
    """Read every file, check every answer, append the new ones (see module docstring)."""
    from imgnet_tools.votes.table import append_many, votes_from_columns

    if params.format not in FORMATS:
        raise InputError(f"unknown --format {params.format!r}; choose one of {', '.join(FORMATS)}.")
    paths = [Path(f) for f in params.files]
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p} does not exist or is not a file.")
    check = checker_for(params.manifest)
    results, tables = [], []
    for path in paths:
        fmt = detect_format(path) if params.format == "auto" else params.format
        cols, problems = parse_file(path, fmt, check, fmt)
        tables.append(votes_from_columns(cols))
        results.append(FileResult(str(path), fmt, len(cols["key"]), skipped=dict(sorted(problems.counts.items())),
                                  examples=problems.examples))
        if progress is not None:
            progress(1)
    appended = append_many(params.votes, tables)
    for result, done in zip(results, appended):
        result.added, result.duplicates = done.added, done.duplicates
    skipped: dict[str, int] = {}
    for r in results:
        for reason, n in r.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
    return ImportResult(params.votes, results, sum(r.added for r in results), sum(r.duplicates for r in results),
                        dict(sorted(skipped.items())), appended[-1].total if appended else 0)
