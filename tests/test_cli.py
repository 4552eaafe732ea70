"""The command line as a whole: help everywhere, exit codes, entry points."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from imgnet_tools import __version__
from imgnet_tools.cli.main import LAZY_COMMANDS, available_commands, cli
from tests.conftest import run_installed


def _all_command_paths() -> list[list[str]]:
    paths: list[list[str]] = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        paths.append(path)
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None, f"{' '.join(path + [name])} is listed but cannot be loaded"
                walk(sub, path + [name])

    walk(cli, [])
    return paths


def test_every_planned_command_is_present() -> None:
    assert set(available_commands()) == set(LAZY_COMMANDS)


@pytest.mark.parametrize("path", _all_command_paths(), ids=lambda p: " ".join(p) or "imgnet")
def test_every_command_has_help(invoke, path: list[str]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output
    cmd: click.Command = cli
    for name in path:
        assert isinstance(cmd, click.Group)
        cmd = cmd.get_command(click.Context(cmd), name)  # type: ignore[assignment]
    assert (cmd.help or cmd.short_help or "").strip(), f"imgnet {' '.join(path)} has no help text"


def test_unknown_command_is_a_usage_error(invoke) -> None:
    result = invoke("no-such-command")
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_version(invoke) -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_python_dash_m_runs_the_cli() -> None:
    out = subprocess.run([sys.executable, "-m", "imgnet_tools", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "synsets" in out.stdout


def test_installed_console_script() -> None:
    out = run_installed("--version")
    assert out.returncode == 0 and __version__ in out.stdout
