#!/usr/bin/env bash
# AnySR Algorithm 1 at CPU scale (issue 8): train SRNO on EDSR-baseline on continuous scales, rebuild it
# with AnySR (Algorithm 1, --init from that run), then compare each scale's sub-network with the full
# network on Set14 x2/x3/x4. One thread, so it can share a 2-core machine: ~75 min of training,
# then 8 evaluations of ~8 min each (SRNO's decoder runs on every HR pixel).
# Results: results/anysr.md. Usage: bash experiments/anysr_cpu.sh [RUNS_DIR]
set -euo pipefail
R=${1:-runs/anysr_cpu}
T="--train_dir ../shared/data/train/BSDS400 ../shared/data/train/T91 --val_dir ../shared/data/benchmark/Set5"
export OMP_NUM_THREADS=1
mkdir -p "$R"
# 1. SRNO-EDSR, s ~ U(1, 4) per batch, LR patch 32, batch 8, Adam 4e-4 cosine (SRNO's peak rate).
[ -f "$R/srno_edsr/final.safetensors" ] || python -m lightsr train --model srno_edsr --scale 4 $T \
  --iters 900 --batch_size 8 --lr_patch 32 --lr 4e-4 --schedule cosine --val_every 0 --save_every 50 \
  --log_every 10 --seed 0 --device cpu --no_progress --out "$R/srno_edsr" $( [ -d "$R/srno_edsr" ] && echo --resume )
# 2. Algorithm 1 from it: the official scale sweep (recipe anysr_sweep; results/anysr.md predates Algorithm 1's groups) and sub-network hook, LR 1e-4 (the recipe's 1e-5 is for 250k steps).
[ -f "$R/anysr/final.safetensors" ] || python -m lightsr train --recipe anysr_sweep $T --init "$R/srno_edsr" \
  --iters 600 --batch_size 8 --lr_patch 32 --lr 1e-4 --schedule cosine --val_every 0 --save_every 50 \
  --log_every 10 --seed 0 --device cpu --no_progress --out "$R/anysr" $( [ -d "$R/anysr" ] && echo --resume )
# 3. Set14: the SRNO before rebuilding, AnySR by scale (dagger), AnySR full network (double dagger).
for s in 2 3 4; do
  python -m lightsr eval --model srno_edsr --scale $s --weights "$R/srno_edsr/final.safetensors" \
    --data ../shared/data/benchmark/Set14 --device cpu --json "$R/srno_x$s.json" --overwrite
  python -m lightsr eval --model anysr_srno_edsr --scale $s --weights "$R/anysr/final.safetensors" \
    --data ../shared/data/benchmark/Set14 --device cpu --json "$R/anysr_sub_x$s.json" --overwrite
  [ $s = 4 ] && continue  # x4's sub-network is the full network (w = 1.0)
  python -m lightsr eval --model anysr_srno_edsr --scale $s --weights "$R/anysr/final.safetensors" --full-net \
    --data ../shared/data/benchmark/Set14 --device cpu --json "$R/anysr_full_x$s.json" --overwrite
done
