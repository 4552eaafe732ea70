"""The command line as a whole: help everywhere, exit codes, entry points."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

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


def _stage_commands() -> list[tuple[str, click.Command, type]]:
    from imgnet_tools.recipes.stages import STAGES

    found = []
    for name, stage in STAGES.items():
        cmd: click.Command = cli
        for part in stage.command.split()[1:]:
            assert isinstance(cmd, click.Group)
            sub = cmd.get_command(click.Context(cmd), part)
            assert sub is not None, stage.command
            cmd = sub
        found.append((name, cmd, stage.params_class()))
    return found


@pytest.mark.parametrize("name,command,params_cls", _stage_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_cli_defaults_equal_the_stage_params_defaults(name: str, command: click.Command, params_cls: type) -> None:
    """CLI, recipe and Python share parameter names; their defaults must agree too, or a recipe
    and the same command line would do different things."""
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    ctx = click.Context(command)
    compared = 0
    for option in command.params:
        field = fields.get(option.name or "")
        if field is None or not isinstance(option, click.Option) or option.required:
            continue
        if field.default is not dataclasses.MISSING:
            expected = field.default
        elif field.default_factory is not dataclasses.MISSING:
            expected = field.default_factory()
        else:
            continue
        got = option.get_default(ctx)
        if type(got).__name__ == "Sentinel":  # click >= 8.2 marks "no default" this way: None
            got = None
        if option.multiple:
            got = tuple(got or ())
        assert got == expected, f"imgnet {name}: --{option.name.replace('_', '-')} defaults to {got!r}, {params_cls.__name__} to {expected!r}"
        compared += 1
    assert compared, f"no option of imgnet {name} matched a field of {params_cls.__name__}"


def test_errors_are_one_line_input_errors_exit_2_and_bugs_name_a_log(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The error layer of every command: an ImgnetError is one line with its exit code; any other
    exception is one line naming a crash log that holds the traceback, exit 1; --debug re-raises."""
    import click

    from imgnet_tools.cli.main import LazyGroup
    from imgnet_tools.errors import InputError

    @click.group(cls=LazyGroup)
    @click.option("--debug", is_flag=True)
    def group(debug: bool) -> None:
        pass

    @group.command()
    def bad_input() -> None:
        raise InputError("list.csv: row 3 has no path")

    @group.command()
    def bug() -> None:
        {}["missing"]  # noqa: B018 - a real KeyError, as a bug would raise

    monkeypatch.setenv("IMGNET_LOG_DIR", str(tmp_path / "logs"))
    runner = CliRunner()
    res = runner.invoke(group, ["bad-input"])
    assert (res.exit_code, res.stderr) == (2, "Error: list.csv: row 3 has no path\n")
    res = runner.invoke(group, ["bug"])
    assert res.exit_code == 1 and len(res.stderr.strip().splitlines()) == 1
    assert "internal error (KeyError: 'missing')" in res.stderr and "Traceback" not in res.stderr
    logs = list((tmp_path / "logs").iterdir())
    assert len(logs) == 1 and str(logs[0]) in res.stderr
    assert "Traceback (most recent call last)" in logs[0].read_text() and "KeyError: 'missing'" in logs[0].read_text()
    res = runner.invoke(group, ["--debug", "bug"])
    assert isinstance(res.exception, KeyError)


def test_a_command_whose_module_cannot_load_says_so(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from imgnet_tools.cli import main

    monkeypatch.setitem(main.LAZY_COMMANDS, "ghost", ("no_such_module:ghost", "A command whose module is missing."))
    res = CliRunner().invoke(main.cli, ["ghost", "--help"])
    assert res.exit_code == 1 and "`imgnet ghost` cannot be loaded" in res.stderr and "reinstall" in res.stderr
    assert "ghost" in CliRunner().invoke(main.cli, ["--help"]).stdout  # listed, not hidden


def _python(code: str) -> subprocess.CompletedProcess[str]:
    from tests.conftest import REPO

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)


def test_the_console_script_leaves_after_exit_handlers_with_its_status() -> None:
    """``main`` ends with ``leave``: non-daemon threads joined, atexit handlers run, output
    flushed, the status kept; only the interpreter's teardown is skipped."""
    done = _python("import atexit, threading, time\n"
                   "from imgnet_tools.cli.main import leave\n"
                   "atexit.register(print, 'handler ran')\n"
                   "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
                   "print('output')\n"
                   "leave(3)\n")
    assert (done.returncode, done.stdout) == (3, "output\nthread done\nhandler ran\n")
    message = _python("from imgnet_tools.cli.main import leave\nleave('a message')\n")
    assert (message.returncode, message.stderr) == (1, "a message\n")
    usage = subprocess.run([sys.executable, "-m", "imgnet_tools", "no-such-command"], capture_output=True,
                           text=True, timeout=60)
    assert usage.returncode == 2 and "No such command" in usage.stderr


def test_pyarrow_is_spared_pandas_only_in_processes_imgnet_owns() -> None:
    """pyarrow imports pandas on its first conversion of Python objects (0.2 s); the console
    script and the local pool's workers stop that, a library caller's process is left alone."""
    done = _python("import sys\n"
                   "import pyarrow as pa\n"
                   "from imgnet_tools.manifest import parquet\n"
                   "from imgnet_tools.execute.pool import Pool\n"
                   "from tests.cli.test_cli import pandas_after_a_conversion\n"
                   "parquet.arrow_without_pandas()\n"
                   "assert not parquet._NoPandas.settled  # not ours: nothing done\n"
                   "parquet.own_process()\n"
                   "parquet.arrow_without_pandas()\n"
                   "assert pa.table({'a': [1, 2]}).to_pylist() == [{'a': 1}, {'a': 2}]\n"
                   "assert 'pandas' not in sys.modules\n"
                   "pool = Pool(1, preload='imgnet_tools.collect.worker')\n"
                   "tasks = iter([(0, None)])\n"
                   "[worker] = list(pool.run(pandas_after_a_conversion, lambda: next(tasks, None)))\n"
                   "pool.close(wait=True)\n"
                   "import pandas\n"
                   "print(worker.value, pandas.__name__)\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "False pandas\n"  # the worker built a table without pandas; pandas still imports


def pandas_after_a_conversion(_: object) -> bool:
    import pyarrow as pa

    pa.array(["x"])
    return "pandas" in sys.modules
