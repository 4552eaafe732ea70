"""Votes in and out: the votes table, the export formats, and importing the platforms' own files."""

from __future__ import annotations

import csv
import datetime
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imgnet_tools.errors import InputError
from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.manifest.schemas import validate_json, validate_text
from imgnet_tools.votes import page
from imgnet_tools.votes.export import ExportParams, export
from imgnet_tools.votes.importer import ImportParams, import_votes
from imgnet_tools.votes.mturk import parse_mturk_time
from imgnet_tools.votes.table import append_votes, latest_answers, read_votes, votes_from_columns
from tests.votes_data import VotesData, make_votes_data
from tests.votes_files import label_studio_export, mturk_results, read_input_csv

UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> VotesData:
    return make_votes_data(tmp_path_factory.mktemp("votes-io"), per_class=6)


@pytest.fixture
def batch(data: VotesData, tmp_path: Path) -> Path:
    gold = tmp_path / "gold.csv"
    gold.write_text("key,wnid,answer\ntrain-n01440764_6,n01440764,yes\ntrain-n01443537_1,n01440764,no\n")
    export(ExportParams(str(data.manifest), str(tmp_path / "batch"), per_task=4, votes=3, gold=2, gold_file=(str(gold),),
                        image_url="https://img.example.org/{wnid}/{name}"))
    return tmp_path / "batch"


def _rows(n: int, **over: object) -> pa.Table:
    base = datetime.datetime(2025, 1, 1, tzinfo=UTC)
    cols = {"key": [f"k{i}" for i in range(n)], "wnid": ["n01440764"] * n, "worker": ["alice"] * n,
            "answer": ["yes"] * n, "source": ["table"] * n, "answered_at": [base + datetime.timedelta(seconds=i) for i in range(n)]}
    cols.update({k: v for k, v in over.items()})  # type: ignore[misc]
    return votes_from_columns(cols)


# --- the votes table -----------------------------------------------------------------------------

def test_append_is_atomic_deduplicated_and_schema_checked(tmp_path: Path) -> None:
    table = tmp_path / "votes.parquet"
    first = append_votes(table, _rows(5))
    assert (first.added, first.duplicates, first.total) == (5, 0, 5)
    again = append_votes(table, pa.concat_tables([_rows(5), _rows(5)]))
    assert (again.added, again.duplicates, again.total) == (0, 10, 5)
    changed = append_votes(table, _rows(2, answer=["no", "no"]))
    assert (changed.added, changed.total) == (2, 7)
    assert read_table(table, "votes").schema.field("answered_at").type == pa.timestamp("us", tz="UTC")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".votes.parquet.lock", "votes.parquet"]


def test_latest_answer_per_worker_wins_by_time_then_by_order() -> None:
    t0 = datetime.datetime(2025, 1, 1, tzinfo=UTC)
    table = votes_from_columns({
        "key": ["a", "a", "a", "b", "b"], "wnid": ["n01440764"] * 5, "worker": ["w1", "w1", "w2", "w1", "w1"],
        "answer": ["no", "yes", "maybe", "yes", "no"], "source": ["page"] * 5,
        "answered_at": [t0 + datetime.timedelta(seconds=5), t0, t0, None, None],
    })
    latest = {(r["key"], r["worker"]): r["answer"] for r in latest_answers(table).to_pylist()}
    assert latest == {("a", "w1"): "no", ("a", "w2"): "maybe", ("b", "w1"): "no"}


# --- export --------------------------------------------------------------------------------------

def test_export_writes_every_format_with_words_gloss_and_gold(batch: Path, data: VotesData) -> None:
    record = json.loads((batch / "batch.json").read_text())
    validate_json(record, "votes_batch")
    assert record["questions"] == 17  # 18 usable rows, one of them gold
    rows = read_input_csv(batch / "mturk_votes3.csv")
    assert len(rows) == record["tasks"] == 6  # tench: 5 -> 4 + 1; goldfish 6 -> 4 + 2; shark 6 -> 4 + 2
    tench = [r for r in rows if r["wnid"] == "n01440764"]
    assert tench[0]["words"] == "tench, Tinca tinca" and "fish" in tench[0]["gloss"]
    keys = [r[f"image_{i}_key"] for r in tench for i in range(1, 7) if r[f"image_{i}_key"]]
    assert keys.count("train-n01440764_6") == 2 and keys.count("train-n01443537_1") == 2  # gold in every tench task
    assert tench[0]["image_1_url"].startswith("https://img.example.org/n01440764/n0144")
    other = [r for r in rows if r["wnid"] != "n01440764"]
    assert all(not r["image_5_key"] for r in other)  # no gold for those synsets: slots left empty
    assert record["tasks_without_gold"] == 4
    gold = read_table(batch / "gold.parquet", "votes_gold").to_pylist()
    assert sorted((g["key"], g["answer"]) for g in gold) == [("train-n01440764_6", "yes"), ("train-n01443537_1", "no")]
    ls = json.loads((batch / "label_studio_votes3.json").read_text())
    assert len(ls) == 19 and {"image", "key", "wnid", "words", "gloss", "task_id"} == set(ls[0]["data"])
    config = ET.fromstring((batch / "label_studio_config.xml").read_text())
    assert [c.get("value") for c in config.iter("Choice")] == ["yes", "no", "maybe"]
    assert 'name="image_6"' in (batch / "mturk_layout.html").read_text()
    validate_json(json.loads((batch / "page_tasks.json").read_text()), "votes_page_tasks")


def test_export_refuses_bad_options_and_an_existing_batch(data: VotesData, batch: Path) -> None:
    with pytest.raises(InputError, match="placeholders"):
        export(ExportParams(str(data.manifest), str(batch.parent / "x"), image_url="{nope}"))
    with pytest.raises(InputError, match="--format"):
        export(ExportParams(str(data.manifest), str(batch.parent / "x"), format=("csv",)))
    from imgnet_tools.errors import OutputExistsError

    with pytest.raises(OutputExistsError, match="--overwrite"):
        export(ExportParams(str(data.manifest), str(batch)))


# --- import: MTurk -------------------------------------------------------------------------------

@pytest.mark.parametrize("style", ["task_answers", "columns", "flags"])
def test_mturk_results_csv_as_mturk_writes_it(batch: Path, data: VotesData, tmp_path: Path, style: str) -> None:
    inputs = read_input_csv(batch / "mturk_votes3.csv")
    n0 = int(inputs[0]["n_images"])
    assignments = [
        {"hit": 0, "worker": "A1EXAMPLEWORKER", "answers": {i: "yes" for i in range(1, n0 + 1)}},
        {"hit": 0, "worker": "A2EXAMPLEWORKER", "answers": {**{i: "no" for i in range(1, n0)}}},  # last slot unanswered
        {"hit": 0, "worker": "A3SPAMMER", "status": "Rejected", "answers": {i: "yes" for i in range(1, n0 + 1)}},
        {"hit": 1, "worker": "A1EXAMPLEWORKER", "answers": {1: "maybe", 2: "yes"}},
    ]
    text = mturk_results(inputs, assignments, style)
    lines = text.split("\r\n")
    lines.insert(3, '"3HITBROKEN","only","three fields"')  # a malformed row in the middle
    results = tmp_path / "Batch_5012345_batch_results.csv"
    results.write_text("\r\n".join(lines), encoding="utf-8")
    votes = tmp_path / "votes.parquet"
    result = import_votes(ImportParams((str(results),), str(votes), str(data.manifest)))
    f = result.files[0]
    assert f.format == "mturk"
    assert f.answers == n0 + (n0 - 1) + 2 == result.added
    unanswered = 1 + int(inputs[1]["n_images"]) - 2  # A2's last slot; hit 1's slots after the second
    assert f.skipped == {"malformed_row": 1, "rejected_assignment": n0, "unanswered": unanswered}
    table = read_votes(votes).to_pylist()
    first = [r for r in table if r["worker"] == "A1EXAMPLEWORKER" and r["wnid"] == inputs[0]["wnid"]]
    assert {r["key"] for r in first} == {inputs[0][f"image_{i}_key"] for i in range(1, n0 + 1)}
    assert first[0]["source"] == "mturk"
    assert first[0]["answered_at"] == datetime.datetime(2025, 10, 9, 14, 30, 20, tzinfo=UTC)  # 07:30:20 PDT
    again = import_votes(ImportParams((str(results),), str(votes), str(data.manifest)))
    assert (again.added, again.duplicates, again.total) == (0, f.answers, f.answers)


def test_mturk_time_zones() -> None:
    assert parse_mturk_time("Thu Oct 09 07:30:20 UTC 2025") == datetime.datetime(2025, 10, 9, 7, 30, 20, tzinfo=UTC)
    assert parse_mturk_time("Wed Jan 10 08:20:39 PST 2024") == datetime.datetime(2024, 1, 10, 16, 20, 39, tzinfo=UTC)
    assert parse_mturk_time("2024-01-10T08:20:39Z") == datetime.datetime(2024, 1, 10, 8, 20, 39, tzinfo=UTC)
    assert parse_mturk_time("") is None and parse_mturk_time("Wed Jan 10 08:20:39 XYZ 2024") is None


def test_mturk_unknown_keys_bad_answers_and_an_unclosed_quote(batch: Path, data: VotesData, tmp_path: Path) -> None:
    inputs = read_input_csv(batch / "mturk_votes3.csv")
    inputs[0] = {**inputs[0], "image_1_key": "not-a-manifest-key"}
    text = mturk_results(inputs, [{"hit": 0, "worker": "W1", "answers": {1: "yes", 2: "definitely", 3: "no", 4: "y", 5: "n", 6: "no"}},
                                  {"hit": 1, "worker": "", "answers": {1: "yes"}}], "columns")
    path = tmp_path / "results.csv"
    path.write_text(text + '"3HITX","unterminated\r\n', encoding="utf-8")
    result = import_votes(ImportParams((str(path),), str(tmp_path / "votes.parquet"), str(data.manifest)))
    f = result.files[0]
    assert f.skipped == {"bad_answer": 1, "malformed_row": 1, "missing_worker": int(inputs[1]["n_images"]), "unknown_key": 1}
    assert int(inputs[0]["n_images"]) == 6
    assert f.added == 4 and sorted(r["answer"] for r in read_votes(tmp_path / "votes.parquet").to_pylist()) == ["no", "no", "no", "yes"]
    assert f.examples["unknown_key"] == ["results.csv:2 image_1"]


# --- import: Label Studio ------------------------------------------------------------------------

def test_label_studio_export_as_label_studio_writes_it(batch: Path, data: VotesData, tmp_path: Path) -> None:
    tasks = json.loads((batch / "label_studio_votes3.json").read_text())[:4]
    doc = label_studio_export(tasks, {
        0: [{"user": 1, "answer": "yes"}, {"user": {"id": 2, "email": "bob@example.org"}, "answer": "no"},
            {"user": 3, "answer": None, "cancelled": True}],
        1: [{"user": 1, "answer": "maybe", "when": "2025-10-09T15:00:00Z"}],
        2: [{"user": 1, "answer": None}],
    })
    doc.append({"id": 99, "annotations": "not a list", "data": {}})
    path = tmp_path / "project-7-at-2025-10-09-14-40-0a1b2c3d.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = import_votes(ImportParams((str(path),), str(tmp_path / "votes.parquet"), str(data.manifest)))
    f = result.files[0]
    assert (f.format, f.added) == ("label_studio", 3)
    assert f.skipped == {"cancelled": 1, "malformed_row": 1, "unanswered": 1}
    got = {(r["key"], r["worker"]): r["answer"] for r in read_votes(tmp_path / "votes.parquet").to_pylist()}
    k0, k1 = tasks[0]["data"]["key"], tasks[1]["data"]["key"]
    assert got == {(k0, "label-studio:1"): "yes", (k0, "label-studio:bob@example.org"): "no", (k1, "label-studio:1"): "maybe"}
    assert import_votes(ImportParams((str(path),), str(tmp_path / "votes.parquet"))).added == 0


def test_label_studio_json_min_export(tmp_path: Path) -> None:
    doc = [{"image": "a.jpg", "key": "k1", "wnid": "n01440764", "id": 5, "answer": "yes", "annotator": 4,
            "annotation_id": 9, "created_at": "2025-10-09T14:30:20.1Z", "updated_at": "2025-10-09T14:30:20.1Z", "lead_time": 2.5},
           {"image": "b.jpg", "key": "k2", "wnid": "n01440764", "id": 6, "answer": {"choices": ["no"]}, "annotator": 4,
            "annotation_id": 10, "created_at": "2025-10-09T14:31:00Z", "updated_at": "2025-10-09T14:31:00Z", "lead_time": 1.0}]
    path = tmp_path / "export-min.json"
    path.write_text(json.dumps(doc))
    result = import_votes(ImportParams((str(path),), str(tmp_path / "votes.parquet")))
    assert result.added == 2
    assert sorted((r["key"], r["answer"]) for r in read_votes(tmp_path / "votes.parquet").to_pylist()) == [("k1", "yes"), ("k2", "no")]


# --- import: the page's journal and long tables --------------------------------------------------

def test_page_journal_with_a_torn_last_line(tmp_path: Path) -> None:
    journal = tmp_path / "answers.jsonl"
    fd = page.open_journal(journal)
    when = datetime.datetime(2025, 10, 9, 12, 0, tzinfo=UTC)
    for i, a in enumerate(["yes", "no", "maybe"]):
        page.append_line(fd, page.journal_line(f"k{i}", "n01440764", "alice", a, when))
    page.append_line(fd, b'{"format_version": 1, "key": "k9", "wn')  # the process died mid-write
    whole_lines = journal.read_bytes().split(b"\n")[:3]
    assert all(line.startswith(b"{") for line in whole_lines)
    result = import_votes(ImportParams((str(journal),), str(tmp_path / "votes.parquet")))
    assert (result.files[0].format, result.added, result.skipped) == ("page", 3, {"malformed_row": 1})
    rows = read_votes(tmp_path / "votes.parquet").to_pylist()
    assert {r["source"] for r in rows} == {"page"} and rows[0]["answered_at"] == when


def test_page_journal_lines_match_their_schema(tmp_path: Path) -> None:
    journal = tmp_path / "answers.jsonl"
    fd = page.open_journal(journal)
    page.append_line(fd, page.journal_line("k", "n01440764", "a b", "yes", datetime.datetime.now(UTC)))
    assert validate_text(journal, "votes_answers") == 1


def test_long_tables_csv_and_parquet(tmp_path: Path, data: VotesData) -> None:
    key = read_table(data.manifest, "manifest", columns=["key"]).column("key")[0].as_py()
    path = tmp_path / "long.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "wnid", "worker", "answer", "answered_at"])
        w.writerows([[key, "n01440764", "w1", "Yes", "2025-01-01T00:00:00Z"], [key, "n01440764", "w2", "nope", ""],
                     [key, "n1440764", "w3", "no", ""], [key, "n01440764", "", "no", ""], [key, "n01440764", "w4", "no", "", "extra"]])
    pq.write_table(pa.table({"key": [key], "wnid": ["n01443537"], "worker": ["w5"], "answer": ["no"]}), tmp_path / "long.parquet")
    result = import_votes(ImportParams((str(path), str(tmp_path / "long.parquet")), str(tmp_path / "votes.parquet"),
                                       str(data.manifest)))
    assert [f.format for f in result.files] == ["table", "table"]
    assert result.skipped == {"bad_answer": 1, "bad_wnid": 1, "malformed_row": 1, "missing_worker": 1}
    assert result.added == 2


def test_a_file_of_no_known_format_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mystery.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="--format"):
        import_votes(ImportParams((str(path),), str(tmp_path / "votes.parquet")))
    assert not (tmp_path / "votes.parquet").exists()
