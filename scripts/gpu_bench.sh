#!/usr/bin/env bash
# The GPU figures in one call, on a GPU host that has only PyTorch + torchvision + pyarrow + Pillow
# + click (a cluster node, a machine without a package index). Runs `imgnet gpu-check`.
#
#   bash scripts/gpu_bench.sh [--dry-run] [OUT_DIR] [gpu-check options...]
#        (default OUT_DIR: bench-out/gpu-check-<hostname>; --dry-run: the same steps, tiny, on the CPU)
#
# Set-up, all without a package index, into a temporary folder removed at the end:
#  1. checks the host's own packages (torch, pyarrow, PIL, click, numpy required; torchvision
#     needed for the nvjpeg steps, which otherwise fail and say why);
#  2. installs what else is missing (webdataset, braceexpand, PyYAML, jsonschema and its deps) from
#     the wheel folder scripts/gpu_wheels.sh prepared on a networked machine ($GPU_WHEELS, default
#     .gpuwheels/), with pip --no-index --no-deps --target;
#  3. when DALI is not importable and the offline DALI bundle is there ($DALI_BUNDLE, default
#     .devwheels/, made by ../shared/tools/offline-dali-bundle.sh), unpacks and installs it as the
#     bundle's header says and appends it to the import path *after* the host's site-packages, so
#     torch keeps its own CUDA libraries (DALI=0 skips this);
#  4. installs this project with --no-deps into the temporary target (from the checkout; else the
#     wheel in the wheel folder; else it runs from the checkout itself), and runs it from outside
#     the checkout so that the installed copy is the one imported.
# Writes OUT_DIR/{gpu_check.json, summary.txt, gpu_check.log, setup.txt, nvidia-smi.txt}; the
# summary is printed at the end. The whole run is sized for about 8 minutes on one H100
# (gpu-check's --budget 420 s for the steps, plus set-up).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-python3}
WHEELS=${GPU_WHEELS:-$ROOT/.gpuwheels}
DALI_BUNDLE=${DALI_BUNDLE:-$ROOT/.devwheels}
DRY=()
if [ "${1:-}" = "--dry-run" ]; then DRY=(--dry-run); shift; fi
OUT=${1:-bench-out/gpu-check-$(hostname)}
shift || true
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SETUP="$OUT/setup.txt"
: > "$SETUP"
say() { printf '[gpu_bench] %s\n' "$*" | tee -a "$SETUP" >&2; }
TARGET=$(mktemp -d "${TMPDIR:-/tmp}/imgnet-gpu.XXXXXX")
trap 'rm -rf "$TARGET"' EXIT
SITE="$TARGET/site"
mkdir -p "$SITE"
START=$(date +%s)

has() { "$PY" -c "import $1" >/dev/null 2>&1; }

# 1. The host's own packages.
missing_required=()
for mod in torch pyarrow PIL click numpy; do has "$mod" || missing_required+=("$mod"); done
if [ ${#missing_required[@]} -gt 0 ]; then
  say "missing on this host and not bundled: ${missing_required[*]} (install PyTorch, pyarrow, Pillow, click, numpy first)"
  exit 1
fi
has torchvision || say "torchvision is not importable: the nvjpeg steps will fail (install the torchvision that matches torch)"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())' | tee -a "$SETUP" >&2
command -v nvidia-smi >/dev/null && nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true

# 2. Small missing packages from the wheel folder (module:distribution as wheels name it).
wanted=()
for pair in webdataset:webdataset braceexpand:braceexpand yaml:PyYAML jsonschema:jsonschema \
            jsonschema_specifications:jsonschema_specifications referencing:referencing rpds:rpds_py attrs:attrs \
            typing_extensions:typing_extensions; do
  mod=${pair%%:*}; dist=${pair#*:}
  has "$mod" && continue
  wheel=$(ls "$WHEELS"/"$dist"-*.whl "$WHEELS"/"$(echo "$dist" | tr '[:upper:]' '[:lower:]')"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$wheel" ]; then
    say "missing: $mod, and no $dist wheel in $WHEELS (run scripts/gpu_wheels.sh on a networked machine and copy $WHEELS here)"
    exit 1
  fi
  wanted+=("$wheel")
done
if [ ${#wanted[@]} -gt 0 ]; then
  say "installing from $WHEELS: ${wanted[*]##*/}"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "${wanted[@]}" >&2
fi

# 3. DALI from the offline bundle, when DALI is missing and the bundle is here.
APPEND=""
if [ "${DALI:-1}" != "0" ] && ! has nvidia.dali && ls "$DALI_BUNDLE"/part* >/dev/null 2>&1; then
  if [ ! -d "$DALI_BUNDLE/site/nvidia/dali" ]; then
    say "installing DALI from the offline bundle in $DALI_BUNDLE"
    cat "$DALI_BUNDLE"/part* | tar -x -C "$DALI_BUNDLE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$DALI_BUNDLE/site" "$DALI_BUNDLE"/wheels/*.whl >&2 \
      || say "the DALI bundle did not install; the DALI steps will be skipped"
  fi
  [ -d "$DALI_BUNDLE/site/nvidia/dali" ] && APPEND="$DALI_BUNDLE/site"
fi

# 4. This project, --no-deps, into the target.
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
if "$PY" -m pip install -q --no-deps --no-index --no-build-isolation --no-compile --target "$SITE" "$ROOT" >"$TARGET/pip.log" 2>&1; then
  INSTALL="pip --no-deps --target (from the checkout)"
elif wheel=$(ls "$WHEELS"/imgnet_tools-*.whl 2>/dev/null | head -1) && [ -n "$wheel" ] \
     && "$PY" -m pip install -q --no-deps --no-index --no-compile --target "$SITE" "$wheel" >>"$TARGET/pip.log" 2>&1; then
  INSTALL="pip --no-deps --target (from $(basename "$wheel"))"
else
  INSTALL="source checkout on PYTHONPATH (pip could not install it: $(tail -1 "$TARGET/pip.log"))"
  export PYTHONPATH="$PYTHONPATH:$ROOT"
fi
export IMGNET_GPU_INSTALL="$INSTALL" IMGNET_APPEND_PATH="$APPEND"
say "project: $INSTALL${APPEND:+; DALI appended from $APPEND}; set-up took $(( $(date +%s) - START )) s"

# 5. Run from outside the checkout, so the installed copy is the one imported.
cd "$TARGET"
set +e
"$PY" -c 'import os, sys
sys.path.extend(p for p in os.environ.get("IMGNET_APPEND_PATH", "").split(":") if p)
from imgnet_tools.cli.main import cli
cli(prog_name="imgnet")' gpu-check --out "$OUT" --overwrite "${DRY[@]}" "$@" > "$OUT/summary.stdout" 2> >(tee -a "$SETUP" >&2)
rc=$?
set -e
cat "$OUT/summary.stdout" 2>/dev/null || true
rm -f "$OUT/summary.stdout"
say "done in $(( $(date +%s) - START )) s (exit $rc): $OUT"
exit $rc
