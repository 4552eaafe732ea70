"""``imgnet loader``: the DALI and baseline loaders over a shard directory."""

from __future__ import annotations

import click

from imgnet_tools.cli.options import emit_json, json_option, note, progress_bar, quiet_option


@click.group()
def loader() -> None:
    """DALI and baseline (webdataset + PIL) loaders over shards written by `imgnet shard`."""


@loader.command()
@click.argument("shards", type=click.Path(file_okay=False, path_type=str))
@click.option("--split", default="train", show_default=True, help="Which split's shards to read.")
@click.option("--size", type=click.IntRange(min=8), default=64, show_default=True,
              help="Both readers resize every image to this square before comparing pixels.")
@click.option("--samples", type=click.IntRange(min=1), default=None, help="Compare at most this many samples.")
@click.option("--tolerance", type=click.FloatRange(min=0.0), default=4.0, show_default=True,
              help="Largest mean absolute pixel difference (0-255) allowed per image.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="DALI CPU threads.")
@click.option("--batch-size", type=click.IntRange(min=1, max=31), default=16, show_default=True,
              help="DALI batch size (below 32: DALI 2.4 crashes on an undecodable JPEG in larger CPU batches).")
@json_option
@quiet_option
def check(shards: str, as_json: bool, quiet: bool, **options: object) -> None:
    """Check that DALI reads SHARDS like the baseline reader; report the epoch length.

    \b
    Labels and samples must match one for one, pixels within --tolerance after the same resize.
      imgnet loader check shards/ --samples 200
    Exit code 1 when they disagree.
    """
    from imgnet_tools.loader.check import CheckParams, check as run_check

    params = CheckParams(shards=shards, **options)  # type: ignore[arg-type]
    with progress_bar("comparing", params.samples, quiet) as progress:
        result = run_check(params, progress)
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(f"{'ok' if result.ok else 'MISMATCH'}: {result.compared} samples compared in "
                   f"{result.shard_files} shards; epoch {result.epoch_samples} samples (DALI: {result.dali_epoch_size}); "
                   f"labels differ {result.label_mismatches}, samples differ {result.sample_mismatches}; "
                   f"pixel mean abs diff {result.mean_abs_diff:.3f} (worst {result.worst_abs_diff:.3f}, "
                   f"tolerance {result.tolerance})")
    for problem in result.first_problems:
        note(problem)
    if not result.ok:
        raise click.exceptions.Exit(1)
