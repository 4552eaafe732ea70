"""votes next / apply on a real manifest, the shard that follows, and the votes recipe stage."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pytest

from imgnet_tools.manifest.parquet import read_table
from imgnet_tools.manifest.schemas import load_schema, validate_json
from imgnet_tools.votes.adaptive import NextParams, next_votes
from imgnet_tools.votes.apply import ApplyParams, apply_votes, outputs_complete
from imgnet_tools.votes.importer import ImportParams, import_votes
from tests.votes_data import VotesData, make_votes_data

WORKERS = ("ann", "ben", "cat", "dan", "eve", "fay")


@pytest.fixture
def data(tmp_path: Path) -> VotesData:
    return make_votes_data(tmp_path, per_class=6)


def _manifest_rows(path: Path) -> dict[str, dict[str, object]]:
    return {r["key"]: r for r in read_table(path, "manifest").to_pylist()}


def _answers(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "wnid", "worker", "answer"])
        w.writerows(rows)
    return path


def _votes_for(truth: dict[tuple[str, str], str | list[str]], workers: tuple[str, ...] = WORKERS[:3]) -> list[tuple[str, str, str, str]]:
    out = []
    for (key, wnid), answer in truth.items():
        answers = answer if isinstance(answer, list) else [answer] * len(workers)
        out += [(key, wnid, w, a) for w, a in zip(workers, answers)]
    return out


def test_reason_vocabulary_includes_the_vote_reasons_in_schema_and_check_module() -> None:
    from imgnet_tools.images.check import REJECT_REASONS, VOTE_REASONS

    declared = load_schema("manifest")["reason_values"]
    assert set(VOTE_REASONS) == {"votes_no", "no_consensus", "votes_pending"} and set(VOTE_REASONS) <= set(REJECT_REASONS)
    assert all(declared[r].startswith("rejected (votes apply") for r in VOTE_REASONS)
    fields = {f["name"]: f for f in load_schema("manifest")["fields"]}
    assert fields["labels"]["type"] == "list<int32>" and fields["p_yes"]["type"] == "float64"


def test_apply_rejects_voted_down_rows_keeps_p_yes_and_writes_multi_labels(data: VotesData, tmp_path: Path) -> None:
    rows = _manifest_rows(data.manifest)
    keys = sorted(rows)
    tench = [k for k in keys if rows[k]["wnid"] == "n01440764"]
    goldfish = [k for k in keys if rows[k]["wnid"] == "n01443537"]
    truth: dict[tuple[str, str], str | list[str]] = {(k, str(rows[k]["wnid"])): "yes" for k in keys}
    truth[(tench[0], "n01440764")] = "no"
    truth[(goldfish[1], "n01443537")] = ["yes", "no", "yes", "no"]  # 2:2 with --max-votes 4: no consensus
    truth[(goldfish[2], "n01440764")] = "yes"  # a goldfish picture that shows a tench too
    truth[(goldfish[3], "n01440764")] = "no"
    answers = _votes_for({q: a for q, a in truth.items() if not isinstance(a, list)})
    answers += [(goldfish[1], "n01443537", w, a) for w, a in zip(WORKERS, ["yes", "no", "yes", "no"])]
    import_votes(ImportParams((str(_answers(tmp_path / "answers.csv", answers)),), str(data.votes), str(data.manifest)))
    params = ApplyParams(str(data.manifest), str(data.votes), method="majority", max_votes=4)
    result = apply_votes(params)
    assert result.decisions == {"no": 1, "no_consensus": 1, "yes": 16}
    assert result.rejected == {"no_consensus": 1, "votes_no": 1} and result.multi_label == 1 and result.complete
    after = _manifest_rows(data.manifest)
    assert (after[tench[0]]["status"], after[tench[0]]["reason"], after[tench[0]]["pre_votes_status"]) == ("rejected", "votes_no", "ok")
    assert after[tench[0]]["p_yes"] == 0.0 and after[tench[0]]["labels"] is None
    assert (after[goldfish[1]]["status"], after[goldfish[1]]["reason"]) == ("rejected", "no_consensus")
    assert after[goldfish[2]]["labels"] == [0, 1] and after[goldfish[3]]["labels"] == [1]
    assert after[tench[1]]["status"] == "ok" and after[tench[1]]["p_yes"] == 1.0 and after[tench[1]]["labels"] == [0]
    record = json.loads((data.manifest.parent / "votes_apply.json").read_text())
    validate_json(record, "votes_apply")
    assert outputs_complete(params) and not outputs_complete(ApplyParams(str(data.manifest), str(data.votes)))

    # More votes change the consensus: the voted-down tench is restored, then shard takes it.
    more = [(tench[0], "n01440764", w, "yes") for w in WORKERS[3:]] + [(tench[0], "n01440764", w, "yes") for w in WORKERS[:3]]
    import_votes(ImportParams((str(_answers(tmp_path / "more.csv", more)),), str(data.votes)))
    assert not outputs_complete(params)  # the votes table changed
    again = apply_votes(ApplyParams(str(data.manifest), str(data.votes), method="majority", max_votes=10))
    assert again.restored == 2 and again.rejected == {}
    restored = _manifest_rows(data.manifest)
    assert (restored[tench[0]]["status"], restored[tench[0]]["reason"], restored[tench[0]]["pre_votes_status"]) == ("ok", None, None)


def test_shard_takes_only_the_rows_the_votes_accepted(data: VotesData, tmp_path: Path) -> None:
    from imgnet_tools.shards.write import ShardParams, shard

    rows = _manifest_rows(data.manifest)
    keys = sorted(rows)
    truth: dict[tuple[str, str], str | list[str]] = {(k, str(rows[k]["wnid"])): "no" if i % 3 == 0 else "yes" for i, k in enumerate(keys)}
    import_votes(ImportParams((str(_answers(tmp_path / "a.csv", _votes_for(truth))),), str(data.votes)))
    apply_votes(ApplyParams(str(data.manifest), str(data.votes), method="majority"))
    shard(ShardParams(str(data.manifest), str(tmp_path / "shards"), size=100, workers=1))
    sharded = set(read_table(tmp_path / "shards" / "manifest.parquet", "shard_manifest", columns=["source_key"]).column("source_key").to_pylist())
    assert sharded == {k for i, k in enumerate(keys) if i % 3 != 0}


def test_pending_rows_can_be_set_aside(data: VotesData, tmp_path: Path) -> None:
    rows = _manifest_rows(data.manifest)
    voted = sorted(rows)[:4]
    import_votes(ImportParams((str(_answers(tmp_path / "a.csv", _votes_for({(k, str(rows[k]["wnid"])): "yes" for k in voted}))),),
                              str(data.votes)))
    result = apply_votes(ApplyParams(str(data.manifest), str(data.votes), method="majority", pending="reject"))
    assert result.rejected == {"votes_pending": len(rows) - 4} and not result.complete
    after = _manifest_rows(data.manifest)
    assert {after[k]["status"] for k in voted} == {"ok"}


def test_next_exports_only_what_is_pending_and_reuses_an_unchanged_batch(data: VotesData, tmp_path: Path) -> None:
    params = NextParams(str(data.manifest), str(data.votes), str(tmp_path / "batches"), method="majority", per_task=10)
    first = next_votes(params)
    assert first.decisions["pending"] == 18 and first.batch is not None and Path(first.batch.out).name == "batch-001"
    assert first.votes_wanted == 18 * 3  # --first-votes for images without any
    again = next_votes(params)
    assert again.batch is not None and again.batch.reused and again.batch.out == first.batch.out
    rows = _manifest_rows(data.manifest)
    keys = sorted(rows)
    truth: dict[tuple[str, str], str | list[str]] = {(k, str(rows[k]["wnid"])): "yes" for k in keys[:15]}
    import_votes(ImportParams((str(_answers(tmp_path / "a.csv", _votes_for(truth))),), str(data.votes)))
    second = next_votes(params)
    assert second.decisions["yes"] == 15 and second.batch is not None and Path(second.batch.out).name == "batch-002"
    page = json.loads((Path(second.batch.out) / "page_tasks.json").read_text())
    asked = {q["key"] for t in page["tasks"] for q in t["questions"] if not q["gold"]}
    assert asked == set(keys[15:])
    consensus = read_table(data.votes.with_name("consensus.parquet"), "votes_consensus")
    assert consensus.num_rows == 18 and read_table(data.votes.with_name("consensus_workers.parquet"), "votes_workers").num_rows == 3


def _recipe(data: VotesData, tmp_path: Path) -> Path:
    recipe = tmp_path / "verified.yaml"
    recipe.write_text(f"""format_version: 1
name: verified
outputs:
  batches: batches
  shards: shards
stages:
  - stage: votes
    params:
      manifest: {data.manifest}
      votes: {data.votes}
      out: ${{batches}}
      method: majority
      per-task: 10
  - stage: shard
    params:
      manifest: {data.manifest}
      out: ${{shards}}
      size: 100
      workers: 1
""")
    return recipe


def test_the_votes_stage_stops_the_run_and_resumes_after_import(data: VotesData, tmp_path: Path, invoke) -> None:
    recipe = _recipe(data, tmp_path)
    stopped = invoke("run", recipe, "--workdir", tmp_path)
    assert stopped.exit_code == 3
    assert "Waiting: votes: 18 images need 54 more votes" in stopped.output and "imgnet votes import" in stopped.output
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "waiting" and [s["action"] for s in record["steps"]] == ["waiting", "pending"]
    assert record["steps"][0]["result"]["decisions"]["pending"] == 18
    page = json.loads((tmp_path / "batches" / "batch-001" / "page_tasks.json").read_text())
    rows = _manifest_rows(data.manifest)
    truth: dict[tuple[str, str], str | list[str]] = {(q["key"], t["wnid"]): "no" if q["key"].endswith("_1") else "yes"
                                                     for t in page["tasks"] for q in t["questions"]}
    assert len(truth) == len(rows)
    assert invoke("votes", "import", str(_answers(tmp_path / "a.csv", _votes_for(truth))), "--votes", data.votes,
                  "--manifest", data.manifest).exit_code == 0
    done = invoke("run", recipe, "--workdir", tmp_path)
    assert done.exit_code == 0, done.output
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "ok" and [s["action"] for s in record["steps"]] == ["ran", "ran"]
    sharded = set(read_table(tmp_path / "shards" / "manifest.parquet", "shard_manifest", columns=["source_key"]).column("source_key").to_pylist())
    assert sharded == {k for k in rows if not k.endswith("_1")}
    assert invoke("run", recipe, "--workdir", tmp_path, "--dry-run").output.count("skip") == 2
