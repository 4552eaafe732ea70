#!/usr/bin/env bash
# Build the imagededup peer venv used by benchmarks/bench_dedup.py (never the project's .venv:
# imagededup pulls the stock `pillow`, which must not replace pillow-simd there).
#   bash benchmarks/peers/setup_imagededup.sh [VENV]   (default: .bench-venvs/imagededup)
# torch==2.13.0 is pinned in the same command, else pip resolves a CUDA torch (GBs).
# imagededup imports torchvision at import time; the installed torchvision is a CUDA build that
# fails to load against the CPU torch, so a tiny stand-in `torchvision` package (only what
# imagededup's import needs; its CNN models are not used by the benchmark) is put first on the
# venv's path through a .pth file. PHash.encode_image and the BKTree search never touch it.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${1:-.bench-venvs/imagededup}
PYTHON=${PYTHON:-python3}
say() { printf '[setup_imagededup] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m; m.version('imagededup')" 2>/dev/null; then
  say "installing imagededup and torch==2.13.0 (a few minutes)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check imagededup "torch==2.13.0"
fi

SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
STANDIN="$VENV/standin"
rm -rf "$STANDIN"; mkdir -p "$STANDIN/torchvision/models"
cat > "$STANDIN/torchvision/_standin.py" <<'PY'
"""Placeholders that let imagededup's module bodies evaluate without a working torchvision.

imagededup builds CNN transforms in class bodies at import time (transforms.Compose(...),
ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1.transforms()). Those need to evaluate; the CNN
methods themselves are unusable here (the benchmark uses only PHash and the BKTree search).
"""


class Placeholder:
    def __init__(self, name="torchvision"):
        self._name = name

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Placeholder(f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        return Placeholder(f"{self._name}()")

    def __repr__(self):
        return f"<stand-in {self._name}: torchvision is not available in this benchmark venv>"
PY
cat > "$STANDIN/torchvision/__init__.py" <<'PY'
"""Stand-in torchvision for the imagededup benchmark venv: enough for `import imagededup`."""
from . import models, transforms  # noqa: F401

__version__ = "0.0-standin"
PY
cat > "$STANDIN/torchvision/transforms.py" <<'PY'
"""Stand-in torchvision.transforms (also importable as torchvision.transforms.transforms)."""
import sys

from ._standin import Placeholder

transforms = sys.modules[__name__]


def __getattr__(name):
    return Placeholder(f"torchvision.transforms.{name}")
PY
cat > "$STANDIN/torchvision/models/__init__.py" <<'PY'
"""Stand-in torchvision.models."""
from torchvision._standin import Placeholder


def __getattr__(name):
    return Placeholder(f"torchvision.models.{name}")
PY
cat > "$STANDIN/torchvision/models/vision_transformer.py" <<'PY'
"""Stand-in torchvision.models.vision_transformer."""
from torchvision._standin import Placeholder


def __getattr__(name):
    return Placeholder(f"torchvision.models.vision_transformer.{name}")
PY
# A .pth whose name sorts first puts the stand-in ahead of site-packages' torchvision.
echo "import sys; sys.path.insert(0, '$(cd "$STANDIN" && pwd)')" > "$SITE/00-torchvision-standin.pth"

"$VENV/bin/python" -c "from imagededup.methods import PHash; import imagededup; print('imagededup', imagededup.__version__ if hasattr(imagededup,'__version__') else '?')" >&2
say "ready: $VENV"
