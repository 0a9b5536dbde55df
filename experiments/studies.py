"""What every claim study in experiments/ shares: run or resume one arm, its CPU time, its scores.

The study scripts (``c2d_claim.py``, ``hasn_warm.py``, ``anysr_study.py``) each define their arms as
changes to a recipe and call these; a run directory is a ``lightsr train`` run (config.json,
sessions.csv, ckpt/, final.safetensors), committed so the next session resumes it.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT.parent / "shared" / "data" / "benchmark"
SETS = ("Set5", "Set14", "BSD100")


def run_arm(cfg, time_limit: float | None) -> int:
    """Train ``cfg`` (resuming its run directory when one exists) for at most ``time_limit`` minutes."""
    from lightsr.train.engine import train

    cfg.time_limit, cfg.progress = time_limit, False
    resume = (ROOT / cfg.out / "config.json").is_file()
    res = train(cfg, resume=resume)
    return 0 if res.get("step") else 1


def cpu_minutes(run: Path) -> float:
    """CPU-minutes a run has used, over all its sessions (sessions.csv)."""
    return sum(float(r["cpu_min"]) for r in csv.DictReader(open(run / "sessions.csv")))


def head_commit() -> str:
    """The repository's short HEAD commit, for a shipped file's metadata."""
    import subprocess

    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()


def finished(run: Path) -> bool:
    return (run / "final.safetensors").is_file()


def evaluate_sets(model: str, scale: float, weights: Path | str, sets=SETS, options: dict | None = None) -> dict:
    """``lightsr.evaluate.evaluate`` (standard protocol) of ``model`` with ``weights`` on each benchmark set."""
    import torch

    from lightsr.evaluate import evaluate
    from lightsr.models import build_model

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))
    return evaluate(build_model(model, scale, str(weights), options), [BENCH / s for s in sets], scale,
                    progress=False)


def scores(model: str, scale: float, weights: Path | str, sets=SETS, options: dict | None = None) -> dict[str, float]:
    """Y-PSNR (standard protocol) of ``model`` with ``weights`` on each benchmark set."""
    res = evaluate_sets(model, scale, weights, sets, options)
    return {s: res[s]["psnr"] for s in sets}
