"""HASN's warm-start retraining (HASN section 3.3, Table 9) at CPU scale, x4, equal steps.

    python experiments/hasn_warm.py run A [--seed 1] [--n 16000] [--time_limit MIN]   # stage 1 (L1), N steps
    python experiments/hasn_warm.py run B2 [--seed 1] [--n 16000] [--time_limit MIN]  # stage 2 (L1 + KL), N/2
    python experiments/hasn_warm.py run B2r [--seed 1] [--n 16000]   # ablation: B2's restart with L1 only
    python experiments/hasn_warm.py table [--n 16000]
    python experiments/hasn_warm.py ship ARM [--seed 1] [--n 16000] [--overwrite]   # weights -> hasn_x4

Arm A is stage 1 alone: HASN x4 trained from scratch with L1 for N steps. Arm B is the paper's warm
start: stage 1 for N/2 steps, then stage 2 for N/2 steps from those weights, with ``L_s2 = L1 + KL``
(eq. 5, alpha = beta = 1) and the schedule started again ("other training settings remain consistent
with the first stage"). As in the paper, stage 2 starts from a checkpoint *inside* the stage-1 run
(its 100k of 500k iterations; here N/2 of N): arm B's stage 1 is arm A's run up to step N/2 (kept
as a milestone), so the two arms share it and each costs N steps. No Flickr2K here: the comparison is
Table 9's "DIV2K" rows (w/o 32.06 / 28.52 / 27.52, w 32.08 / 28.55 / 27.53 on Set5 / Set14 / BSD100).

Both arms run the shipped weights' recipe (``cpu_long``: BSDS400 + T91, LR 48, batch 16, Adam 5e-4
(0.9, 0.99), 1k warm-up + cosine, EMA 0.999, bf16 where native, 10 BSDS400 images held out), not
the paper's batch 128 / 500k iterations. Runs: ``experiments/hasn_warm/hasn_{A,B2}_s{seed}`` (N = 6,000,
the first study) and ``hasn_{N/1000}k_{A,B2}_s{seed}`` for another ``--n`` (16,000: the first study's
arms were far from converged, 1.6-1.8 dB below the shipped HASN x4 on Set5).
Arm B2r (not in the paper) is arm B2 with L1 alone: B2 - B2r is what the KL term adds, B2r - A what
the schedule's restart adds (the paper's strategy changes both at once).
Results: results/hasn.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studies import ROOT, SETS, cpu_minutes, evaluate_sets, finished, head_commit, run_arm, scores

RUNS = ROOT / "experiments" / "hasn_warm"
N = 6_000  # steps of either arm in the first study (HASN is ~4.5x RLFN-S's cost per step)
STAGE2_WARMUP = 200  # stage 2's schedule starts again: a short warm-up (stage 1: 1k of N), then cosine


def run_dir(arm: str, seed: int, n: int = N) -> Path:
    return RUNS / (f"hasn_{arm}_s{seed}" if n == N else f"hasn_{n // 1000}k_{arm}_s{seed}")


def config(arm: str, seed: int, n: int = N):
    from lightsr.train.recipes import cpu_long

    cfg = cpu_long(4, "hasn")
    cfg.compile = True  # 1.3x per step on this CPU (results/training.md); seed 1 of arm A from step 1,498
    cfg.seed, cfg.out = seed, str(run_dir(arm, seed, n).relative_to(ROOT))
    if arm == "A":  # stage 1; its step-N/2 checkpoint (EMA weights) is arm B's start
        cfg.iters, cfg.keep_steps = n, [n // 2]
    elif arm in ("B2", "B2r"):
        start = run_dir("A", seed, n) / "ckpt" / f"step_{n // 2:08d}"
        cfg.iters, cfg.init, cfg.init_head = n // 2, str(start.relative_to(ROOT)), ()
        cfg.loss = "l1_kl" if arm == "B2" else "l1"
        cfg.warmup = STAGE2_WARMUP
    else:
        raise SystemExit(f"unknown arm {arm!r}: A, B2 or B2r")
    return cfg


def run(arm: str, seed: int, time_limit: float | None, n: int = N) -> int:
    cfg = config(arm, seed, n)
    if arm != "A" and not (ROOT / cfg.init).is_dir():
        raise SystemExit(f"arm A of seed {seed} has not reached step {n // 2} yet ({run_dir('A', seed, n)})")
    return run_arm(cfg, time_limit)


def arm_cpu_minutes(arm: str, seed: int, n: int = N) -> float:
    """An arm's CPU-minutes: arm B counts its own run and the half of arm A it starts from."""
    own = cpu_minutes(run_dir(arm, seed, n))
    return own + (cpu_minutes(run_dir("A", seed, n)) / 2 if arm != "A" else 0.0)


def table(n: int = N) -> int:
    print(f"N = {n}\n| arm | seed | steps | CPU-min | " + " | ".join(SETS) + " |\n|---|---|---|---|---|---|---|")
    for arm in ("A", "B2", "B2r"):
        for d in sorted(run_dir(arm, 0, n).parent.glob(run_dir(arm, 0, n).name[:-1] + "*")):
            if not finished(d):
                continue
            seed = int(d.name.rsplit("_s", 1)[1])
            cpu = arm_cpu_minutes(arm, seed, n)
            steps = json.loads((d / "config.json").read_text())["iters"] + (n // 2 if arm != "A" else 0)
            psnr = scores("hasn", 4, d / "final.safetensors")
            label = {"A": "A (stage 1 only)", "B2": "B (warm start)", "B2r": "B' (restart, L1 only)"}[arm]
            print(f"| {label} | {seed} | {steps} | {cpu:.0f} | " + " | ".join(f"{psnr[s]:.4f}" for s in SETS)
                  + " |", flush=True)
    return 0


def ship(arm: str, seed: int, overwrite: bool, n: int = N) -> int:
    """The arm's final (EMA) weights into the package as ``hasn_x4.safetensors`` with how they were
    trained (both stages for arm B) and their Set5 / Set14 / BSD100 Y-PSNR (standard protocol)."""
    from lightsr.checkpoint import read_metadata, read_state_dict, save_weights
    from lightsr.models.registry import WEIGHTS_DIR

    d = run_dir(arm, seed, n)
    if not finished(d):
        raise SystemExit(f"{d} has not finished")
    src = d / "final.safetensors"
    cfg = json.loads((d / "config.json").read_text())
    cpu_h = arm_cpu_minutes(arm, seed, n) / 60
    res = evaluate_sets("hasn", 4, src)
    init = cfg.get("init") or "none (from scratch)"
    meta = {"model": "hasn", "scale": 4, "step": n, "seed": seed, "cpu_hours": round(cpu_h, 2), "ema": True,
            "init": init + (f" (arm A's step {n // 2}: stage 1)" if arm == "B2" else ""),
            "recipe": "experiments/hasn_warm.py arm " + ("A: cpu_long, L1" if arm == "A" else
                                                         f"B: cpu_long L1 for {n // 2}, then L1 + KL for {n // 2}"),
            "loss": cfg["loss"], "data": "BSDS400 + T91 (10 BSDS400 images held out for validation)",
            "val_psnr_y": read_metadata(src).get("val_psnr_y"),
            "commit": head_commit(), "run": str(d.relative_to(ROOT)),
            **{f"{k.lower()}_psnr_y": round(res[k]["psnr"], 4) for k in SETS},
            **{f"{k.lower()}_ssim": round(res[k]["ssim"], 4) for k in SETS}}
    save_weights(read_state_dict(src), WEIGHTS_DIR / "hasn_x4.safetensors", meta, overwrite=overwrite)
    print(json.dumps(meta, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("arm", choices=["A", "B2", "B2r"])
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--time_limit", type=float, default=None, help="minutes in this call")
    t = sub.add_parser("table")
    sh = sub.add_parser("ship")
    sh.add_argument("arm", choices=["A", "B2"])
    sh.add_argument("--seed", type=int, default=1)
    sh.add_argument("--overwrite", action="store_true", help="replace the shipped file")
    for q in (r, t, sh):
        q.add_argument("--n", type=int, default=N, help=f"steps of either arm (default {N}, the first study)")
    args = p.parse_args(argv)
    if args.cmd == "ship":
        return ship(args.arm, args.seed, args.overwrite, args.n)
    return run(args.arm, args.seed, args.time_limit, args.n) if args.cmd == "run" else table(args.n)


if __name__ == "__main__":
    sys.exit(main())
