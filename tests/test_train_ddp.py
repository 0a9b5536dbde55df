"""DDP as users run it: ``torchrun --nproc_per_node 2 -m lightsr train ...`` on CPU (gloo), two
processes of one thread each, against one process with twice the batch.

What must hold (and is checked here):

* same data order and averaged gradients: after N = 4 Adam steps (lr 2e-3, EMA 0.9, clipping) the
  logged loss of every step within 2e-6 of the one-process run's (L1 about 0.5, logged to 6 decimals:
  the curves agree to the last digit) and the final (EMA) weights within 1e-6 (measured: 3e-8; the
  gloo all-reduce adds the two halves' gradients in another order than one process's batch does);
* every file written once, by rank 0 (log rows, validation rows, best/final weights, one checkpoint
  directory per save holding both ranks' RNG states, one ``sessions.csv`` row per launch);
* ``--resume`` under two processes, given only ``--out DIR --resume``, exact: ``torch.equal`` weights
  and the same loss curve as the uninterrupted two-process run.

It is in the default suite (not ``slow``): three torchrun launches of a 4-channel RLFN-S, 30 to 55 s
(most of it importing torch in three processes per launch).
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightsr.checkpoint import read_metadata, read_state_dict
from test_train import folder  # noqa: F401  (the tiny-images fixture)

ROOT = Path(__file__).resolve().parents[1]
LOSS_TOL, WEIGHT_TOL = 2e-6, 1e-6


def flags(folder, out, batch: int) -> list[str]:
    return ["--model", "rlfn_s", "--opt", "channels=4", "--opt", "mid_channels=4", "--opt", "num_blocks=1",
            "--train_dir", str(folder), "--val_dir", str(folder), "--scale", "2", "--lr_patch", "8",
            "--batch_size", str(batch), "--iters", "4", "--lr", "2e-3", "--ema", "0.9", "--clip_grad", "1",
            "--device", "cpu", "--seed", "5", "--no_progress", "--val_every", "2", "--save_every", "2",
            "--keep", "5", "--log_every", "1", "--deterministic", "--precision", "fp32", "--out", str(out)]


def torchrun(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src"),
           "LIGHTSR_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lightsr", "train", *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def rows(out) -> list[dict]:
    with open(Path(out) / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def losses(out) -> list[float]:
    return [float(r["loss"]) for r in rows(out) if r["loss"]]


@pytest.fixture(scope="module")
def gloo_ok():
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("this torch build has no gloo backend (torch.distributed.is_gloo_available() is False)")


def test_two_processes_match_one_and_resume_exactly(folder, tmp_path, monkeypatch, gloo_ok):  # noqa: F811
    from lightsr.cli.train import main

    two = tmp_path / "two"
    r = torchrun(flags(folder, two, 2), tmp_path)
    assert r.stderr.count("lightsr train: 4/4 steps") == 1  # reports from rank 0 only
    monkeypatch.setenv("LIGHTSR_CACHE", str(tmp_path / "cache"))
    assert main(flags(folder, tmp_path / "one", 4)) == 0

    # same data, averaged gradients: the loss curve and the weights of one process at batch 4
    l2, l1 = losses(two), losses(tmp_path / "one")
    assert len(l2) == len(l1) == 4 and max(abs(a - b) for a, b in zip(l2, l1)) <= LOSS_TOL, (l2, l1)
    wa, wb = read_state_dict(two / "final.safetensors"), read_state_dict(tmp_path / "one" / "final.safetensors")
    assert set(wa) == set(wb) and max((wa[k] - wb[k]).abs().max().item() for k in wa) <= WEIGHT_TOL

    # written once: log and validation rows, checkpoints (both ranks' RNG), best weights, sessions
    log = rows(two)
    assert [r["step"] for r in log if r["loss"]] == ["1", "2", "3", "4"]
    assert [r["step"] for r in log if r["val_psnr_y"]] == ["2", "4"]
    assert sorted(p.name for p in (two / "ckpt").iterdir()) == ["step_00000002", "step_00000004"]
    assert sorted(p.name for p in (two / "ckpt" / "step_00000002").iterdir()) == [
        "ema.safetensors", "model.safetensors", "rng_rank0.pt", "rng_rank1.pt", "state.json", "state.pt"]
    assert read_metadata(two / "best.safetensors")["step"] in (2, 4)
    assert len((two / "sessions.csv").read_text().splitlines()) == 2

    # stopped at step 2 and resumed with `--out DIR --resume` alone: bit for bit the uninterrupted run
    part = tmp_path / "part"
    torchrun(flags(folder, part, 2) + ["--stop_after", "2"], tmp_path)
    assert not (part / "final.safetensors").exists()
    r = torchrun(["--out", str(part), "--resume"], tmp_path)
    assert r.stderr.count("resumed") == 1
    wc = read_state_dict(part / "final.safetensors")
    assert all(torch.equal(wa[k], wc[k]) for k in wa)
    assert losses(part) == l2 and [r["val_psnr_y"] for r in rows(part)] == [r["val_psnr_y"] for r in log]
    assert len((part / "sessions.csv").read_text().splitlines()) == 3
