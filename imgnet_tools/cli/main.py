"""Entry point: a click group whose subcommands are imported lazily from their own modules."""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

from imgnet_tools import __version__
from imgnet_tools.errors import ImgnetError

# command name -> "module:attribute" (module relative to imgnet_tools.cli), with a one-line help
# that `imgnet --help` shows without importing the module.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "synsets": ("synsets:synsets", "WordNet 3.0 synset trees: build, show, stats."),
    "scan": ("scan:scan", "Index image folders or lists into manifest.parquet."),
    "verify": ("verify:verify", "Check every image by its content; optionally write fixed copies."),
    "dedup": ("dedup:dedup", "Find exact and near-duplicate images, within and across splits."),
    "shard": ("shard:shard", "Write webdataset tar shards, DALI indexes and Parquet manifests."),
    "shards": ("shard:shards", "Check or summarize a shard directory."),
    "loader": ("loader:loader", "DALI and baseline loaders over shards: check."),
    "bench": ("bench:bench", "AlexNet throughput benchmark: loader, model and end to end."),
    "run": ("run:run", "Run a declarative pipeline recipe (pipelines/*.yaml)."),
    "demo-data": ("demo:demo_data", "Generate the deterministic mini-ImageNet demo dataset."),
    "report": ("report:report", "Write report.html and figures for a run directory."),
    "votes": ("votes:votes", "Human verification: export work, import crowd answers, consensus, apply, label page."),
}


def available_commands() -> dict[str, tuple[str, str]]:
    """The lazily registered commands whose module exists in this installation."""
    folders = importlib.import_module("imgnet_tools.cli").__path__
    return {
        name: entry
        for name, entry in LAZY_COMMANDS.items()
        if any(os.path.exists(os.path.join(folder, entry[0].split(":")[0] + ".py")) for folder in folders)
    }


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(available_commands()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        entry = available_commands().get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":")
        module = importlib.import_module(f"imgnet_tools.cli.{module_name}")
        command: click.Command = getattr(module, attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, short) in sorted(available_commands().items())]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ImgnetError as exc:
            click.echo(f"{exc.label}: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="imgnet")
def cli() -> None:
    """imgnet: build ImageNet-style datasets, from WordNet synsets to GPU-ready shards.

    \b
    Typical flow:
      imgnet synsets build --preset ilsvrc2012 --out synsets/
      imgnet scan train/ val/ --classes synsets/classes.tsv --out work/
      imgnet verify work/manifest.parquet
      imgnet dedup work/manifest.parquet
      imgnet shard work/manifest.parquet --size 1000 --out shards/
      imgnet bench shards/ --gpus 2
    """


def main() -> None:  # pragma: no cover - thin wrapper for console scripts
    cli(prog_name="imgnet")


if __name__ == "__main__":  # pragma: no cover
    main()
