#!/usr/bin/env bash
# `make demo`: generate the mini-ImageNet, run pipelines/demo.yaml on it end to end, say where
# the results are. Re-running is cheap: finished stages are skipped.
#   bash scripts/demo.sh [OUT]        (default OUT: demo-out)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo-out}
VENV=${VENV:-.venv}
IMGNET="$VENV/bin/imgnet"
[ -x "$IMGNET" ] || IMGNET=imgnet

extra=()
# One GPU if torch sees one (the recipe's default is CPU, so the demo runs anywhere).
if "$VENV/bin/python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  extra+=(--set bench.gpus=1)
fi

"$IMGNET" run pipelines/demo.yaml --workdir "$OUT" "${extra[@]}" >/dev/null

cat >&2 <<MSG

Demo finished. Results in $OUT/:
  data/            generated images; data/faults.json lists the planted faults
  work/            manifest.parquet (one row per image: status, reason, duplicates)
  shards/          webdataset shards, DALI indexes, dataset.json
  bench.json       AlexNet throughput (loader, model, end to end)
  run.json         what each step did and how long it took
  report/report.html   open this: $(cd "$OUT" && pwd)/report/report.html
MSG
