"""HASN x2 and x3 initialised from the shipped x4 weights (the paper trains x2 / x3 / x4 apart; the
field's habit, and ours at CPU scale, is to start the smaller scales from the x4 body).

    python experiments/hasn_scales.py run 2 [--time_limit MIN]   # resumes when the run exists
    python experiments/hasn_scales.py run 3
    python experiments/ship_weights.py experiments/long_runs/hasn_x2   # then register it in models/hasn.py

Each run: ``cpu_long`` (BSDS400 + T91, batch 16, LR patch 48, EMA, bf16 + compile, 10 held-out
images) with the whole body from ``hasn_x4.safetensors`` and a fresh PixelShuffle head
(``upsampler.*``, another shape at x2 / x3), which trains alone for HEAD_WARMUP steps at the peak LR
(the C2D stage-2 pilot: a fresh head settles within ~200 steps), then the whole network for the rest
with a 200-step warm-up and cosine decay from LR (below cpu_long's 5e-4: keep the transferred body).
"""
from __future__ import annotations

import argparse
import sys

from studies import ROOT, run_arm

ITERS, LR, HEAD_WARMUP = 2_000, 2e-4, 200


def config(scale: int):
    from lightsr.models import get_entry
    from lightsr.train.recipes import cpu_long

    cfg = cpu_long(scale, "hasn")
    cfg.init = str(get_entry("hasn").shipped_weights(4).relative_to(ROOT))
    cfg.iters, cfg.lr, cfg.warmup, cfg.head_warmup = ITERS, LR, 200, HEAD_WARMUP
    cfg.val_every = cfg.save_every = 500
    cfg.compile, cfg.seed = True, 1
    cfg.out = f"experiments/long_runs/hasn_x{scale}"
    return cfg


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("scale", type=int, choices=[2, 3])
    r.add_argument("--time_limit", type=float, default=None, help="minutes in this call")
    args = p.parse_args(argv)
    return run_arm(config(args.scale), args.time_limit)


if __name__ == "__main__":
    sys.exit(main())
