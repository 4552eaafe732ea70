"""Label Studio: the task JSON and labeling config we write, the JSON export we read.

Tasks: one per question (Label Studio shows one image at a time; its "overlap" setting asks for
several annotations per task): ``[{"data": {"image": URL, "key", "wnid", "words", "gloss",
"task_id"}}, ...]``. The labeling config (``label_studio_config.xml``) shows the words and gloss
above the image and a single-choice ``answer`` with hotkeys 1/2/3.

Export, as Label Studio writes its "JSON" export: a list of tasks, each with ``id``, ``data``
(what we wrote) and ``annotations``: ``[{"id", "completed_by" (a user id, or in some versions an
object with ``email``), "result": [{"from_name": "answer", "to_name": "image", "type":
"choices", "value": {"choices": ["yes"]}, ...}], "was_cancelled", "ground_truth", "created_at",
"updated_at", "lead_time", ...}]``. The "JSON-MIN" export (one flat object per annotation:
``key, wnid, answer, annotator, annotation_id, created_at, updated_at``) is read too.
Workers are named ``label-studio:EMAIL`` or ``label-studio:ID``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from imgnet_tools.votes.records import Problems, VoteRecord, parse_time
from imgnet_tools.votes.tasks import Task

CONFIG = """<View>
  <Header value="Does this picture show: $words?"/>
  <Text name="gloss" value="$gloss"/>
  <Image name="image" value="$image" maxWidth="640px"/>
  <Choices name="answer" toName="image" choice="single" showInline="true" required="true">
    <Choice value="yes" hotkey="1"/>
    <Choice value="no" hotkey="2"/>
    <Choice value="maybe" hotkey="3"/>
  </Choices>
</View>
"""


def tasks_json(tasks: Sequence[Task], url: Callable[[str, str], str]) -> list[dict[str, Any]]:
    """Label Studio tasks, one per distinct question of ``tasks`` (gold included, not marked)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for task in tasks:
        for key, _ in task.questions:
            if (key, task.wnid) in seen:
                continue
            seen.add((key, task.wnid))
            out.append({"data": {"image": url(key, task.wnid), "key": key, "wnid": task.wnid, "words": task.words,
                                 "gloss": task.gloss, "task_id": task.task_id}})
    return out


def write_tasks(path: Path, tasks: Sequence[Task], url: Callable[[str, str], str]) -> None:
    path.write_text(json.dumps(tasks_json(tasks, url), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def looks_like_export(doc: Any) -> bool:
    """True for a Label Studio JSON or JSON-MIN export (a list of objects of either shape)."""
    return isinstance(doc, list) and bool(doc) and all(isinstance(t, dict) for t in doc[:20]) and any(
        "annotations" in t or ("annotator" in t and "answer" in t) for t in doc[:20])


def _worker(completed_by: Any) -> str:
    if isinstance(completed_by, dict):
        who = completed_by.get("email") or completed_by.get("id")
    else:
        who = completed_by
    return f"label-studio:{who}" if who not in (None, "") else ""


def _choice(result: Any) -> tuple[str | None, bool]:
    """(the ``answer`` choice, whether the result list was well formed)."""
    if not isinstance(result, list):
        return None, False
    for item in result:
        if not isinstance(item, dict):
            return None, False
        if item.get("type") == "choices" and item.get("from_name", "answer") == "answer":
            choices = (item.get("value") or {}).get("choices")
            if not isinstance(choices, list):
                return None, False
            return (str(choices[0]) if len(choices) == 1 else None), True
    return None, True


def read_export(path: Path, doc: list[Any], problems: Problems) -> Iterator[VoteRecord]:
    """Every answer of a Label Studio export (already parsed JSON); bad tasks counted."""
    for n, task in enumerate(doc, start=1):
        where = f"{path.name}:task {task.get('id', n) if isinstance(task, dict) else n}"
        if not isinstance(task, dict):
            problems.add("malformed_row", where)
        elif "annotations" in task:
            yield from _full_task(task, where, problems)
        else:
            yield from _min_task(task, where, problems)


def _full_task(task: dict[str, Any], where: str, problems: Problems) -> Iterator[VoteRecord]:
    data = task.get("data")
    annotations = task.get("annotations")
    if not isinstance(data, dict) or not isinstance(annotations, list) or not data.get("key"):
        problems.add("malformed_row", f"{where} (no data.key or annotations list)")
        return
    key, wnid = str(data["key"]), str(data.get("wnid", ""))
    for a in annotations:
        at = f"{where} annotation {a.get('id') if isinstance(a, dict) else '?'}"
        if not isinstance(a, dict):
            problems.add("malformed_row", at)
            continue
        if a.get("was_cancelled"):
            problems.add("cancelled", at)
            continue
        answer, ok = _choice(a.get("result"))
        if not ok:
            problems.add("malformed_row", f"{at} (result is not a list of regions)")
            continue
        if answer is None:
            problems.add("unanswered", at)
            continue
        worker = _worker(a.get("completed_by"))
        if not worker:
            problems.add("missing_worker", at)
            continue
        yield VoteRecord(key, wnid, worker, answer, parse_time(a.get("updated_at") or a.get("created_at")), at)


def _min_task(task: dict[str, Any], where: str, problems: Problems) -> Iterator[VoteRecord]:
    if not task.get("key") or "answer" not in task:
        problems.add("malformed_row", f"{where} (no key or answer)")
        return
    answer = task["answer"]
    if isinstance(answer, dict):  # JSON-MIN writes {"choices": [...]} for some configs
        answer = (answer.get("choices") or [None])[0]
    worker = _worker(task.get("annotator"))
    if not worker:
        problems.add("missing_worker", where)
        return
    if answer in (None, ""):
        problems.add("unanswered", where)
        return
    yield VoteRecord(str(task["key"]), str(task.get("wnid", "")), worker, str(answer),
                     parse_time(task.get("updated_at") or task.get("created_at")), where)
