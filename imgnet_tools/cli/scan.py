"""``imgnet scan SRC... --out DIR``: index image folders or lists into ``DIR/manifest.parquet``."""

from __future__ import annotations

import click

from imgnet_tools.cli.options import (
    chunk_rows_option,
    echo_counts,
    emit_json,
    executor_options,
    json_option,
    note,
    progress_bar,
    quiet_option,
)
from imgnet_tools.synsets.classlists import PRESET_NAMES


@click.command("scan")
@click.argument("src", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(),
              help="Folder that will hold manifest.parquet (a folder, not a .parquet file name).")
@click.option("--classes", type=click.Path(exists=True, dir_okay=False),
              help="Class list: classes.tsv from `imgnet synsets build`, or one wnid per line.")
@click.option("--preset", type=click.Choice(PRESET_NAMES), help="Use a preset class list.")
@click.option("--split", help="Split of every input (default: the folder name train/val/test; otherwise train).")
@click.option("--val-labels", type=click.Path(exists=True, dir_okay=False),
              help="Labels for flat folders (ILSVRC val): 'file,wnid' CSV/TSV, or one wnid or ILSVRC2012_ID per line.")
@click.option("--val-id-map", type=click.Path(exists=True, dir_okay=False),
              help="ILSVRC2012_ID -> wnid for a devkit ground-truth file: the devkit's meta.mat (needs scipy), "
                   "or one wnid per line in ID order.")
@click.option("--include-background", is_flag=True,
              help="Caltech-101: keep the BACKGROUND_Google clutter class (left out by default).")
@click.option("--follow-symlinks", is_flag=True,
              help="Follow symlinks that lead outside the scanned folder (default: a rejected row, symlink_outside).")
@chunk_rows_option
@executor_options
@quiet_option
@json_option
def scan(src: tuple[str, ...], quiet: bool, as_json: bool, **options: object) -> None:
    """Index image folders (ImageFolder, ILSVRC val, Caltech-101) or CSV/Parquet lists into DIR/manifest.parquet.

    \b
    Examples:
      imgnet scan data/train data/val --val-labels LOC_val_solution.csv --preset ilsvrc2012 --out work/
      imgnet scan list.csv --classes synsets/classes.tsv --out work/
      imgnet scan caltech-101/101_ObjectCategories --out work/    # names -> wnids: work/caltech_classes.json

    Every file gets a row; files that are empty, not images, unreadable, symlink loops or have
    non-UTF-8 names are rejected rows with a reason. A folder or list that does not name its
    split is train. Re-runs keep keys and earlier verify results; a killed scan resumes.
    """
    from imgnet_tools.images.scan import ScanParams
    from imgnet_tools.images.scan import scan as run_scan

    params = ScanParams(src=src, **options)  # type: ignore[arg-type]
    with progress_bar("scan", None, quiet) as tick:
        result = run_scan(params, progress=tick)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"{result.manifest}: {result.rows} rows ({result.new} new, {result.kept} kept, "
               f"{result.removed} removed), {result.classes} classes")
    echo_counts("splits", result.splits)
    echo_counts("status", result.status)
    echo_counts("reasons", result.reasons)
    _caltech_line(src, result.manifest)
    if result.split_defaulted:
        note(f"{result.split_defaulted} files had no split (no train/val/test folder or split column): "
             "they are train; pass --split to choose another.")


def _caltech_line(src: tuple[str, ...], manifest: str) -> None:
    """For a Caltech-101 scan: how many category names matched a WordNet lemma, and where the table is."""
    import json
    from pathlib import Path

    from imgnet_tools.images import caltech

    table = Path(manifest).parent / caltech.TABLE
    if not caltech.roots(src) or not table.is_file():
        return
    doc = json.loads(table.read_text(encoding="utf-8"))
    click.echo(f"Caltech-101 categories matched to WordNet: {doc['counts'].get('matched', 0)} of "
               f"{len(doc['classes'])} (table: {table})" + (f"; {doc['note']}" if doc["note"] else ""))
