"""What every importer yields: answers as plain records, and the problems it met, counted.

A bad row in a crowd platform's file (a rejected assignment, a cancelled annotation, a torn
line, an answer that is not yes/no/maybe) is counted under a reason from :data:`PROBLEMS`, with
the first few places it happened, and the import goes on: one bad row must never cost the rest.
"""

from __future__ import annotations

import collections
import datetime
from dataclasses import dataclass, field
from typing import NamedTuple

PROBLEMS = {
    "rejected_assignment": "MTurk AssignmentStatus is Rejected: the requester refused the work",
    "cancelled": "Label Studio annotation was cancelled (skipped) by the annotator",
    "malformed_row": "the row or line cannot be parsed (wrong number of fields, broken JSON, missing columns)",
    "missing_worker": "no worker id",
    "unanswered": "the question was shown but not answered",
    "bad_answer": "the answer is not yes, no or maybe (or a usual spelling of them)",
    "bad_wnid": "the wnid is not n + 8 digits",
    "unknown_key": "the key is not a row of --manifest",
    "unknown_wnid": "the wnid is not a class of --manifest",
}
EXAMPLES_PER_REASON = 3


class VoteRecord(NamedTuple):
    """One answer as read: key, wnid, worker, raw answer, time (None when the file has none)."""

    key: str
    wnid: str
    worker: str
    answer: str
    answered_at: datetime.datetime | None
    where: str  # file:line or file:task for problem reports


@dataclass
class Problems:
    """Counts of skipped answers by reason, and where the first few were."""

    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, where: str, n: int = 1) -> None:
        self.counts[reason] += n
        shown = self.examples.setdefault(reason, [])
        if len(shown) < EXAMPLES_PER_REASON:
            shown.append(where)


def parse_time(text: object) -> datetime.datetime | None:
    """An ISO 8601 time (``Z`` or an offset; naive means UTC) as an aware UTC datetime, or None."""
    if not isinstance(text, str) or not text.strip():
        return None
    value = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc)
