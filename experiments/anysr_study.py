"""AnySR trained at CPU scale, to ship: SRNO on EDSR-baseline on continuous scales, then AnySR's
Algorithm 1 (any-scale, any-resource rebuilding) from it.

    python experiments/anysr_study.py run S [--time_limit MIN]   # SRNO-EDSR, s ~ U(1, 4) per batch
    python experiments/anysr_study.py run G [--time_limit MIN]   # Algorithm 1 from S (groups, sub-networks)
    python experiments/anysr_study.py table [--sets Set5 Set14] [--scales 2 3 4]  # scale x width: PSNR, GFLOPs
    python experiments/anysr_study.py ship [--overwrite]         # G's EMA weights -> lightsr/weights

Stage S is the network AnySR starts from (the paper starts from a DIV2K-trained SRNO): BSDS400 + T91,
one scale per step s ~ U(1, 4), LR patch 32 with the "fast" query grid, batch 8, Adam 4e-4 (SRNO's
peak rate) with 500 warm-up steps and cosine decay, EMA 0.999, bf16 where native, 10 held-out images.
Stage G is the ``anysr`` recipe (Algorithm 1: t ~ U{1..T}, s ~ S_t, the step's sub-network chosen by
the scale group and reset to the full network with p = 0.6, only that sub-network updated; widths
0.5 / 0.7 / 0.9 / 1.0) at Adam 1e-4 cosine: the recipe's 1e-5 is meant for 250k DIV2K steps.
Runs: ``experiments/anysr/srno_edsr_{S,G}``. Results: results/anysr.md, "AnySR, trained".
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studies import ROOT, cpu_minutes, finished, head_commit, run_arm, scores

RUNS = ROOT / "experiments" / "anysr"
STEPS = {"S": 6_000, "G": 1_500}
SHIP_SETS = ("Set5",)  # default mode (the scale group's sub-network) at x2 / x3 / x4 in the metadata


def run_dir(stage: str) -> Path:
    return RUNS / f"srno_edsr_{stage}"


def config(stage: str):
    from lightsr.train.config import TrainConfig
    from lightsr.train.recipes import TRAIN_DIRS, anysr

    if stage == "S":
        cfg = TrainConfig(model="srno_edsr", scale=4, train_dirs=list(TRAIN_DIRS), val_dir=None, holdout=10,
                          lr_patch=32, batch_size=8, scale_min=1.0, scale_max=4.0, scale_mode="batch",
                          queries="fast", loss="l1", optimizer="adam", lr=4e-4, betas=(0.9, 0.999),
                          schedule="cosine", min_lr=1e-6, warmup=500, ema=0.999, precision="auto",
                          val_every=1000, save_every=500, log_every=100)
    elif stage == "G":
        cfg = anysr(4, "edsr")
        cfg.init = str(run_dir("S").relative_to(ROOT))
        cfg.lr_patch, cfg.batch_size, cfg.lr, cfg.schedule, cfg.warmup = 32, 8, 1e-4, "cosine", 100
        cfg.ema, cfg.precision, cfg.val_every, cfg.save_every, cfg.log_every = 0.999, "auto", 1000, 500, 100
        cfg.val_dir, cfg.holdout = None, 10
    else:
        raise SystemExit(f"unknown stage {stage!r}: S or G")
    cfg.iters, cfg.seed, cfg.out = STEPS[stage], 1, str(run_dir(stage).relative_to(ROOT))
    return cfg


def run(stage: str, time_limit: float | None) -> int:
    if stage == "G" and not finished(run_dir("S")):
        raise SystemExit(f"stage S has not finished ({run_dir('S')})")
    return run_arm(config(stage), time_limit)


def table(sets: list[str], scales: list[float], all_widths: bool = False) -> int:
    """AnySR's Table 1/2 pattern for stage G (its run here, else the shipped file: the run's final
    weights): at each scale the sub-network of the scale's group (the paper's dagger) beside the full
    network (double dagger), and stage S (the SRNO it started from) when S's run is here. ``all_widths``
    adds every width (what ``--max-gflops`` may pick, trained at this scale only through the full network's
    resets)."""
    from lightsr.models import create_model, get_entry

    g = run_dir("G") / "final.safetensors"
    if not g.is_file():
        g = get_entry("anysr_srno_edsr").shipped_weights(4)
    s = run_dir("S") / "final.safetensors" if finished(run_dir("S")) else None
    net = create_model("anysr_srno_edsr")  # S's encoder is AnySR's at w = 1 (same MACs)
    print(f"G: {g.relative_to(ROOT)}; S: {s.relative_to(ROOT) if s else 'not here (its row is left out)'}")
    print("| scale | network | width | encoder GMACs (the papers' FLOPs), 320x180 LR | " + " | ".join(sets) + " |")
    print("|---|---|---|---|" + "---|" * len(sets))
    for scale in scales:
        group = net.width_for_scale(scale)
        widths = net.widths if all_widths else {group, 1.0}
        rows = ([("SRNO (S)", "srno_edsr", s, None)] if s else []) + [
            ("AnySR" + (" (group)" if w == group else ""), "anysr_srno_edsr", g, w)
            for w in sorted(widths, reverse=True)]
        for label, model, weights, w in rows:
            psnr = scores(model, scale, weights, sets, None if w is None else {"width": w})
            gf = net.macs((180, 320), scale, 1.0 if w is None else w, encoder_only=True) / 1e9
            print(f"| x{scale:g} | {label} | {'' if w is None else w} | {gf:.1f} | "
                  + " | ".join(f"{psnr[k]:.4f}" for k in sets) + " |", flush=True)
    return 0


def ship(overwrite: bool) -> int:
    """Stage G's final (EMA) weights into the package as ``anysr_srno_edsr.safetensors``, with how they
    were trained and their Y-PSNR at x2 / x3 / x4 (standard protocol) in the metadata, in the default
    mode (each scale's group sub-network: width 0.7 / 0.9 / 1.0; ``table`` has the full network)."""
    from lightsr.checkpoint import read_metadata, read_state_dict, save_weights
    from lightsr.models.registry import WEIGHTS_DIR

    if not (finished(run_dir("S")) and finished(run_dir("G"))):
        raise SystemExit("both stages must finish first")
    src = run_dir("G") / "final.safetensors"
    steps = {k: json.loads((run_dir(k) / "config.json").read_text())["iters"] for k in STEPS}
    cpu_h = sum(cpu_minutes(run_dir(k)) for k in STEPS) / 60
    meta = {"model": "anysr_srno_edsr", "scale": "any (1-4 trained; x4 file)", "step": sum(steps.values()),
            "steps": steps, "recipe": "experiments/anysr_study.py: S (SRNO-EDSR, s ~ U(1, 4)) then G (AnySR "
            "Algorithm 1)", "seed": 1, "cpu_hours": round(cpu_h, 2), "ema": True,
            "data": "BSDS400 + T91 (10 BSDS400 images held out for validation)",
            "val_psnr_y": read_metadata(src).get("val_psnr_y"),
            "commit": head_commit(), "run": str(run_dir("G").relative_to(ROOT))}
    for scale in (2, 3, 4):
        psnr = scores("anysr_srno_edsr", scale, src, SHIP_SETS)
        meta.update({f"{k.lower()}_x{scale}_psnr_y": round(v, 4) for k, v in psnr.items()})
        print(f"x{scale}: " + ", ".join(f"{k} {v:.4f}" for k, v in psnr.items()), flush=True)
    dst = WEIGHTS_DIR / "anysr_srno_edsr.safetensors"
    save_weights(read_state_dict(src), dst, meta, overwrite=overwrite)
    print(json.dumps(meta, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("stage", choices=["S", "G"])
    r.add_argument("--time_limit", type=float, default=None, help="minutes in this call")
    t = sub.add_parser("table")
    t.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    t.add_argument("--scales", nargs="+", type=float, default=[1.5, 2.0, 2.5, 3.0, 4.0])
    t.add_argument("--all_widths", action="store_true", help="every width at every scale")
    sh = sub.add_parser("ship")
    sh.add_argument("--overwrite", action="store_true", help="replace the shipped file")
    args = p.parse_args(argv)
    if args.cmd == "ship":
        return ship(args.overwrite)
    return run(args.stage, args.time_limit) if args.cmd == "run" else table(args.sets, args.scales, args.all_widths)


if __name__ == "__main__":
    sys.exit(main())
