"""Installation facts: pillow-simd is the only PIL; a non-editable install ships schemas and presets."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


def test_pillow_simd_is_the_only_pil() -> None:
    assert md.version("pillow-simd")
    with pytest.raises(md.PackageNotFoundError):
        md.version("pillow")
    from PIL import features

    assert features.check_feature("libjpeg_turbo"), "pillow-simd should be built against libjpeg-turbo"


@pytest.mark.slow
def test_wheel_ships_schemas_pipelines_and_presets(tmp_path: Path) -> None:
    """Build a wheel, install it elsewhere, and read a schema from the installed copy."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "w"), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "w").glob("imgnet_tools-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "imgnet_tools/_schemas/manifest.schema.json" in names
    assert any(n.startswith("imgnet_tools/_pipelines/") and n.endswith(".yaml") for n in names)
    assert "imgnet_tools/py.typed" in names
    assert {f"imgnet_tools/votes/static/page.{ext}" for ext in ("html", "js", "css")} <= set(names)  # the labeling page
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path / "site")
    probe = "from imgnet_tools.manifest.schemas import schemas_dir, load_schema; print(schemas_dir()); load_schema('manifest')"
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == tmp_path / "site" / "imgnet_tools" / "_schemas"
