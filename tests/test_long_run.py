"""The committed state of the long training run behind the shipped weights (experiments/long_runs/)
resumes exactly on any machine: the next session continues it from the repository alone."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import ROOT, TRAIN_DATA, need
from lightsr.checkpoint import read_state_dict
from lightsr.train import TrainConfig, Trainer

RUN = ROOT / "experiments" / "long_runs" / "rlfn_s_x4"


def _config(out: Path, stop_after: int) -> TrainConfig:
    saved = json.loads((RUN / "config.json").read_text())
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in saved.items() if k in names})
    cfg.betas, cfg.init_head = tuple(cfg.betas), tuple(cfg.init_head)
    cfg.train_dirs = [str(need(TRAIN_DATA / Path(d).name)) for d in saved["train_dirs"]]
    cfg.out, cfg.stop_after, cfg.progress, cfg.cache_dir = str(out), stop_after, False, None
    return cfg


def _copy_state(dst: Path) -> Path:
    last = sorted((RUN / "ckpt").glob("step_*"))[-1]
    (dst / "ckpt").mkdir(parents=True)
    shutil.copy(RUN / "config.json", dst / "config.json")
    shutil.copytree(last, dst / "ckpt" / last.name)
    return last


def test_committed_run_state_resumes_exactly(tmp_path):
    """Resume the committed checkpoint for 2 steps straight, and for 1 + 1 steps with a stop and a
    second resume in between: the same weights bit for bit, 2 steps after the committed step."""
    if not (RUN / "ckpt").is_dir():
        pytest.fail(f"{RUN}/ckpt is missing: the long run's resumable state must be committed")
    last = _copy_state(tmp_path / "a")
    _copy_state(tmp_path / "b")
    step0 = json.loads((last / "state.json").read_text())["step"]
    torch.set_num_threads(1)
    try:
        a = Trainer(_config(tmp_path / "a", 2), resume=True)
        assert a.step == step0
        res_a = a.fit()
        Trainer(_config(tmp_path / "b", 1), resume=True).fit()
        res_b = Trainer(_config(tmp_path / "b", 1), resume=True).fit()
    finally:
        torch.set_num_threads(2)
    assert res_a["step"] == res_b["step"] == step0 + 2
    for name in ("model.safetensors", "ema.safetensors"):
        wa, wb = read_state_dict(Path(res_a["checkpoint"]) / name), read_state_dict(Path(res_b["checkpoint"]) / name)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    moved = read_state_dict(last / "model.safetensors")
    assert any(not torch.equal(moved[k], wa[k]) for k in wa)  # it trained


def test_committed_run_log_and_sessions():
    """Each session appended its CPU minutes and its validation on held-out BSDS400 images."""
    rows = (RUN / "sessions.csv").read_text().splitlines()
    assert rows[0].split(",")[:8] == ["started", "host", "threads", "precision", "start_step", "end_step",
                                      "wall_min", "cpu_min"]
    assert len(rows) >= 2
    state = json.loads(sorted((RUN / "ckpt").glob("step_*"))[-1].joinpath("state.json").read_text())
    assert len(state["val_files"]) == 10 and state["model"] == "rlfn_s"
