"""Options and helpers shared by several commands, defined once (sqlite-utils style)."""

from __future__ import annotations

import dataclasses
import json
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def default(cls: type, name: str) -> Any:
    """The default of field ``name`` of a params dataclass (so click shows the library's defaults)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(f"{cls.__name__} has no field {name!r} with a default")


def executor_options(fn: F) -> F:
    """``--executor``, ``--address``, ``--workers``: one meaning on every stage that runs tasks."""
    from imgnet_tools.execute.params import EXECUTORS

    fn = click.option("--workers", type=click.IntRange(min=1), default=None,
                      help="Worker processes (local), or CPUs of a new local Ray (default: every core).")(fn)
    fn = click.option("--address", default=None,
                      help="Ray cluster address (ray://head:10001; auto: a running local Ray, or a new one). "
                           "On a multi-node cluster the output folder must be on a shared file system.")(fn)
    fn = click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
                      help="local process pool, a Ray cluster, or inline (in this process, one task at a time: "
                           "for debugging; no crash isolation).")(fn)
    return fn


chunk_rows_option = click.option(
    "--chunk-rows", type=click.IntRange(min=1), default=None,
    help="Rows per chunk: the unit of work, of commits and of resume (default: sized to the input).")

overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace an existing output instead of refusing."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
workers_option = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: every core).",
)
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars on stderr.")


def emit_json(doc: Any) -> None:
    """Write a JSON document to stdout (results go to stdout, people-facing text to stderr)."""
    click.echo(json.dumps(doc, indent=2, sort_keys=False, default=str))


def echo_counts(label: str, counts: Mapping[str, int]) -> None:
    """One summary line on stdout, e.g. ``status: ok 10, rejected 2``; nothing for no counts."""
    if counts:
        click.echo(f"{label}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def note(message: str) -> None:
    """People-facing text: stderr."""
    click.echo(message, err=True)


@contextmanager
def progress_bar(label: str, total: int | None, quiet: bool = False) -> Iterator[Callable[[int], None]]:
    """A progress callback for library functions: call it with the number of items just done.

    Draws a click progress bar on stderr when stderr is a terminal and not ``quiet``.
    """
    if quiet or not sys.stderr.isatty():
        yield lambda n: None
        return
    if total is None:  # unknown total: a running count instead of a bar
        yield from _counter(label)
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def _counter(label: str) -> Iterator[Callable[[int], None]]:
    """Progress without a known total: rewrite ``label: N`` on stderr every 100 items."""
    done = [0]

    def tick(n: int) -> None:
        before, done[0] = done[0], done[0] + n
        if before // 100 != done[0] // 100:
            click.echo(f"\r{label}: {done[0]}", err=True, nl=False)

    yield tick
    click.echo(f"\r{label}: {done[0]}", err=True)


@contextmanager
def counts_bar(label: str, quiet: bool = False) -> Iterator[Callable[[Mapping[str, Any]], None]]:
    """A display for stages that report snapshots ``{"rows", "done", "status", "reasons"}``:
    one line on stderr, rewritten at most ten times a second, with the share done, the rate,
    successes and failures by reason. Nothing when stderr is not a terminal or ``quiet``."""
    import time

    if quiet or not sys.stderr.isatty():
        yield lambda snapshot: None
        return
    start = time.monotonic()
    state: dict[str, Any] = {"last": 0.0, "line": "", "base": None}

    def show(snapshot: Mapping[str, Any]) -> None:
        now = time.monotonic()
        if state["base"] is None:
            state["base"] = snapshot.get("done", 0)
        rows, done = snapshot.get("rows", 0), snapshot.get("done", 0)
        if now - state["last"] < 0.1 and done < rows:
            return
        state["last"] = now
        rate = (done - state["base"]) / max(now - start, 1e-9)
        status = snapshot.get("status", {})
        failed = status.get("rejected", 0)
        worst = sorted(snapshot.get("reasons", {}).items(), key=lambda kv: -kv[1])[:3]
        why = f" ({', '.join(f'{k} {v}' for k, v in worst)})" if worst else ""
        share = f"{100 * done / rows:3.0f}%" if rows else "  -"
        line = (f"{label}: {share} {done}/{rows} | ok {sum(status.values()) - failed} | "
                f"failed {failed}{why} | {rate:.0f}/s")
        click.echo("\r" + line.ljust(len(state["line"])), err=True, nl=False)
        state["line"] = line

    yield show
    if state["line"]:
        click.echo("", err=True)
