#!/usr/bin/env bash
# Idempotent set-up of a fresh machine for imgnet: system packages, a virtual environment with
# every Python dependency (pillow-simd as the only PIL, torch kept if present or the local CPU
# wheel), and WordNet 3.0 data that nltk accepts, offline if need be.
#   VENV=.venv PYTHON=python3 bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
say() { printf '[setup] %s\n' "$*" >&2; }

# 1. System packages: headers pillow-simd builds against, WordNet 3.0 (offline source), Chromium
#    for the report's rendering test.
sys_pkgs=(libjpeg-dev zlib1g-dev libpng-dev libtiff-dev libwebp-dev libfreetype-dev
          wordnet-base wordnet-sense-index chromium)
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${sys_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo -n"
  if command -v apt-get >/dev/null && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    say "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "WARNING: cannot install system packages (${missing[*]}); install them yourself if a step below fails."
  fi
fi

# 2. Virtual environment and Python dependencies.
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
"${PIP[@]}" install --upgrade pip setuptools wheel
# torch: keep whatever torch is installed (a CUDA build included); otherwise take torch==2.13.0,
# which on this kind of machine is a local CPU wheel (a bare `torch` would pull GBs of CUDA).
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  say "installing torch==2.13.0"
  "${PIP[@]}" install "torch==2.13.0" || "${PIP[@]}" install "torch>=2.1"
fi
# pillow-simd must be the only PIL: remove pillow first, build pillow-simd from source.
if [ "$("$VENV/bin/python" -c 'import importlib.metadata as m
try: m.version("pillow-simd"); print("simd")
except m.PackageNotFoundError: print("no")')" != simd ]; then
  "${PIP[@]}" uninstall -y pillow >/dev/null 2>&1 || true
  say "building pillow-simd (about a minute)"
  "${PIP[@]}" install --no-binary pillow-simd "pillow-simd>=9.0"
fi
"${PIP[@]}" install -e ".[ray,dev]"
# A dependency may have pulled pillow back in over pillow-simd: undo that.
if "$VENV/bin/python" -c 'import importlib.metadata as m; m.version("pillow")' 2>/dev/null; then
  say "removing pillow pulled in by a dependency; reinstalling pillow-simd"
  "${PIP[@]}" uninstall -y pillow
  "${PIP[@]}" install --force-reinstall --no-deps --no-binary pillow-simd "pillow-simd>=9.0"
fi

# 3. WordNet 3.0 where nltk finds it: nltk's own download when online, else the system copy
#    staged (with the lexnames file Debian lacks) into the venv's nltk_data.
"$VENV/bin/imgnet" synsets setup-wordnet

# 4. Pillow's own test images (~1,070 awkward real files; tests/hostile/test_hostile_corpus.py), fetched once
#    with pip into ~/.cache/imgnet/pillow-corpus (IMGNET_PILLOW_CORPUS overrides), sha256 checked.
"$VENV/bin/python" -m tests.pillow_corpus >/dev/null \
  || say "WARNING: the Pillow test-image corpus could not be fetched; its tests will skip (offline?)."
say "ready: $VENV"
