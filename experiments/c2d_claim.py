"""C2D-ISR's central claim at CPU scale, x4: two-stage training (continuous scales with HIIF-L, then
the discrete head, eq. 10) against discrete-only training at equal steps, on RLFN-S (the default
model's network) and on a reduced SwinIR-C2D (the paper's own setting, ``--net swinir_c2d_small``).

    python experiments/c2d_claim.py run A --seed 1     # arm A: discrete-only, N steps
    python experiments/c2d_claim.py run B1 --seed 1    # arm B, stage 1: body + HIIF-L, s ~ U(1, 4), 0.7 N
    python experiments/c2d_claim.py run B2 --seed 1    # arm B, stage 2: PixelShuffle head, 0.3 N, --init B1
    python experiments/c2d_claim.py run B2p --seed 1   # arm B', stage 2 as B2 at the paper's stage-2 LR (1e-5)
    python experiments/c2d_claim.py table              # Set5 / Set14 / BSD100 x4 of every finished run
    python experiments/c2d_claim.py run A --net swinir_c2d_small   # the same arms on another network

Every run is the shipped weights' recipe (``cpu_long``: LR 48, batch 16, Adam 5e-4 (0.9, 0.99),
1k warm-up + cosine, EMA 0.999, bf16 where native, 10 BSDS400 images held out) with only what the
arm changes; ``run`` resumes a run that exists (``--time_limit`` minutes per call). Runs live in
``experiments/c2d_claim/{net}_{A,B1,B2}_s{seed}``. Results: results/c2d.md, "The claim at CPU scale".
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studies import ROOT, SETS, cpu_minutes, finished, run_arm, scores

from lightsr.models.c2d import SMALL

RUNS = ROOT / "experiments" / "c2d_claim"
# net -> (registered discrete model, its options, N = total steps of either arm)
NETS = {
    "rlfn_s": ("rlfn_s", {}, 12_000),
    # the same arms at N = 16,000: arm A at 12,000 ended 0.32 dB below the shipped RLFN-S x4 on Set5,
    # 0.02 dB outside the "within 0.3 dB" for N (runs: rlfn_s_16k_{A,B1,B2}_s{seed})
    "rlfn_s_16k": ("rlfn_s", {}, 16_000),
    # SwinIR-C2D at a CPU budget: 2 HiET blocks instead of 4, windows halved (32/16/8/8/16/32; the
    # paper's Table 2 varies them too), the paper's dim 60 and 6 heads. N = 4,000: measured 1.3 s per
    # compiled arm-A step and 2.0 s per stage-1 step at 2 threads (2026-12-03), about 7 CPU-hours for
    # the three runs
    "swinir_c2d_small": ("swinir_c2d", SMALL, 4_000),  # the registered variant swinir_c2d_small's options
}
# fixed-scale arms (A, B2) of these nets train compiled (`--compile`: 1.15x here for the transformer;
# RLFN-S runs slower compiled); stage 1's continuous head cannot be compiled
COMPILED = {"swinir_c2d_small"}
SPLIT = 0.7  # the paper's 700 / 300 epochs split
# stage 2: the fresh PixelShuffle head alone for HEAD_WARMUP steps at STAGE2_LR, then the whole
# network with a 200-step warm-up and cosine decay from STAGE2_LR. HEAD_WARMUP from a measured
# pilot (experiments/c2d_claim/head_warmup_pilot_log.csv, results/c2d.md): head-only L1 falls from
# 0.257 to 0.056 in 200 steps, then by under 0.003 per 25 steps. STAGE2_LR is a choice, not tuned:
# below stage 1's 5e-4 (keep the transferred body), far above the paper's 1e-5 (its stage 2 is 300
# DIV2K epochs; ours 3,600 steps).
HEAD_WARMUP = 300
STAGE2_LR = 2e-4
# arm B' (B2p): the same stage 2 with the whole network at the paper's stage-2 LR (seed 000 section 5:
# max 1e-5, min 1e-6) after the same head-only phase at STAGE2_LR. Added at N = 16,000 when stage 1's
# own HIIF-L model scored level with arm A at x4 and the 2e-4 stage 2 lost 0.5 dB of it (results/c2d.md)
PAPER_STAGE2_LR = 1e-5
STAGE2_ARMS = ("B2", "B2p")


def steps(net: str) -> tuple[int, int]:
    """(stage 1, stage 2) steps of arm B; arm A runs their sum."""
    n = NETS[net][2]
    return int(SPLIT * n), n - int(SPLIT * n)


def run_dir(arm: str, seed: int, net: str = "rlfn_s") -> Path:
    return RUNS / f"{net}_{arm}_s{seed}"


def config(arm: str, seed: int, net: str = "rlfn_s"):
    from lightsr.train.recipes import cpu_long

    model, options, n = NETS[net]
    stage1, stage2 = steps(net)
    cfg = cpu_long(4, model)
    cfg.options = dict(options)
    cfg.seed, cfg.out = seed, str(run_dir(arm, seed, net).relative_to(ROOT))
    if arm == "A":
        cfg.iters = n
    elif arm == "B1":  # seed 000 stage 1: the body with HIIF-L, one scale per sample, "fast" queries
        cfg.model, cfg.iters = f"{model}_hiif", stage1
        cfg.scale_mode, cfg.queries, cfg.scale_min, cfg.scale_max = "sample", "fast", 1.0, 4.0
    elif arm in STAGE2_ARMS:  # stage 2 (eq. 10): body from stage 1's final (EMA) weights, fresh head
        cfg.iters, cfg.init = stage2, str(run_dir("B1", seed, net).relative_to(ROOT))
        cfg.lr, cfg.head_warmup, cfg.warmup = STAGE2_LR, HEAD_WARMUP, 200
        if arm == "B2p":
            cfg.lr, cfg.head_lr = PAPER_STAGE2_LR, STAGE2_LR
    else:
        raise SystemExit(f"unknown arm {arm!r}: A, B1, B2 or B2p")
    cfg.compile = net in COMPILED and arm != "B1"
    return cfg


def run(arm: str, seed: int, time_limit: float | None, net: str = "rlfn_s") -> int:
    if arm in STAGE2_ARMS and not finished(run_dir("B1", seed, net)):
        raise SystemExit(f"stage 1 of seed {seed} has not finished ({run_dir('B1', seed, net)})")
    return run_arm(config(arm, seed, net), time_limit)


def table(net: str = "rlfn_s") -> int:
    print(f"{net}\n| arm | seed | steps | CPU-min | Set5 | Set14 | BSD100 |\n|---|---|---|---|---|---|---|")
    arms = ("A", "B1", *STAGE2_ARMS)  # B1: stage 1's own continuous model (body + HIIF-L) evaluated at x4
    for final in sorted(f for arm in arms for f in RUNS.glob(f"{net}_{arm}_s*/final.safetensors")):
        d = final.parent
        arm, seed = d.name.split("_")[-2], int(d.name.rsplit("_s", 1)[1])
        cfg = json.loads((d / "config.json").read_text())
        cpu = cpu_minutes(d) + (cpu_minutes(run_dir("B1", seed, net)) if arm in STAGE2_ARMS else 0.0)
        psnr = scores(cfg["model"], 4, final, options=cfg.get("options") or None)
        total = cfg["iters"] + (steps(net)[0] if arm in STAGE2_ARMS else 0)
        label = {"A": "A (discrete)", "B1": "stage 1 alone (HIIF-L head)", "B2": "B (two-stage)",
                 "B2p": "B' (two-stage, stage 2 at 1e-5)"}[arm]
        print(f"| {label} | {seed} | {total} | {cpu:.0f} | "
              + " | ".join(f"{psnr[s]:.4f}" for s in SETS) + " |", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("arm", choices=["A", "B1", *STAGE2_ARMS])
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--time_limit", type=float, default=None, help="minutes in this call")
    r.add_argument("--net", choices=list(NETS), default="rlfn_s")
    t = sub.add_parser("table")
    t.add_argument("--net", choices=list(NETS), default="rlfn_s")
    args = p.parse_args(argv)
    return run(args.arm, args.seed, args.time_limit, args.net) if args.cmd == "run" else table(args.net)


if __name__ == "__main__":
    sys.exit(main())
