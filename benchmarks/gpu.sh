#!/usr/bin/env bash
# Every GPU measurement of issue 15 in one run (< 8 minutes): step ratios, host syncs per step, fitwatch's kernels.
#   bash benchmarks/gpu.sh            # results in $OUT when set (the device machine), else benchmarks/results/gpu
#   bash benchmarks/gpu.sh --dry-run  # CPU, a few steps
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results/gpu}"
mkdir -p "$out"
py="${PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
export PYTHONWARNINGS=ignore TOKENIZERS_PARALLELISM=false PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/nvidia-smi.csv" 2>/dev/null || true
timeout 470 "$py" -m benchmarks.gpu --out "$out" "$@" 2>&1 | grep -v '^USDT' | tee "$out/gpu.log"
