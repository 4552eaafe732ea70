"""Recipe loading and validation: every error names the file and the line, before anything runs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from imgnet_tools.errors import InputError
from imgnet_tools.recipes.load import LineDict, line_of, load_yaml
from imgnet_tools.recipes.run import RunParams, plan
from imgnet_tools.recipes.validate import RecipeError, build_params, parse_recipe


def write_recipe(tmp_path: Path, body: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip("\n"), encoding="utf-8")
    return path


GOOD = """
format_version: 1
name: report-only
inputs:
  run: rundir
outputs:
  rep: rundir/report
stages:
  - stage: report
    params:
      dir: ${run}
      out: ${rep}
      max-clusters: 3
"""


def test_loader_records_lines_of_keys_and_items() -> None:
    doc = load_yaml("a: 1\nb:\n  - x\n  - y: 2\n    z: 3\n")
    assert isinstance(doc, LineDict)
    assert doc.lines == {"a": 1, "b": 2}
    assert line_of(doc, ["b", 1]) == 4
    assert line_of(doc, ["b", 1, "z"]) == 5
    assert line_of(doc, ["b", 7]) == 2  # unknown index: the deepest known line


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, """
        format_version: 1
        name: dup
        stages:
          - stage: report
            params:
              dir: .
              max-clusters: 2
              max-clusters: 3
    """)
    with pytest.raises(InputError) as exc:
        parse_recipe(path)
    assert f"{path}:8: duplicate key 'max-clusters' (first given on line 7)" in str(exc.value)


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, "format_version: 1\nname: a\nname: b\nstages: []\n")
    with pytest.raises(InputError, match=r"recipe.yaml:3: duplicate key 'name' \(first given on line 2\)"):
        parse_recipe(path)


def test_unknown_stage_names_its_line_and_the_known_stages(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, """
        format_version: 1
        name: typo
        stages:
          - stage: report
            params: {dir: .}
          - stage: scna
            params: {src: [data]}
    """)
    with pytest.raises(RecipeError) as exc:
        parse_recipe(path)
    msg = str(exc.value)
    assert f"{path}:6: unknown stage 'scna'" in msg
    assert "scan" in msg and "shard" in msg


def test_wrong_type_of_stages_names_the_line(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, "format_version: 1\nname: x\n\nstages: scan\n")
    with pytest.raises(RecipeError, match=r"recipe.yaml:4: stages: 'scan' is not of type 'array'"):
        parse_recipe(path)


def test_wrong_type_of_a_stage_parameter_names_the_line(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, GOOD.replace("max-clusters: 3", "max-clusters: eight"))
    recipe = parse_recipe(path)  # the schema allows any scalar; the stage's dataclass does not
    with pytest.raises(RecipeError) as exc:
        build_params(recipe, tmp_path)
    assert f"{path}:12: stage 'report' parameter 'max_clusters': expected an integer, got 'eight'" in str(exc.value)


def test_a_quoted_number_is_not_an_integer(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, GOOD.replace("max-clusters: 3", "max-clusters: '3'"))
    with pytest.raises(RecipeError, match=r":12: .*expected an integer, got '3'"):
        build_params(parse_recipe(path), tmp_path)


def test_unknown_parameter_and_unknown_key_each_name_their_line(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, GOOD.replace("      max-clusters: 3", "      max-clusterz: 3"))
    with pytest.raises(RecipeError, match=r"recipe.yaml:12: stage 'report' has no parameter 'max_clusterz'"):
        build_params(parse_recipe(path), tmp_path)
    path = write_recipe(tmp_path, GOOD.replace("  - stage: report", "  - stage: report\n    retries: 2"))
    with pytest.raises(RecipeError, match=r"recipe.yaml:9: unknown key 'retries' in stages/0"):
        parse_recipe(path)


def test_every_problem_is_listed_in_line_order(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, """
        format_version: 2
        name: many
        colour: blue
        stages:
          - stage: nope
    """)
    with pytest.raises(RecipeError) as exc:
        parse_recipe(path)
    lines = str(exc.value).splitlines()
    assert lines[0] == "invalid recipe"
    assert [ln.strip().split(":")[1] for ln in lines[1:]] == ["1", "3", "5"]


def test_missing_required_parameter_names_the_stage_line(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, "format_version: 1\nname: x\nstages:\n  - stage: report\n    params: {max-clusters: 1}\n")
    with pytest.raises(RecipeError, match=r"recipe.yaml:4: stage 'report' needs parameter\(s\) dir"):
        build_params(parse_recipe(path), tmp_path)


def test_undefined_reference_and_repeated_ids(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, """
        format_version: 1
        name: refs
        stages:
          - stage: report
            params: {dir: "${nowhere}"}
          - stage: report
            params: {dir: .}
    """)
    with pytest.raises(RecipeError) as exc:
        parse_recipe(path)
    assert ":5: ${nowhere} names no input or output" in str(exc.value)
    assert ":6: step id 'report' repeats line 4" in str(exc.value)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, "format_version: 1\nname: x\nstages:\n  - stage: report\n    params: {dir: .\n")
    with pytest.raises(InputError, match=r"recipe.yaml:\d+: not valid YAML"):
        parse_recipe(path)


def test_paths_resolve_against_the_recipe_directory_or_the_workdir(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    path = write_recipe(recipes, GOOD)
    (recipes / "rundir").mkdir()
    own = plan(RunParams(path)).steps[0].params
    assert own.dir == (recipes / "rundir").resolve()
    assert own.out == (recipes / "rundir" / "report").resolve()
    assert own.max_clusters == 3
    work = tmp_path / "work"
    elsewhere = plan(RunParams(path, workdir=work)).steps[0].params
    assert elsewhere.dir == (work / "rundir").resolve()


def test_cli_reports_a_bad_recipe_with_exit_2_and_the_line(tmp_path: Path, invoke) -> None:
    path = write_recipe(tmp_path, "format_version: 1\nname: x\nstages:\n  - stage: scna\n")
    result = invoke("run", path, "--dry-run")
    assert result.exit_code == 2
    assert f"Error: {path}:4: unknown stage 'scna'" in result.output


def test_cli_dry_run_prints_the_plan_and_runs_nothing(tmp_path: Path, invoke) -> None:
    path = write_recipe(tmp_path, GOOD)
    (tmp_path / "rundir").mkdir()
    result = invoke("run", path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "1. report" in result.output and "run" in result.output
    assert "max-clusters: 3" in result.output
    assert not (tmp_path / "rundir" / "report").exists()
    assert not (tmp_path / "run.json").exists()
    doc = json.loads(invoke("run", path, "--dry-run", "--json").output)
    assert doc["steps"][0]["action"] == "run" and doc["steps"][0]["params"]["max_clusters"] == 3


def test_missing_input_stops_the_run_before_any_stage(tmp_path: Path, invoke) -> None:
    path = write_recipe(tmp_path, GOOD)
    result = invoke("run", path)
    assert result.exit_code == 2
    assert "missing input(s): run" in result.output
    assert not (tmp_path / "run.json").exists()


@pytest.mark.parametrize("name", ["demo", "imagenet-1k", "imagenet-21k"])
def test_shipped_recipes_validate_against_every_stage(name: str, tmp_path: Path) -> None:
    from tests.conftest import REPO

    path = REPO / "pipelines" / f"{name}.yaml"
    the_plan = plan(RunParams(path, workdir=tmp_path))
    assert the_plan.recipe.name == name
    stages = [s.spec.stage for s in the_plan.steps]
    if name == "demo":  # it makes its own input
        assert not the_plan.missing_inputs and stages[0] == "demo"
        stages = stages[1:]
    else:
        assert the_plan.missing_inputs, "an empty workdir lacks the recipe's inputs"
    assert stages[:5] == ["synsets", "scan", "verify", "dedup", "shard"] and stages[-1] == "report"
    for step in the_plan.steps:
        for value in json.loads(json.dumps(step.params.__dict__, default=str)).values():
            if isinstance(value, str) and value.startswith(str(tmp_path)):
                assert "${" not in value
    if name == "imagenet-1k":
        shard = the_plan.steps[4].params
        assert (shard.size, shard.resize_short) == (1000, 256)
        assert the_plan.steps[0].params.preset == "ilsvrc2012"
    if name == "imagenet-21k":
        assert the_plan.steps[4].params.executor == "ray"
        assert the_plan.steps[0].params.preset == "imagenet21k"


def test_set_overrides_a_parameter_and_names_itself_in_errors(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, GOOD)
    (tmp_path / "rundir").mkdir()
    step = plan(RunParams(path, overrides=("report.max-clusters=5", "report.out=elsewhere"))).steps[0]
    assert step.params.max_clusters == 5 and step.params.out == (tmp_path / "elsewhere").resolve()
    with pytest.raises(RecipeError, match=r"recipe.yaml \(--set\): stage 'report' parameter 'max_clusters'"):
        plan(RunParams(path, overrides=("report.max-clusters=[1, 2]",)))
    with pytest.raises(InputError, match="expected STEP.PARAM=VALUE with STEP one of report"):
        plan(RunParams(path, overrides=("bench.gpus=2",)))


def test_run_skips_a_complete_step_and_force_reruns_it(tmp_path: Path) -> None:
    from imgnet_tools.recipes.run import run

    path = write_recipe(tmp_path, GOOD)
    (tmp_path / "rundir").mkdir()
    first = run(RunParams(path))
    assert [s.action for s in first.steps] == ["ran"]
    assert first.steps[0].result is not None and first.steps[0].result["html"].endswith("report.html")
    assert [s.action for s in run(RunParams(path)).steps] == ["skipped"]
    forced = run(RunParams(path, force=True))
    assert [s.action for s in forced.steps] == ["ran"] and forced.steps[0].params["overwrite"] is True
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "ok" and record["steps"][0]["seconds"] >= 0


def test_a_shipped_recipe_runs_by_name_with_a_workdir(tmp_path: Path, invoke) -> None:
    from imgnet_tools.recipes.load import locate, shipped_names

    assert {"demo", "imagenet-1k", "imagenet-21k"} <= set(shipped_names())
    path, shipped = locate("demo")
    assert shipped and path.name == "demo.yaml"
    result = invoke("run", "demo", "--workdir", tmp_path, "--dry-run")
    assert result.exit_code == 0 and "demo" in result.output and "missing input" not in result.output  # makes its data
    assert invoke("run", "demo", "--dry-run").exit_code == 2  # where would its paths go?
    missing = invoke("run", "no-such-recipe", "--dry-run")
    assert missing.exit_code == 2 and "shipped: demo, " in missing.output
    assert all(name in missing.output for name in ("demo-train", "from-urls", "imagenet-1k", "imagenet-21k"))
