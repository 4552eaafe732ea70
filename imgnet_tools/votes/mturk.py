"""Amazon Mechanical Turk: the batch input CSV and HIT layout we write, the batch results CSV we read.

Input (one row per task = one HIT): ``task_id, wnid, words, gloss, n_images`` and, for slot
``i`` in 1..N, ``image_i_key`` and ``image_i_url`` (empty for a task with fewer images). The
layout (``mturk_layout.html``, for the project's "Design layout" page) shows slot ``i`` with
radio buttons named ``image_i`` (yes / no / maybe) and hides empty slots.

Results, as the requester site's "Download CSV" writes them: every column quoted, ``HITId``,
``HITTypeId``, ..., ``AssignmentId``, ``WorkerId``, ``AssignmentStatus`` (Submitted, Approved,
Rejected), ``AcceptTime``, ``SubmitTime`` (``Thu Oct 09 07:30:20 PDT 2025``), ...,
``WorkTimeInSeconds``, ..., then ``Input.<column>`` for every input column and the answers:
``Answer.image_i`` for classic HTML forms, ``Answer.image_i.yes`` (``true``/``false``) columns or
one ``Answer.taskAnswers`` JSON cell (``[{"image_1": "yes", ...}]`` or
``[{"image_1": {"yes": true, "no": false}}]``) for crowd-html-elements forms; all three are read.
"""

from __future__ import annotations

import csv
import datetime
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from imgnet_tools.votes.records import Problems, VoteRecord, parse_time
from imgnet_tools.votes.tasks import Task

REQUIRED = ("HITId", "WorkerId", "AssignmentStatus")
# US zones MTurk prints in SubmitTime (it writes the requester's zone, usually PST/PDT).
_ZONES = {"UTC": 0, "GMT": 0, "Z": 0, "PST": -8, "PDT": -7, "MST": -7, "MDT": -6, "CST": -6, "CDT": -5,
          "EST": -5, "EDT": -4, "AKST": -9, "AKDT": -8, "HST": -10}
_MTURK_TIME = re.compile(r"\w{3} (\w{3}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) ([A-Z]{1,4}) (\d{4})")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def input_header(slots: int) -> list[str]:
    """Column names of the batch input CSV for tasks of up to ``slots`` images."""
    return ["task_id", "wnid", "words", "gloss", "n_images"] + [
        name for i in range(1, slots + 1) for name in (f"image_{i}_key", f"image_{i}_url")]


def write_input(path: Path, tasks: Sequence[Task], slots: int, url: Callable[[str, str], str]) -> None:
    """Write the batch input CSV (UTF-8, CRLF as MTurk's own downloads)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(input_header(slots))
        for task in tasks:
            cells: list[str] = [task.task_id, task.wnid, task.words, task.gloss, str(len(task.questions))]
            for key, _ in task.questions:
                cells += [key, url(key, task.wnid)]
            cells += [""] * (2 * (slots - len(task.questions)))
            writer.writerow(cells)


def layout_html(slots: int) -> str:
    """The HIT layout: the synset's words and gloss, a grid of the task's images, three answers each."""
    cells = "\n".join(
        f'  <div class="cell" data-key="${{image_{i}_key}}"><img src="${{image_{i}_url}}" alt="image {i}">\n'
        + "".join(f'    <label><input type="radio" name="image_{i}" value="{a}" required> {a}</label>\n'
                  for a in ("yes", "no", "maybe"))
        + "  </div>" for i in range(1, slots + 1))
    return f"""<!-- imgnet votes export: MTurk HIT layout (paste into the project's Design layout). -->
<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<style>
.grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:10px}}
.cell{{border:1px solid #ccc;padding:6px;border-radius:4px}}.cell img{{width:100%;height:150px;object-fit:contain;background:#eee}}
.cell label{{margin-right:8px}}.gloss{{color:#444}}
</style>
<crowd-form>
<h2>Does each picture show: <b>${{words}}</b>?</h2>
<p class="gloss">${{gloss}}</p>
<p>Answer <b>yes</b> if the picture shows one (drawings and partial views count), <b>no</b> if it does not,
<b>maybe</b> only if you cannot tell.</p>
<div class="grid">
{cells}
</div>
</crowd-form>
<script>
document.querySelectorAll('.cell').forEach(function (cell) {{
  if (!cell.getAttribute('data-key')) {{ cell.remove(); }}  // slots past the end of this task
}});
</script>
"""


def parse_mturk_time(text: str) -> datetime.datetime | None:
    """``Thu Oct 09 07:30:20 PDT 2025`` (or ISO 8601) as UTC; None when empty or unknown."""
    m = _MTURK_TIME.fullmatch(text.strip()) if text else None
    if m is None:
        return parse_time(text)
    month, day, hh, mm, ss, zone, year = m.groups()
    if zone not in _ZONES or month not in _MONTHS:
        return None
    local = datetime.datetime(int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss),
                              tzinfo=datetime.timezone(datetime.timedelta(hours=_ZONES[zone])))
    return local.astimezone(datetime.timezone.utc)


def looks_like_results(header: Sequence[str]) -> bool:
    """True for an MTurk batch results header."""
    return all(c in header for c in REQUIRED) and any(c.startswith("Input.") for c in header)


def _task_answers(cell: str) -> dict[str, Any]:
    """The crowd-form ``Answer.taskAnswers`` cell as one flat dict (raises ValueError if broken)."""
    doc = json.loads(cell)
    items = doc if isinstance(doc, list) else [doc]
    merged: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("taskAnswers is not a list of objects")
        merged.update(item)
    return merged


def _choice(value: Any) -> str | None:
    """A radio group's value: a string, or ``{"yes": true, "no": false}``; None when unanswered."""
    if isinstance(value, dict):
        chosen = [k for k, v in value.items() if v is True or str(v).lower() == "true"]
        return chosen[0] if len(chosen) == 1 else None
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value)


def _slot_answer(row: dict[str, str], task_answers: dict[str, Any] | None, i: int) -> str | None:
    name = f"image_{i}"
    if f"Answer.{name}" in row:
        return _choice(row[f"Answer.{name}"])
    flags = {a: row[f"Answer.{name}.{a}"] for a in ("yes", "no", "maybe") if f"Answer.{name}.{a}" in row}
    if flags:
        return _choice(flags)
    if task_answers is not None:
        return _choice(task_answers.get(name))
    return None


def read_results(path: Path, problems: Problems) -> Iterator[VoteRecord]:
    """Every answer in an MTurk batch results CSV; bad rows counted in ``problems``."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
            for row in reader:
                yield from _read_row(path, reader.line_num, header, row, problems)
        except csv.Error as exc:  # e.g. a quote never closed: the rest of the file cannot be split into rows
            problems.add("malformed_row", f"{path.name}:{reader.line_num} ({exc})")
        except StopIteration:
            return


def _read_row(path: Path, line: int, header: list[str], cells: list[str], problems: Problems) -> Iterator[VoteRecord]:
    where = f"{path.name}:{line}"
    if not any(c.strip() for c in cells):
        return  # a blank line
    if len(cells) != len(header):
        problems.add("malformed_row", f"{where} ({len(cells)} fields, header has {len(header)})")
        return
    row = dict(zip(header, cells))
    slots = [int(m.group(1)) for c in header if (m := re.fullmatch(r"Input\.image_(\d+)_key", c))]
    keys = [(i, row[f"Input.image_{i}_key"].strip()) for i in sorted(slots)]
    keys = [(i, k) for i, k in keys if k]
    if row["AssignmentStatus"].strip() == "Rejected":
        problems.add("rejected_assignment", where, len(keys))
        return
    worker = row["WorkerId"].strip()
    if not worker:
        problems.add("missing_worker", where, len(keys))
        return
    task_answers = None
    if "Answer.taskAnswers" in row:
        try:
            task_answers = _task_answers(row["Answer.taskAnswers"])
        except ValueError:
            problems.add("malformed_row", f"{where} (Answer.taskAnswers is not JSON)", max(1, len(keys)))
            return
    when = parse_mturk_time(row.get("SubmitTime", ""))
    wnid = row.get("Input.wnid", "").strip()
    for i, key in keys:
        answer = _slot_answer(row, task_answers, i)
        if answer is None:
            problems.add("unanswered", f"{where} image_{i}")
            continue
        yield VoteRecord(key, wnid, worker, answer, when, f"{where} image_{i}")
