"""``imgnet demo-data OUT``: generate the deterministic mini-ImageNet with planted faults."""

from __future__ import annotations

from pathlib import Path

import click

from imgnet_tools.cli.options import emit_json, json_option, note, overwrite_option, progress_bar, quiet_option


@click.command("demo-data")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--classes", type=click.IntRange(5, 10), default=5, show_default=True,
              help="How many real ILSVRC classes (wnids) to use.")
@click.option("--train-per-class", type=click.IntRange(min=3), default=8, show_default=True,
              help="Clean train images per class.")
@click.option("--val-per-class", type=click.IntRange(min=1), default=3, show_default=True,
              help="Clean val images per class.")
@click.option("--size", type=click.IntRange(48, 1024), default=96, show_default=True,
              help="Short side of the generated images, in pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@overwrite_option
@json_option
@quiet_option
def demo_data(out: Path, classes: int, train_per_class: int, val_per_class: int, size: int, seed: int,
              overwrite: bool, as_json: bool, quiet: bool) -> None:
    """Write a small ImageFolder dataset (OUT/train, OUT/val) of real ILSVRC wnids with generated
    images, plus faults for the pipeline to find (truncated, CMYK, PNG named .JPEG, grayscale,
    zero-byte, tiny, exact and near duplicates, a train/val leak), listed in OUT/faults.json.

    A complete OUT made with the same options is kept as is (re-runs are no-ops).

    \b
    Example:
      imgnet demo-data demo-out/data
      imgnet run pipelines/demo.yaml --workdir demo-out
    """
    from imgnet_tools.demo.data import DemoParams, image_count, make_demo

    params = DemoParams(str(out), classes, train_per_class, val_per_class, size, seed, overwrite)
    with progress_bar("demo-data", image_count(params), quiet) as bar:
        result = make_demo(params, progress=bar)
    if as_json:
        emit_json(result.to_dict())
        return
    verb = "wrote" if result.created else "kept existing"
    note(f"{verb} {sum(result.images.values())} files in {len(result.classes)} classes, "
         f"{len(result.faults)} planted faults listed in faults.json")
    click.echo(str(result.out))
