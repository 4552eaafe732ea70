"""``imgnet report DIR``: write report.html (self-contained) and PNG figures for a run directory."""

from __future__ import annotations

from pathlib import Path

import click

from imgnet_tools.cli.options import emit_json, json_option, note, overwrite_option


@click.command("report")
@click.argument("dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the report (default: DIR/report).")
@click.option("--max-clusters", type=click.IntRange(min=0), default=8, show_default=True,
              help="Duplicate clusters drawn with thumbnails.")
@overwrite_option
@json_option
def report(dir: Path, out: Path | None, max_clusters: int, overwrite: bool, as_json: bool) -> None:
    """Describe a run directory: images per class, verify reasons, duplicate clusters with
    thumbnails, shard sizes and bench throughput by mode, as PNG figures and one report.html
    that embeds them (opens offline). Prints the path of report.html.

    \b
    Example:
      imgnet report demo-out
    """
    from imgnet_tools.report.build import ReportParams
    from imgnet_tools.report.build import report as build_report

    result = build_report(ReportParams(dir, out, max_clusters, overwrite))
    if as_json:
        emit_json(result.to_dict())
        return
    missing = [s["title"] for s in result.sections if not s["available"]]
    if missing:
        note(f"no data for: {', '.join(missing)} (the page says why)")
    note(f"{len(result.figures)} figures in {result.html.parent}")
    click.echo(str(result.html))
