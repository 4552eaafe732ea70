"""Shared test helpers. Tests make their own seeded data in tmp_path; no network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped with its reason otherwise)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.fixture(autouse=True)
def _default_places():
    """Every test starts and ends with the default places (a CLI run in-process sets them)."""
    from imgnet_tools import places

    places.use(None)
    yield
    places.use(None)


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any("gpu" in item.keywords for item in items) and not _has_cuda():
        skip = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is False on this machine")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def cli_runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(cli_runner: CliRunner):
    """Run ``imgnet ARGS`` through click's runner; returns the click Result."""
    from imgnet_tools.cli.main import cli

    def _invoke(*args: str, **kwargs):
        return cli_runner.invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)

    return _invoke


def run_installed(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``imgnet`` console script in a subprocess."""
    exe = Path(sys.executable).with_name("imgnet")
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=600)


def require(module: str) -> Any:
    """Import a test dependency, failing (never skipping) when it is missing.

    DALI, Ray and scipy are installed by ``make test`` (DALI is a core dependency, the others the
    ``[ray]`` and ``[dev]`` extras): a run without them would pass while testing less, so it fails.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{module} is needed by the tests and is not importable ({exc}); set up with `make test`.",
                    pytrace=False)


@pytest.fixture(scope="module")
def ray_session() -> Any:
    """One real local Ray per test module that asks for it (starting one takes seconds). Always a
    new one (``address="local"``), never a cluster someone else left running on the machine; its
    workers import this checkout's imgnet_tools."""
    ray = require("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}})
    yield ray
    ray.shutdown()
