"""Entry point: a click group whose subcommands are imported lazily from their own modules."""

from __future__ import annotations

import datetime
import importlib
import os
import sys
import tempfile
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from imgnet_tools import __version__
from imgnet_tools.errors import DISK_ERRNOS, ImgnetError, write_failed

if TYPE_CHECKING:  # pragma: no cover
    from imgnet_tools.places import Places

# command name -> "module:attribute" (module relative to imgnet_tools.cli), with a one-line help
# that `imgnet --help` shows without importing the module.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "synsets": ("synsets:synsets", "WordNet 3.0 synset trees: build, show, stats."),
    "scan": ("scan:scan", "Index image folders or lists into manifest.parquet."),
    "collect": ("collect:collect", "Download URL lists (fall11_urls.txt, CSV/Parquet) into a manifest."),
    "verify": ("verify:verify", "Check every image by its content; optionally write fixed copies."),
    "dedup": ("dedup:dedup", "Find exact and near-duplicate images, within and across splits."),
    "shard": ("shard:shard", "Write webdataset tar shards, DALI indexes and Parquet manifests."),
    "shards": ("shard:shards", "Check or summarize a shard directory."),
    "loader": ("loader:loader", "DALI and baseline loaders over shards: check."),
    "bench": ("bench:bench", "AlexNet throughput benchmark: loader, model and end to end."),
    "gpu-check": ("gpucheck:gpu_check", "Every GPU figure in one short run (--dry-run: the same on the CPU)."),
    "train": ("train:train", "Train LeNet-5 or AlexNet on shards, with resumable checkpoints."),
    "predict": ("train:predict", "Ranked top-5 predictions of a checkpoint over shards."),
    "eval": ("eval:eval_", "Score predictions: top-1/top-5, per class, confusions, hierarchical, ReaL."),
    "run": ("run:run", "Run a declarative pipeline recipe (pipelines/*.yaml)."),
    "demo-data": ("demo:demo_data", "Generate the deterministic mini-ImageNet demo dataset."),
    "report": ("report:report", "Write report.html and figures for a run directory."),
    "votes": ("votes:votes", "Human verification: export work, import crowd answers, consensus, apply, label page."),
}


def available_commands() -> dict[str, tuple[str, str]]:
    """Every registered command (a module that fails to import says so when used, never hides)."""
    return dict(LAZY_COMMANDS)


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is used, and turns every
    error into one line: an :class:`ImgnetError` with its exit code (2: fix the input; 1: the run
    failed), anything else (a bug) as an internal error whose traceback goes to a log file."""

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
        try:
            module = importlib.import_module(f"imgnet_tools.cli.{module_name}")
            command: click.Command = getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            raise click.ClickException(
                f"`imgnet {cmd_name}` cannot be loaded ({type(exc).__name__}: {exc}); the installation is broken: "
                "reinstall imgnet-tools with its dependencies (make setup)."
            ) from exc
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
            if _debug(ctx):
                raise
            click.echo(f"{exc.label}: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted. Finished work is kept: run the same command again to resume.", err=True)
            ctx.exit(130)
        except Exception as exc:  # a bug: one line for the user, the traceback in a log
            if _debug(ctx):
                raise
            if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:  # a full disk met where no stage expected it
                click.echo(f"Error: {write_failed(exc, 'writing ' + str(exc.filename or 'an output'))}", err=True)
                ctx.exit(1)
            log = write_crash_log(exc)
            where = f"the traceback is in {log}" if log else "run it again with --debug for the traceback"
            click.echo(f"Error: internal error ({type(exc).__name__}: {str(exc)[:300]}); {where}. "
                       "Please report it.", err=True)
            ctx.exit(1)


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool((root.params or {}).get("debug")) or os.environ.get("IMGNET_DEBUG") == "1"


def log_dir() -> Path:
    """Where crash logs go: ``IMGNET_LOG_DIR``, else ``$XDG_CACHE_HOME/imgnet/logs`` (``~/.cache``)."""
    if os.environ.get("IMGNET_LOG_DIR"):
        return Path(os.environ["IMGNET_LOG_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imgnet" / "logs"


def write_crash_log(exc: BaseException) -> Path | None:
    """Write the command line and the traceback of ``exc`` to a new log file; its path (None if
    no folder for logs can be written: the temporary folder is tried last)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = (f"imgnet {__version__} crash log, {datetime.datetime.now().isoformat(timespec='seconds')}\n"
            f"command: {' '.join(sys.argv)}\ncwd: {os.getcwd()}\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    for folder in (log_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"imgnet-crash-{stamp}-{os.getpid()}.log"
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="imgnet")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error (also: IMGNET_DEBUG=1).")
def cli(debug: bool) -> None:
    """imgnet: build ImageNet-style datasets, from WordNet synsets to GPU-ready shards.

    \b
    Typical flow:
      imgnet synsets build --preset ilsvrc2012 --out synsets/
      imgnet scan train/ val/ --classes synsets/classes.tsv --out work/
        (or: imgnet collect urls.csv --classes synsets/classes.tsv --out work/)
      imgnet verify work/manifest.parquet
      imgnet dedup work/manifest.parquet
      imgnet shard work/manifest.parquet --size 1000 --out shards/
      imgnet bench shards/ --gpus 2
    """
    from imgnet_tools import places

    places.use(places_from_environment(os.environ))


def places_from_environment(env: Mapping[str, str]) -> Places:
    """Where imgnet keeps things, from environment variables (the only place that reads them):
    ``IMGNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/imgnet``, else ``~/.cache/imgnet``; ``IMGNET_WORDNET_DIR``."""
    from imgnet_tools.places import CACHE_ENV, WORDNET_ENV, Places

    if env.get(CACHE_ENV):
        cache = Path(env[CACHE_ENV])
    elif env.get("XDG_CACHE_HOME"):
        cache = Path(env["XDG_CACHE_HOME"]) / "imgnet"
    else:
        cache = Path.home() / ".cache" / "imgnet"
    return Places(cache_dir=cache, wordnet_dir=env.get(WORDNET_ENV) or None)


def main() -> None:  # pragma: no cover - exercised through subprocess tests (python -m imgnet_tools)
    """The ``imgnet`` console script: run the command, then leave without tearing the interpreter
    down (:func:`leave`)."""
    from imgnet_tools.manifest.parquet import own_process

    own_process()
    try:
        cli(prog_name="imgnet")
    except SystemExit as exc:  # click's standalone mode always ends this way
        leave(exc.code)
    leave(0)


def leave(code: object) -> None:
    """Exit with ``code`` (an int, None for 0, or a message for stderr and 1) after running every
    ``atexit`` handler and flushing stdout and stderr, but without the interpreter's finalization:
    freeing every object of a run that loaded pyarrow, torch or aiohttp took about 0.25 s on the
    2-core VM, after the command's work and output were complete. Every output is written and
    closed (atomically) by the command itself, so nothing is left for finalization to do."""
    import atexit
    import threading

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    # What Py_FinalizeEx does first, in its order: wait for the non-daemon threads (and the
    # thread pools' own exit hooks), run the atexit handlers; then flush and go.
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): nothing more to say
            pass
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
