#!/usr/bin/env bash
# The long mutation-fuzz run (the bounded one is tests/hostile/test_hostile_fuzz.py in `make test`).
#   scripts/fuzz.sh [MINUTES=30] [OUT=fuzz-out] [SEED=1]
# Batches of mutated JPEG/PNG/BMP/GIF/TIFF/WebP files (tests/fuzzing.py) through verify --fix,
# dedup's hashing, shard --resize-short and DALI (per file, in one process), then through the
# real stages on the process pool (tests/fuzz_long.py). A decoder that takes the whole process
# down is kept as OUT/findings/crash-*, and the run goes on from the next batch. Findings: OUT/findings/;
# per-batch counts: OUT/stats.jsonl; the totals are printed at the end (for BENCHMARKS.md, RELIABILITY).
set -uo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-30}
OUT=${2:-fuzz-out}
SEED=${3:-1}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT/findings"
end=$(( $(date +%s) + MINUTES * 60 ))
next=0
crashes=0
while [ "$(date +%s)" -lt "$end" ]; do
  left=$(( (end - $(date +%s)) ))
  "$PY" -m tests.fuzz_long --minutes "$(awk "BEGIN {print $left / 60}")" --seed "$SEED" --first-batch "$next" \
        --out "$OUT" >"$OUT/last-run.json" 2>>"$OUT/stderr.log"
  rc=$?
  done_batches=$( [ -f "$OUT/stats.jsonl" ] && wc -l <"$OUT/stats.jsonl" || echo 0 )
  if [ "$rc" -gt 128 ] && [ -f "$OUT/current" ]; then   # killed by a signal: a crash inside a decoder
    crashes=$((crashes + 1))
    case_file=$(head -1 "$OUT/current")
    cp -r "$case_file" "$OUT/findings/crash-$crashes-$(basename "$case_file")" 2>/dev/null
    cp "$OUT/current" "$OUT/findings/crash-$crashes.txt"
    echo "[fuzz] crash $crashes (signal $((rc - 128))): $(tail -1 "$OUT/current")" >&2
    rm -f "$OUT/current"
    next=$((done_batches + crashes))   # skip the batch that crashed
  else
    break
  fi
done
"$PY" - "$OUT" "$crashes" <<'PY'
import json, sys, pathlib
out, crashes = pathlib.Path(sys.argv[1]), int(sys.argv[2])
lines = [json.loads(l) for l in (out / "stats.jsonl").read_text().splitlines()] if (out / "stats.jsonl").exists() else []
keys = ("cases", "ok", "fixable", "rejected", "dali_checked", "problems", "stage_problems")
totals = {k: sum(l.get(k, 0) for l in lines) for k in keys}
findings = sorted(p.name for p in (out / "findings").iterdir()) if (out / "findings").exists() else []
print(json.dumps({"batches": len(lines), **totals, "process_crashes": crashes, "findings": len(findings)}))
PY
