"""``imgnet shard`` and ``imgnet shards check|info``: parse, call one library function, print."""

from __future__ import annotations

import click

from typing import Any

from imgnet_tools.cli.options import (
    default,
    emit_json,
    executor_options,
    json_option,
    note,
    overwrite_option,
    progress_bar,
    quiet_option,
    workers_option,
)


def _d(name: str) -> object:
    from imgnet_tools.shards.write import ShardParams

    return default(ShardParams, name)


@click.command("shard")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output shard directory.")
@click.option("--size", default=_d("size"), show_default=True, type=click.IntRange(min=1),
              help="Most samples per shard (shards differ by at most one).")
@click.option("--max-bytes", type=click.IntRange(min=1), default=None, help="Also cap each shard's size in bytes.")
@click.option("--seed", default=_d("seed"), show_default=True, type=int, help="Seed of the shuffle.")
@click.option("--shuffle/--no-shuffle", default=_d("shuffle"), show_default=True, help="Seeded shuffle, or keep manifest order.")
@click.option("--resize-short", type=click.IntRange(min=1), default=None, help="Shrink so the short side is at most N pixels.")
@click.option("--max-side", type=click.IntRange(min=1), default=None, help="Shrink so the long side is at most N pixels.")
@click.option("--quality", default=_d("quality"), show_default=True, type=click.IntRange(1, 100), help="JPEG quality when re-encoding.")
@click.option("--prefix", default=_d("prefix"), show_default=True, help="Shard name prefix; {split} is the split name.")
@click.option("--words", type=click.Path(exists=True, dir_okay=False), default=None, help="ImageNet words.txt for class names in dataset.json.")
@click.option("--keep-source-paths", is_flag=True,
              help="Record each sample's absolute source path in KEY.json and the shard manifest (default: the path "
                   "relative to where it was scanned, so published shards do not reveal this machine's folders).")
@click.option("--decode-timeout", type=click.FloatRange(min=0.001), default=_d("decode_timeout"), show_default=True,
              help="Seconds one image may take to decode when resizing; slower ones are left out (reason timeout).")
@executor_options
@overwrite_option
@json_option
@quiet_option
def shard(manifest: str, as_json: bool, quiet: bool, **options: Any) -> None:
    """Write webdataset tar shards, DALI indexes and Parquet manifests from MANIFEST.

    Takes rows with status ok or fixed; the same manifest and options give byte-identical shards
    on either executor. A re-run resumes; different options on an existing --out need --overwrite.
    Copy mode (no --resize-short/--max-side) runs twice as many workers as cores by default.

    \b
    Example:
      imgnet shard work/manifest.parquet --size 1000 --out shards/
    """
    from imgnet_tools.shards.write import ShardParams, count_selected
    from imgnet_tools.shards.write import shard as run_shard

    params = ShardParams(manifest=manifest, **options)
    with progress_bar("Sharding", count_selected(manifest), quiet) as update:
        result = run_shard(params, progress=update)
    if as_json:
        emit_json(result.to_dict())
        return
    skipped = ", ".join(f"{n} {status}" for status, n in result.skipped.items()) or "none"
    click.echo(f"{result.samples} samples in {result.shards} shards ({result.bytes} bytes) -> {result.out}")
    note(f"written {result.written} shards, kept {result.resumed} done; skipped rows: {skipped}; "
         f"failed at shard time: {len(result.failed)}")


@click.group("shards")
def shards() -> None:
    """Check or summarize a shard directory written by `imgnet shard`."""


@shards.command("check")
@click.argument("dir", type=click.Path(exists=True, file_okay=False))
@workers_option
@json_option
@quiet_option
def check(dir: str, workers: int | None, as_json: bool, quiet: bool) -> None:
    """Re-read every shard in DIR against dataset.json and the manifests; exit 1 on any problem.

    Checks counts, sizes, sha256, member order and offsets, the DALI indexes, and that every
    image decodes.

    \b
    Example:
      imgnet shards check shards/
    """
    from imgnet_tools.shards.check import CheckParams, check_shards, load_dataset

    total = load_dataset(dir)["samples"]
    with progress_bar("Checking", total, quiet) as update:
        result = check_shards(CheckParams(dir=dir, workers=workers), progress=update)
    if as_json:
        from imgnet_tools.cli.options import emit_json

        emit_json(result.to_dict())
    else:
        for problem in result.problems:
            click.echo(problem)
        note(f"{result.shards} shards, {result.samples} samples: "
             f"{'ok' if result.ok else f'{len(result.problems)} problems'}")
    if not result.ok:
        raise click.exceptions.Exit(1)


@shards.command("info")
@click.argument("dir", type=click.Path(exists=True, file_okay=False))
@json_option
def info(dir: str, as_json: bool) -> None:
    """Print a summary of the shard directory DIR (from its dataset.json).

    \b
    Example:
      imgnet shards info shards/
    """
    from imgnet_tools.shards.check import shards_info

    doc = shards_info(dir)
    if as_json:
        from imgnet_tools.cli.options import emit_json

        emit_json(doc)
        return
    click.echo(f"{doc['dir']}: {doc['samples']} samples, {doc['shards']} shards, {doc['bytes']} bytes, "
               f"{doc['classes']} classes ({doc['created_by']}, format {doc['format_version']})")
    for name, split in doc["splits"].items():
        click.echo(f"  {name}: {split['samples']} samples in {split['shards']} shards, {split['bytes']} bytes")
    per = doc["samples_per_shard"]
    click.echo(f"  samples per shard: {per['min']}..{per['max']}; failed: {doc['failed']}; skipped rows: {doc['skipped']}")
    click.echo(f"  params: {doc['params']}")
