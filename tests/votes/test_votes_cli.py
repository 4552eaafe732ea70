"""`imgnet votes` on the command line: one round end to end, --json, errors, and the CLI's choices."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from imgnet_tools.cli import votes as cli_votes
from tests.votes_data import VotesData, make_votes_data


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> VotesData:
    return make_votes_data(tmp_path_factory.mktemp("votes-cli"), per_class=4)


def test_cli_choices_are_the_librarys() -> None:
    from imgnet_tools.votes.export import EXPORT_FORMATS
    from imgnet_tools.votes.importer import FORMATS
    from imgnet_tools.votes.models import ENGINES, METHODS

    assert cli_votes.METHODS == METHODS and cli_votes.ENGINES == ENGINES
    assert cli_votes.EXPORT_FORMATS == EXPORT_FORMATS and cli_votes.IMPORT_FORMATS == FORMATS


@pytest.mark.parametrize("command,params", [
    ("export", "imgnet_tools.votes.export:ExportParams"), ("import", "imgnet_tools.votes.importer:ImportParams"),
    ("aggregate", "imgnet_tools.votes.aggregate:AggregateParams"), ("next", "imgnet_tools.votes.adaptive:NextParams"),
    ("apply", "imgnet_tools.votes.apply:ApplyParams"), ("serve", "imgnet_tools.votes.server:ServeParams"),
])
def test_every_option_default_equals_its_params_field(command: str, params: str) -> None:
    import importlib

    import click

    module, name = params.split(":")
    fields = {f.name: f for f in dataclasses.fields(getattr(importlib.import_module(module), name))}
    cmd = cli_votes.votes.commands[command]
    compared = 0
    for option in cmd.params:
        field = fields.get(option.name or "")
        if not isinstance(option, click.Option) or field is None or option.required:
            continue
        default = option.get_default(click.Context(cmd))
        if type(default).__name__ == "Sentinel":  # click >= 8.2 marks "no default" this way
            default = None
        if option.multiple:
            default = tuple(default or ())
        assert default == field.default, (command, option.name)
        compared += 1
    assert compared >= 1
    assert {o.name for o in cmd.params if isinstance(o, click.Option)} - {"as_json"} <= set(fields)


def test_a_round_on_the_command_line(data: VotesData, tmp_path: Path, invoke) -> None:
    votes = tmp_path / "votes.parquet"
    nxt = invoke("votes", "next", data.manifest, "--votes", votes, "--out", tmp_path / "batches", "--json")
    assert nxt.exit_code == 0, nxt.output
    doc = json.loads(nxt.output)
    assert doc["decisions"]["pending"] == 12 and doc["batch"]["out"].endswith("batch-001")
    page = json.loads((tmp_path / "batches" / "batch-001" / "page_tasks.json").read_text())
    answers = tmp_path / "answers.csv"
    lines = ["key,wnid,worker,answer"] + [f"{q['key']},{t['wnid']},{w},{'no' if q['key'].endswith('_4') else 'yes'}"
                                         for t in page["tasks"] for q in t["questions"] for w in ("a", "b", "c")]
    answers.write_text("\n".join(lines) + "\n")
    imported = invoke("votes", "import", answers, "--votes", votes, "--manifest", data.manifest)
    assert imported.exit_code == 0 and "36 added" in imported.output
    assert "0 added" in invoke("votes", "import", answers, "--votes", votes).output
    agg = invoke("votes", "aggregate", votes, "--method", "majority", "--json")
    assert agg.exit_code == 0 and json.loads(agg.output)["decisions"] == {"yes": 9, "no": 3, "pending": 0, "no_consensus": 0}
    done = invoke("votes", "next", data.manifest, "--votes", votes, "--out", tmp_path / "batches", "--method", "majority")
    assert done.exit_code == 0 and "nothing pending" in done.output and "n01440764" in done.output
    applied = invoke("votes", "apply", data.manifest, "--votes", votes, "--method", "majority", "--out", tmp_path / "m.parquet")
    assert applied.exit_code == 0 and "votes_no 3" in applied.output
    assert (tmp_path / "votes_apply.json").is_file()


def test_errors_are_one_line_and_usage_errors_exit_2(data: VotesData, tmp_path: Path, invoke) -> None:
    missing = invoke("votes", "aggregate", tmp_path / "nope.parquet")
    assert missing.exit_code == 2  # click: the path does not exist
    bad = invoke("votes", "aggregate", data.manifest)
    assert bad.exit_code == 2 and bad.output.startswith("Error: ") and "manifest table, not votes" in bad.output
    assert invoke("votes", "next", data.manifest, "--votes", tmp_path / "v.parquet", "--out", tmp_path / "b",
                  "--confidence", "1.5").exit_code == 2
    unknown = tmp_path / "odd.txt"
    unknown.write_text("hello\n")
    result = invoke("votes", "import", unknown, "--votes", tmp_path / "v.parquet")
    assert result.exit_code == 2 and "Error:" in result.output and "--format" in result.output
