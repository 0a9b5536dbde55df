"""Set5 / Set14 PSNR of the latest checkpoint (raw weights and EMA) of training runs, with the CPU
time each run has used (sessions.csv): the architecture comparison of results/training.md.

    python experiments/compare_runs.py experiments/long_runs/rlfn_s_x4 experiments/long_runs/rdb_esa_x4
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SETS = [ROOT.parent / "shared" / "data" / "benchmark" / s for s in ("Set5", "Set14")]


def main(runs: list[str]) -> int:
    from lightsr.evaluate import evaluate
    from lightsr.models import build_model

    torch.set_num_threads(2)
    rows = []
    for run in map(Path, runs):
        cfg = json.loads((run / "config.json").read_text())
        last = sorted((run / "ckpt").glob("step_*"))[-1]
        state = json.loads((last / "state.json").read_text())
        cpu = sum(float(r["cpu_min"]) for r in csv.DictReader(open(run / "sessions.csv")))
        for kind in ("model", "ema"):
            m = build_model(cfg["model"], cfg["scale"], str(last / f"{kind}.safetensors"))
            res = evaluate(m, SETS, cfg["scale"], progress=False)
            rows.append((cfg["model"], kind, state["step"], cpu, res["Set5"]["psnr"], res["Set14"]["psnr"]))
            print(f"| {rows[-1][0]} | {kind} | {rows[-1][2]} | {cpu:.1f} | {rows[-1][4]:.4f} | {rows[-1][5]:.4f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    print("| model | weights | step | CPU-min | Set5 x4 | Set14 x4 |\n|---|---|---|---|---|---|")
    sys.exit(main(sys.argv[1:]))
