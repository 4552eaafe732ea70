#!/usr/bin/env bash
# Prepare, on a machine that reaches PyPI, the small wheel folder a bare GPU host needs for
# scripts/gpu_bench.sh: the pure-Python (and two small manylinux) packages such a host usually
# lacks, for CPython 3.12 on manylinux x86_64, plus a wheel of this project.
#
#   bash scripts/gpu_wheels.sh [OUT]          (default .gpuwheels, ignored by git)
#
# Contents: webdataset, braceexpand, PyYAML, jsonschema with its dependencies (attrs, referencing,
# jsonschema-specifications, rpds-py, typing-extensions), and imgnet_tools-*.whl. Nothing heavy:
# no torch, torchvision, pyarrow, Pillow or numpy (the host has them) and no DALI (see
# ../shared/tools/offline-dali-bundle.sh for that bundle). The script refuses to finish if the
# folder comes to 64 MiB or more, and writes SHA256SUMS and the total size.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.gpuwheels}
PY=${PY:-python3}
PYVER=${PYVER:-3.12}
LIMIT=$((64 * 1024 * 1024))
say() { printf '[gpu_wheels] %s\n' "$*" >&2; }

rm -rf "$OUT"
mkdir -p "$OUT"
plat=(--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64)
say "downloading wheels for CPython $PYVER, manylinux x86_64, into $OUT"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp "${plat[@]}" \
  -d "$OUT" \
  webdataset braceexpand PyYAML jsonschema jsonschema-specifications referencing rpds-py attrs typing-extensions
say "building the imgnet-tools wheel from this checkout"
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$OUT" . >&2
(cd "$OUT" && sha256sum -- *.whl > SHA256SUMS)
total=$(du -cb "$OUT"/*.whl | tail -1 | cut -f1)
ls -l "$OUT" >&2
if [ "$total" -ge "$LIMIT" ]; then
  say "the wheels come to $total bytes, over the 64 MiB limit; see what grew"
  exit 1
fi
printf '%s\n' "$total" > "$OUT/TOTAL_BYTES"
say "done: $(ls "$OUT"/*.whl | wc -l) wheels, $total bytes ($(( total / 1024 )) KiB) in $OUT"
