"""The import rule and the package map (ARCHITECTURE.md), held by walking the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import imgnet_tools

PKG = Path(imgnet_tools.__file__).parent
HEAVY = ("nltk", "torch", "nvidia.dali", "ray", "pyarrow", "torchvision", "webdataset")
# Where each heavy dependency may be imported (module paths relative to imgnet_tools, as prefixes).
OWNERS = {
    "nltk": ("synsets/wordnet.py",),
    "nvidia.dali": ("loader/",),
    "ray": ("execute/ray_executor.py",),
}


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "_schemas" not in p.parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module top level?) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level_nodes = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else []:
            top_level_nodes.add(id(sub))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found.extend((n, id(node) in top_level_nodes) for n in names)
    return found


def _matches(name: str, root: str) -> bool:
    return name == root or name.startswith(root + ".")


def test_library_packages_never_import_cli_or_click() -> None:
    offenders = []
    for path in _modules():
        rel = path.relative_to(PKG).as_posix()
        if rel.startswith("cli/") or rel == "__main__.py":
            continue
        for name, _ in _imports(path):
            if _matches(name, "click") or _matches(name, "imgnet_tools.cli"):
                offenders.append(f"{rel} imports {name}")
    assert offenders == []


def test_heavy_dependencies_live_behind_their_owner_module() -> None:
    offenders = []
    for path in _modules():
        rel = path.relative_to(PKG).as_posix()
        for name, _ in _imports(path):
            for dep, owners in OWNERS.items():
                if _matches(name, dep) and not any(rel.startswith(o) for o in owners):
                    offenders.append(f"{rel} imports {name} (only {owners} may)")
    assert offenders == []


def test_cli_modules_import_no_heavy_dependency_at_top_level() -> None:
    offenders = []
    for path in sorted((PKG / "cli").glob("*.py")):
        for name, top in _imports(path):
            if top and any(_matches(name, h) for h in HEAVY):
                offenders.append(f"cli/{path.name} imports {name} at top level")
    assert offenders == []


def test_help_of_every_command_loads_no_heavy_dependency() -> None:
    """`imgnet --help` and every subcommand's help, in one fresh interpreter."""
    script = r"""
import sys, click
from click.testing import CliRunner
from imgnet_tools.cli.main import cli
runner = CliRunner()
def walk(cmd, path):
    r = runner.invoke(cli, path + ["--help"])
    assert r.exit_code == 0, (path, r.output)
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            walk(cmd.get_command(ctx, name), path + [name])
walk(cli, [])
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "nltk", "pyarrow", "ray", "webdataset", "torchvision"} or m.startswith("nvidia.dali"))))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"--help imported heavy modules: {out.stdout.strip()}"


def test_package_docstring_maps_every_package() -> None:
    doc = imgnet_tools.__doc__ or ""
    packages = sorted(p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    missing = [name for name in packages if f"``{name}``" not in doc]
    assert missing == [], f"add these packages to the map in imgnet_tools/__init__.py: {missing}"


def test_every_package_has_a_docstring() -> None:
    missing = [p.parent.name for p in PKG.rglob("__init__.py") if not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []


# Test folders that are not a package of their own: cross-cutting tests of every stage.
CROSS_CUTTING = {"hostile"}
TOP_LEVEL_TESTS = {"test_architecture.py", "test_packaging.py"}  # the whole package


def test_tests_are_grouped_in_folders_that_mirror_the_package() -> None:
    tests = Path(__file__).resolve().parent
    packages = {p.parent.name for p in PKG.glob("*/__init__.py")} | {p.stem for p in PKG.glob("*.py")}
    misplaced = []
    for path in sorted(tests.rglob("test_*.py")):
        rel = path.relative_to(tests)
        if len(rel.parts) == 1:
            ok = rel.name in TOP_LEVEL_TESTS
        else:
            ok = len(rel.parts) == 2 and (rel.parts[0] in packages or rel.parts[0] in CROSS_CUTTING) \
                and (path.parent / "__init__.py").is_file()
        if not ok:
            misplaced.append(str(rel))
    assert not misplaced, f"put these under tests/<package>/ (with an __init__.py): {misplaced}"
