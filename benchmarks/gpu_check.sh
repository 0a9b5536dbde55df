#!/usr/bin/env bash
# The prepared GPU check (issue: fast path, item 6): on a CUDA machine (H100/H200 class) it finishes
# within 8 minutes and writes fast_path.md / fast_path.json to the folder given as $1:
#   latency of fp32 / compiled / bf16 / bf16+compile / CUDA graphs / auto at 320x180 -> x4 for every
#   model of the fast-path list (random weights where ../shared is absent: PSNR is a CPU check),
#   and training patches/s plain vs fast at batch 64.
# Without a GPU it runs the same script at tiny sizes on the CPU (what CI exercises).
#   bash benchmarks/gpu_check.sh "$OUT"
set -euo pipefail
out="${1:?usage: gpu_check.sh OUT_DIR}"
cd "$(dirname "$0")/.."
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.csv" || true
    python3 benchmarks/fast_path.py --device cuda --train --batch 64 --repeats 20 --warmup 3 \
        --budget 420 --out "$out"
else
    echo "no CUDA GPU: tiny CPU run" >&2
    python3 benchmarks/fast_path.py --tiny --out "$out"
fi
