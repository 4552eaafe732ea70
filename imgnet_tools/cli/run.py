"""``imgnet run RECIPE``: run a declarative pipeline recipe, skipping finished stages."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from imgnet_tools.cli.options import emit_json, json_option, note, quiet_option


def _print_plan(doc: dict[str, Any]) -> None:
    click.echo(f"recipe {doc['name']} ({doc['recipe']})")
    click.echo(f"paths relative to {doc['base']}")
    for name in doc["missing_inputs"]:
        click.echo(f"missing input: {name}")
    for i, step in enumerate(doc["steps"], start=1):
        why = "outputs complete" if step["outputs_complete"] else "outputs incomplete"
        if step["recheck"]:
            why += "; asked again after the steps before it run"
        if doc["missing_inputs"]:
            why = "inputs missing"
        click.echo(f"{i}. {step['id']:<10} {step['action']:<4} ({why})  {step['command']}")
        for key in step["given"]:  # what the recipe sets; --json shows every parameter
            click.echo(f"     {key.replace('_', '-')}: {step['params'][key]}")


@click.command("run")
@click.argument("recipe")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Resolve the recipe's relative paths here (default: the recipe file's directory).")
@click.option("--dry-run", is_flag=True, help="Validate and print the plan; run nothing.")
@click.option("--force", is_flag=True, help="Run every stage again, even those whose outputs are complete (with --overwrite where a stage has it).")
@click.option("--set", "overrides", multiple=True, metavar="STEP.PARAM=VALUE",
              help="Override one stage parameter (repeatable), e.g. --set bench.gpus=2.")
@json_option
@quiet_option
def run(recipe: str, workdir: Path | None, dry_run: bool, force: bool, overrides: tuple[str, ...], as_json: bool,
        quiet: bool) -> None:
    """Run the stages of RECIPE (a pipelines/*.yaml file, or the name of a shipped recipe:
    demo, imagenet-1k, imagenet-21k) in order. The recipe is validated against
    schemas/recipe.schema.json and every stage's parameters before anything runs; errors name
    the line. A stage whose outputs are complete is skipped, so a failed run resumes where it
    stopped. WORKDIR/run.json records every step.

    \b
    Examples:
      imgnet run pipelines/demo.yaml --workdir demo-out --dry-run
      imgnet run pipelines/demo.yaml --workdir demo-out
      imgnet run demo --workdir demo-out
      imgnet run pipelines/imagenet-1k.yaml --workdir /data/in1k --set bench.gpus=8
    """
    from imgnet_tools.recipes.load import locate
    from imgnet_tools.recipes.run import RunHooks, RunParams, plan
    from imgnet_tools.recipes.run import run as run_recipe

    path, shipped = locate(recipe)
    if shipped and workdir is None:
        raise click.UsageError(f"{recipe} is a shipped recipe: pass --workdir DIR for its relative paths.")
    params = RunParams(path, workdir, dry_run, force, overrides)
    if dry_run:
        doc = plan(params).to_dict()
        emit_json(doc) if as_json else _print_plan(doc)
        return

    def started(i: int, n: int, step: Any) -> None:
        if not quiet:
            note(f"[{i}/{n}] {step.spec.id} ({step.spec.stage}) ...")

    def finished(i: int, n: int, record: Any) -> None:
        if not quiet:
            took = f" in {record.seconds:.1f}s" if record.seconds is not None else " (outputs complete)"
            note(f"[{i}/{n}] {record.id}: {record.action}{took}")

    result = run_recipe(params, RunHooks(started, finished))
    if as_json:
        emit_json(result.to_dict())
        return
    note(f"done: {sum(s.action == 'ran' for s in result.steps)} ran, "
         f"{sum(s.action == 'skipped' for s in result.steps)} skipped; record in {result.record}")
    click.echo(str(result.record))
    sys.stdout.flush()
