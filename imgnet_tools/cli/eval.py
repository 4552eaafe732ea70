"""``imgnet eval PREDICTIONS``: score predictions against a manifest or a devkit ground truth."""

from __future__ import annotations

import click

from imgnet_tools.cli.options import emit_json, json_option, note, overwrite_option
from imgnet_tools.errors import InputError

FORMATS = ("auto", "parquet", "csv", "tsv", "devkit")


@click.command("eval")
@click.argument("predictions", type=click.Path(exists=True, dir_okay=False))
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Ground truth: the manifest.parquet of `imgnet scan` or of a shard directory.")
@click.option("--truth", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Ground truth instead: a devkit file, one ILSVRC2012_ID per line for validation images 1, 2, ...")
@click.option("--split", default="val", show_default=True, help="Which split of --manifest to score.")
@click.option("--classes", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Class list (classes.tsv or one wnid per line) when the manifest's is not the one predicted in.")
@click.option("--synsets", type=click.Path(exists=True), default=None,
              help="`imgnet synsets build` output (folder, synsets.parquet or wordnet.is_a.txt): adds the hierarchical error.")
@click.option("--real", type=click.Path(exists=True, dir_okay=False), default=None,
              help="ReaL labels (real.json: a list of class-index lists in file-name order; [] leaves an image out).")
@click.option("--format", "format_", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="Predictions format (auto: .parquet, .csv, .tsv, or .txt for the devkit format).")
@click.option("--skip-unknown", is_flag=True,
              help="Count predictions for keys the ground truth does not have instead of stopping.")
@click.option("--confused", type=click.IntRange(min=0), default=20, show_default=True,
              help="How many most-confused class pairs to report.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the report here (JSON).")
@overwrite_option
@json_option
def eval_(predictions: str, format_: str, as_json: bool, **options: object) -> None:
    """Top-1/top-5 accuracy and error, per-class accuracy, most-confused pairs, hierarchical error and
    ReaL accuracy of PREDICTIONS.

    \b
    PREDICTIONS: `imgnet predict` output (.parquet), a CSV/TSV with key,pred_1..pred_5 (wnids or
    class indices, best first), or an ILSVRC devkit submission (.txt: five ILSVRC2012_IDs per line,
    one line per validation image in file-name order).
    \b
      imgnet eval preds.parquet --manifest shards/manifest.parquet --split val --synsets synsets/
      imgnet eval submission.txt --truth ILSVRC2012_validation_ground_truth.txt --real real.json
    Keys the manifest lacks are an error (--skip-unknown counts them); every other mismatch is counted.
    """
    from imgnet_tools.evaluate.run import EvalParams, evaluate, format_table

    try:
        params = EvalParams(predictions=predictions, format=format_, **options)  # type: ignore[arg-type]
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    result = evaluate(params)
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(format_table(result.report))
    if result.out:
        note(f"report written to {result.out}")
