#!/usr/bin/env bash
# Build the img2dataset peer venv used by benchmarks/bench_collect.py (never the project's .venv:
# img2dataset pulls the stock `pillow`, opencv and pyarrow pins that must not reach it).
#   bash benchmarks/peers/setup_img2dataset.sh [VENV]   (default: .bench-venvs/img2dataset)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${1:-.bench-venvs/img2dataset}
PYTHON=${PYTHON:-python3}
say() { printf '[setup_img2dataset] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('img2dataset') == '1.47.0'" 2>/dev/null; then
  say "installing img2dataset==1.47.0 (a few minutes)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "img2dataset==1.47.0"
fi
"$VENV/bin/python" -c "import importlib.metadata as m; print('img2dataset', m.version('img2dataset'))" >&2
say "ready: $VENV"
