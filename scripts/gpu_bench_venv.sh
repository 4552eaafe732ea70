#!/usr/bin/env bash
# Record multi-GPU AlexNet / loader figures on a GPU machine that has the full project venv (make setup):
# DDP over every GPU, the GPU tests, the side-by-side loader benchmark. For one GPU on a bare host
# (no venv, no package index) use scripts/gpu_bench.sh, which runs `imgnet gpu-check`.
#   bash scripts/gpu_bench_venv.sh [OUT_DIR]        (default: bench-out/gpu-<hostname>)
# Env: N_IMAGES (default 10000 ImageNet-sized JPEGs), GPUS (default: every visible GPU),
#      BATCH (default 256 per GPU), STEPS (default 100), WORKERS (default: cores / GPUs).
# Writes OUT_DIR/{nvidia-smi.txt, loader_check.json, bench_1gpu.json, bench_Ngpu.json,
# benchmarks_loader.json, pytest_gpu.txt}; the bench reports follow schemas/bench_report.schema.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
IMGNET=${IMGNET:-.venv/bin/imgnet}
OUT=${1:-bench-out/gpu-$(hostname)}
N_IMAGES=${N_IMAGES:-10000}
BATCH=${BATCH:-256}
STEPS=${STEPS:-100}
say() { printf '[gpu_bench] %s\n' "$*" >&2; }

GPUS=${GPUS:-$("$PY" -c 'import torch; print(torch.cuda.device_count())')}
if [ "$GPUS" -lt 1 ]; then
  say "no CUDA GPU visible to torch; nothing to record (CPU figures: python -m benchmarks loader)."
  exit 1
fi
CORES=$(nproc)
WORKERS=${WORKERS:-$(( CORES / GPUS > 0 ? CORES / GPUS : 1 ))}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true

# 1. Shards: seeded 500x375 JPEGs written by the real `imgnet shard` (cached in bench-out/loader-src).
say "making $N_IMAGES images and their shards (cached between runs)"
SHARDS=$(IMGNET_BENCH_LOADER_N="$N_IMAGES" "$PY" -c 'from benchmarks.bench_loader import make_shards; print(make_shards())')
say "shards: $SHARDS"

# 2. DALI reads the shards like the baseline reader does.
"$IMGNET" loader check "$SHARDS" --samples 512 --json > "$OUT/loader_check.json"

# 3. The GPU tests (DALI mixed decode, one-GPU bench).
"$PY" -m pytest -q -m gpu tests/loader/test_loader.py tests/bench/test_bench.py > "$OUT/pytest_gpu.txt" 2>&1 || say "GPU tests failed: see $OUT/pytest_gpu.txt"

# 4. The benchmark: one GPU, then every GPU; loader only, model only, end to end, both loaders.
common=(--mode all --loader both --batch-size "$BATCH" --image-size 224 --steps "$STEPS" --warmup 20 --repeats 3
        --workers "$WORKERS" --dtype fp16 --layout NHWC --hw-decoder-load 0.65 --overwrite)
say "imgnet bench --gpus 1"
"$IMGNET" bench "$SHARDS" --gpus 1 "${common[@]}" --out "$OUT/bench_1gpu.json"
if [ "$GPUS" -gt 1 ]; then
  say "imgnet bench --gpus $GPUS"
  "$IMGNET" bench "$SHARDS" --gpus "$GPUS" "${common[@]}" --out "$OUT/bench_${GPUS}gpu.json"
fi
say "imgnet bench --gpus 1 --compile (model and e2e with DALI)"
"$IMGNET" bench "$SHARDS" --gpus 1 "${common[@]}" --loader dali --compile --out "$OUT/bench_1gpu_compile.json" \
  || say "torch.compile run failed; the eager figures above stand"

# 5. The side-by-side loader benchmark (DALI CPU decode vs the PIL DataLoader), for BENCHMARKS.md.
IMGNET_BENCH_LOADER_N="$N_IMAGES" "$PY" -m benchmarks loader --repeats 3 --json "$OUT/benchmarks_loader.json"
say "done: $OUT"
