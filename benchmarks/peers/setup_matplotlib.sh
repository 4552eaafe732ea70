#!/usr/bin/env bash
# Build the matplotlib peer venv used by benchmarks/bench_report.py (never the project's .venv:
# matplotlib pulls the stock `pillow`, which must not replace pillow-simd there).
#   bash benchmarks/peers/setup_matplotlib.sh [VENV]   (default: .bench-venvs/matplotlib)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${1:-.bench-venvs/matplotlib}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import matplotlib" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check matplotlib
fi
"$VENV/bin/python" -c "import matplotlib; print('[setup_matplotlib] matplotlib', matplotlib.__version__)" >&2
