"""``imgnet verify MANIFEST``: check every image by its content; optionally write fixed copies."""

from __future__ import annotations

import click

from imgnet_tools.cli.options import (
    chunk_rows_option,
    default,
    echo_counts,
    emit_json,
    executor_options,
    json_option,
    progress_bar,
    quiet_option,
)
from imgnet_tools.images.check import FIXABLE_REASONS
from imgnet_tools.images.verify import VerifyParams


def _d(name: str) -> object:
    return default(VerifyParams, name)


@click.command("verify")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--fix", "fix", type=click.Path(file_okay=False),
              help="Write normalised RGB JPEG copies of fixable images here; rows point at them.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the manifest here instead of in place.")
@click.option("--min-size", type=click.IntRange(min=1), default=_d("min_size"), show_default=True,
              help="Reject images whose shorter side is smaller.")
@click.option("--max-size", type=click.IntRange(min=0), default=_d("max_size"), show_default=True,
              help="Reject images whose longer side is larger (0: no limit).")
@click.option("--max-aspect", type=click.FloatRange(min=1.0), default=_d("max_aspect"), show_default=True,
              help="Reject images whose long/short side ratio is larger.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=_d("max_pixels"), show_default=True,
              help="Decompression-bomb limit: reject (undecoded) images with more pixels.")
@click.option("--allow-grayscale", is_flag=True, help="Count 8-bit grayscale images as ok, not fixable.")
@click.option("--reject", multiple=True, type=click.Choice(FIXABLE_REASONS),
              help="Treat this fixable reason as a rejection (repeatable), e.g. --reject animated.")
@click.option("--fix-quality", type=click.IntRange(1, 100), default=_d("fix_quality"), show_default=True,
              help="JPEG quality of fixed copies.")
@click.option("--decode-timeout", type=click.FloatRange(min=0.001), default=_d("decode_timeout"), show_default=True,
              help="Seconds one image may take to decode; slower ones are rejected as timeout.")
@chunk_rows_option
@executor_options
@quiet_option
@json_option
def verify(manifest: str, reject: tuple[str, ...], quiet: bool, as_json: bool, **options: object) -> None:
    """Decode every image fully and judge it by content: format, mode, EXIF, frames, size, bombs.

    \b
    Examples:
      imgnet verify work/manifest.parquet
      imgnet verify work/manifest.parquet --fix work/fixed --min-size 64 --reject animated

    Adds format, mode, width, height, sha256, status (ok | fixable | fixed | rejected), reason and
    issues. Source files are only read. Results are committed chunk by chunk: a killed run
    resumes, and a re-run skips rows already verified under the same policy.
    """
    from imgnet_tools.images.verify import verify as run_verify

    params = VerifyParams(manifest=manifest, reject=reject, **options)  # type: ignore[arg-type]
    with progress_bar("verify", None, quiet) as tick:
        result = run_verify(params, progress=tick)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"{result.manifest}: {result.rows} rows, {result.checked} checked, {result.skipped} skipped, "
               f"{result.fixed} fixed")
    echo_counts("status", result.status)
    echo_counts("reasons", result.reasons)
