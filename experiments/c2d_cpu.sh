#!/usr/bin/env bash
# C2D-ISR two-stage training vs its discrete-only twin at equal iterations, at CPU scale (issue 6;
# seed 000 Table 2, v1.1 vs v1.2): SRFormer-C2D x4. Stage 1 = backbone + HIIF-L on s ~ U(1, 4)
# (c2d_stage1), stage 2 = PixelShuffle head initialised from stage 1 (c2d_stage2, eq. 10); the twin is
# c2d_discrete for the sum of both stages' iterations. One thread; ~80 min in all.
# Results: results/c2d.md. Usage: bash experiments/c2d_cpu.sh [RUNS_DIR]
# C2D_EXTRA="train flags" are appended to every run (e.g. a tiny --train_dir and --iters for a smoke
# test); C2D_DATA="folders" replaces the benchmark sets evaluated at the end.
set -euo pipefail
R=${1:-runs/c2d_cpu}
C="--scale 4 --batch_size 8 --lr_patch 32 --schedule cosine --val_every 0 --save_every 20 --log_every 10 --seed 0 --device cpu --no_progress"
D=${C2D_DATA:-"../shared/data/benchmark/Set5 ../shared/data/benchmark/Set14 ../shared/data/benchmark/BSD100"}
export OMP_NUM_THREADS=1
mkdir -p "$R"
run() {  # run OUT ARGS...: train into OUT unless it is finished; resume it if it was cut off
  local out=$1; shift
  [ -f "$out/final.safetensors" ] || python -m lightsr train "$@" $C ${C2D_EXTRA:-} --out "$out" $( [ -d "$out" ] && echo --resume )
}
run "$R/stage1" --recipe c2d_stage1 --iters 420 --lr 4e-4
run "$R/stage2" --recipe c2d_stage2 --iters 180 --lr 2e-4 --init "$R/stage1"
run "$R/discrete" --recipe c2d_discrete --iters 600 --lr 4e-4
for m in stage2 discrete; do
  python -m lightsr eval --model srformer_c2d --scale 4 --weights "$R/$m/final.safetensors" --device cpu \
    --data $D --json "$R/eval_$m.json" --overwrite
done
