"""Crowd platform files written the way the platforms write them, for the import tests.

MTurk: the requester site's "Download CSV" of a batch: every field quoted, CRLF line ends, the
fixed HIT and assignment columns in MTurk's order, then ``Input.<column>`` for each column of
the batch input CSV, then the answers, then ``Approve`` and ``Reject``. Times look like
``Thu Oct 09 07:30:20 PDT 2025``. Label Studio: the "JSON" export (a list of tasks with
``annotations`` whose ``result`` holds the choices region) and the "JSON-MIN" export.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

HIT_COLUMNS = [
    "HITId", "HITTypeId", "Title", "Description", "Keywords", "Reward", "CreationTime", "MaxAssignments",
    "RequesterAnnotation", "AssignmentDurationInSeconds", "AutoApprovalDelayInSeconds", "Expiration",
    "NumberOfSimilarHITs", "LifetimeInSeconds", "AssignmentId", "WorkerId", "AssignmentStatus", "AcceptTime",
    "SubmitTime", "AutoApprovalTime", "ApprovalTime", "RejectionTime", "RequesterFeedback", "WorkTimeInSeconds",
    "LifetimeApprovalRate", "Last30DaysApprovalRate", "Last7DaysApprovalRate",
]


def read_input_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def mturk_results(input_rows: list[dict[str, str]], assignments: list[dict[str, Any]], style: str = "task_answers") -> str:
    """The results CSV text. Each assignment: ``hit`` (row index), ``worker``, ``answers``
    (slot number -> answer), optional ``status`` (Approved), ``submit`` (MTurk time text).
    ``style``: ``task_answers`` (crowd-form's Answer.taskAnswers JSON), ``columns``
    (Answer.image_i) or ``flags`` (Answer.image_i.yes/no/maybe booleans)."""
    inputs = list(input_rows[0])
    slots = [int(c.split("_")[1]) for c in inputs if c.startswith("image_") and c.endswith("_key")]
    if style == "task_answers":
        answer_cols = ["Answer.taskAnswers"]
    elif style == "columns":
        answer_cols = [f"Answer.image_{i}" for i in slots]
    else:
        answer_cols = [f"Answer.image_{i}.{a}" for i in slots for a in ("yes", "no", "maybe")]
    header = HIT_COLUMNS + [f"Input.{c}" for c in inputs] + answer_cols + ["Approve", "Reject"]
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(header)
    for n, a in enumerate(assignments):
        row = input_rows[a["hit"]]
        status = a.get("status", "Approved")
        fixed = {
            "HITId": f"3HIT{a['hit']:06d}XYZ", "HITTypeId": "3TYPE000ABC", "Title": "Does this picture show it?",
            "Description": "Answer yes or no for each picture", "Keywords": "image, label", "Reward": "$0.05",
            "CreationTime": "Wed Oct 08 10:00:00 PDT 2025", "MaxAssignments": "3", "RequesterAnnotation": "BatchId:5012345;",
            "AssignmentDurationInSeconds": "3600", "AutoApprovalDelayInSeconds": "259200",
            "Expiration": "Wed Oct 15 10:00:00 PDT 2025", "NumberOfSimilarHITs": "", "LifetimeInSeconds": "",
            "AssignmentId": f"3ASG{n:06d}QRS", "WorkerId": a["worker"], "AssignmentStatus": status,
            "AcceptTime": "Thu Oct 09 07:20:00 PDT 2025", "SubmitTime": a.get("submit", f"Thu Oct 09 07:{30 + n % 30:02d}:20 PDT 2025"),
            "AutoApprovalTime": "Sun Oct 12 07:30:20 PDT 2025",
            "ApprovalTime": "Fri Oct 10 09:00:00 PDT 2025" if status == "Approved" else "",
            "RejectionTime": "Fri Oct 10 09:00:00 PDT 2025" if status == "Rejected" else "",
            "RequesterFeedback": "random answers" if status == "Rejected" else "", "WorkTimeInSeconds": "612",
            "LifetimeApprovalRate": "0% (0/0)", "Last30DaysApprovalRate": "0% (0/0)", "Last7DaysApprovalRate": "0% (0/0)",
        }
        cells = [fixed[c] for c in HIT_COLUMNS] + [row[c] for c in inputs]
        answers: dict[int, str] = a["answers"]
        if style == "task_answers":
            cells.append(json.dumps([{f"image_{i}": {x: x == v for x in ("yes", "no", "maybe")} for i, v in answers.items()}]))
        elif style == "columns":
            cells += [answers.get(i, "") for i in slots]
        else:
            cells += ["true" if answers.get(i) == x else "false" for i in slots for x in ("yes", "no", "maybe")]
        cells += ["", ""]
        writer.writerow(cells)
    return out.getvalue()


def label_studio_export(tasks: list[dict[str, Any]], annotations: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """A "JSON" export: our task JSON with ids and annotations. ``annotations[i]``: dicts with
    ``user`` (int, or dict with email), ``answer`` (or None: no result), ``cancelled``, ``when``."""
    out = []
    aid = 1
    for i, task in enumerate(tasks):
        anns = []
        for a in annotations.get(i, []):
            result = [] if a.get("answer") is None else [{
                "value": {"choices": [a["answer"]]}, "id": f"r{aid}", "from_name": "answer", "to_name": "image",
                "type": "choices", "origin": "manual"}]
            anns.append({
                "id": aid, "completed_by": a["user"], "result": result, "was_cancelled": bool(a.get("cancelled")),
                "ground_truth": False, "created_at": a.get("when", "2025-10-09T14:30:20.123456Z"),
                "updated_at": a.get("when", "2025-10-09T14:30:20.123456Z"), "draft_created_at": None,
                "lead_time": 3.2, "prediction": {}, "result_count": len(result), "unique_id": f"u{aid}",
                "import_id": None, "last_action": None, "task": i + 1, "project": 7, "updated_by": None,
                "parent_prediction": None, "parent_annotation": None, "last_created_by": None,
            })
            aid += 1
        out.append({"id": i + 1, "annotations": anns, "file_upload": "tasks.json", "drafts": [], "predictions": [],
                    "data": task["data"], "meta": {}, "created_at": "2025-10-08T10:00:00.000000Z",
                    "updated_at": "2025-10-09T14:30:20.123456Z", "inner_id": i + 1, "total_annotations": len(anns),
                    "cancelled_annotations": sum(a["was_cancelled"] for a in anns), "total_predictions": 0,
                    "comment_count": 0, "unresolved_comment_count": 0, "last_comment_updated_at": None, "project": 7,
                    "updated_by": None, "comment_authors": []})
    return out
