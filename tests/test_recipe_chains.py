"""Every recipe end to end on tiny data, with validation on, in the chains the papers use, through
the command line users type: C2D stage 1 -> stage 2 (from a finished and from a stopped stage 1,
on RLFN-S: C2D for any network), HASN stage 1 -> stage 2 at a kept milestone, SRNO -> AnySR,
``cpu_long`` and the study notes' literal command. Each checks the files the run must leave and what
the transfer loaded."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightsr.checkpoint import read_state_dict
from lightsr.cli import main
from lightsr.models import create_model

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "lightsr" / "assets" / "sample.png"
TINY = ["--batch_size", "2", "--lr_patch", "12", "--holdout", "1", "--no_progress", "--log_every", "1"]


@pytest.fixture(scope="module")
def hr(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hr")
    im = np.asarray(Image.open(SAMPLE).convert("RGB"))
    for i in range(6):
        Image.fromarray(im[10 + 20 * i:74 + 20 * i, 20 + 20 * i:84 + 20 * i]).save(d / f"{i}.png")
    return d


def _train(*args) -> int:
    return main(["train", *map(str, args)])


def _validated(run: Path) -> list[float]:
    rows = list(csv.DictReader(open(run / "log.csv")))
    return [float(r["val_psnr_y"]) for r in rows if r.get("val_psnr_y")]


def _finished(run: Path, validated: bool = True) -> None:
    for name in ("final.safetensors", "config.json", "log.csv", "sessions.csv"):
        assert (run / name).is_file(), f"{run} lacks {name}"
    if validated:
        assert (run / "best.safetensors").is_file() and _validated(run)


@pytest.mark.parametrize("stopped", [False, True], ids=["finished", "stopped"])
def test_c2d_stage1_then_stage2_on_rlfn_s(hr, tmp_path, capsys, stopped):
    """Stage 1 trains ``rlfn_s_hiif`` (RLFN-S's body + HIIF-L); stage 2 takes every body tensor from
    it (eq. 10) and a fresh PixelShuffle head, fitted alone first (``--head_warmup``)."""
    s1, s2 = tmp_path / "s1", tmp_path / "s2"
    extra = ["--stop_after", 3, "--val_every", 0] if stopped else ["--val_every", 2]
    assert _train("--recipe", "c2d_stage1", "--model", "rlfn_s", "--scale", 3, "--train_dir", hr, "--iters", 4,
                  "--out", s1, "--save_every", 2, *TINY, *extra) == 0
    if stopped:
        assert not (s1 / "final.safetensors").exists() and not (s1 / "best.safetensors").exists()
    else:
        _finished(s1)
    newest = sorted((s1 / "ckpt").glob("step_*"))[-1]
    sd1 = read_state_dict(newest / "model.safetensors")
    assert any(k.startswith("encoder.B1.") for k in sd1) and any(k.startswith("fc_layers.") for k in sd1)
    capsys.readouterr()
    assert _train("--recipe", "c2d_stage2", "--model", "rlfn_s", "--scale", 4, "--train_dir", hr, "--iters", 4,
                  "--out", s2, "--init", s1, "--head_warmup", 2, "--head_lr", 1e-3, "--val_every", 2, *TINY) == 0
    assert json.loads((s2 / "config.json").read_text())["head_lr"] == 1e-3  # the head-only phase's LR, recorded
    err = capsys.readouterr().err
    body = [k for k in create_model("rlfn_s", 4).state_dict() if not k.startswith("upsampler.")]
    assert f"{len(body)} tensors loaded" in err and "head kept at init: 2" in err, err
    if stopped:
        assert f"newest step checkpoint {newest}" in err, err
    _finished(s2)
    final = read_state_dict(s2 / "final.safetensors")
    assert not any(k.startswith(("encoder.", "fc_layers.", "attn.")) for k in final)


def test_head_warmup_freezes_the_body(hr, tmp_path):
    """During ``--head_warmup`` only the head changes; afterwards the body trains too."""
    s1, a, b = tmp_path / "s1", tmp_path / "a", tmp_path / "b"
    assert _train("--recipe", "c2d_stage1", "--model", "rlfn_s", "--train_dir", hr, "--iters", 2, "--out", s1,
                  "--val_every", 0, "--ema", 0, *TINY) == 0
    common = ["--recipe", "c2d_stage2", "--model", "rlfn_s", "--scale", 2, "--train_dir", hr, "--init", s1,
              "--val_every", 0, "--ema", 0, "--lr", 1e-3, *TINY]
    assert _train(*common, "--iters", 3, "--head_warmup", 3, "--out", a) == 0
    assert _train(*common, "--iters", 4, "--head_warmup", 3, "--out", b) == 0
    start = {k[len("encoder."):]: v for k, v in read_state_dict(s1 / "final.safetensors").items()
             if k.startswith("encoder.")}
    wa, wb = read_state_dict(a / "final.safetensors"), read_state_dict(b / "final.safetensors")
    assert all((wa[k] == v).all() for k, v in start.items()), "the body moved during the head warm-up"
    assert not (wa["upsampler.0.weight"] == create_model("rlfn_s", 2).upsampler[0].weight).all()
    assert any(not (wb[k] == v).all() for k, v in start.items()), "the body never trained after the warm-up"


def test_hasn_stage1_then_stage2_from_a_kept_milestone(hr, tmp_path, capsys):
    """HASN's warm start: stage 2 from stage 1's milestone step (``--keep_steps``), which pruning
    (``--keep 1``) leaves in place; L1 + KL in stage 2; every tensor loaded (same network)."""
    s1, s2 = tmp_path / "s1", tmp_path / "s2"
    assert _train("--recipe", "hasn_stage1", "--train_dir", hr, "--iters", 4, "--out", s1, "--save_every", 1,
                  "--keep", 1, "--keep_steps", 2, "--val_every", 2, *TINY) == 0
    _finished(s1)
    milestone = s1 / "ckpt" / "step_00000002"
    assert milestone.is_dir() and len(list((s1 / "ckpt").glob("step_*"))) == 2  # the milestone + the newest
    capsys.readouterr()
    assert _train("--recipe", "hasn_stage2", "--train_dir", hr, "--iters", 2, "--out", s2, "--init", milestone,
                  "--val_every", 2, *TINY) == 0
    err = capsys.readouterr().err
    n = len(create_model("hasn", 4).state_dict())
    assert f"{n} tensors loaded" in err and "head kept" not in err.replace("head kept at init: 0", ""), err
    _finished(s2)


def test_srno_then_anysr(hr, tmp_path, capsys):
    """AnySR's Algorithm 1 starts from a trained arbitrary-scale model (here SRNO-EDSR, 2 steps)."""
    s1, s2 = tmp_path / "srno", tmp_path / "anysr"
    assert _train("--model", "srno_edsr", "--scale", 2, "--train_dir", hr, "--iters", 2, "--out", s1,
                  "--val_every", 2, "--lr", 1e-4, *TINY) == 0
    _finished(s1)
    capsys.readouterr()
    assert _train("--recipe", "anysr", "--scale", 2, "--train_dir", hr, "--iters", 2, "--out", s2, "--init", s1,
                  "--val_every", 2, *TINY) == 0
    assert "loaded" in capsys.readouterr().err
    _finished(s2)


def test_cpu_long_recipe(hr, tmp_path):
    run = tmp_path / "cpu_long"
    assert _train("--recipe", "cpu_long", "--scale", 4, "--train_dir", hr, "--iters", 2, "--out", run,
                  "--val_every", 2, *TINY) == 0
    _finished(run)


def test_study_notes_literal_command(hr, tmp_path, monkeypatch):
    """Seed 004's command as printed (``--train_dir --val_dir --scale --epochs --batch_size --patch_size``)."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--train_dir", str(hr), "--val_dir", str(hr), "--scale", "2", "--epochs", "1",
                 "--batch_size", "4", "--patch_size", "32", "--no_progress"]) == 0
    run = tmp_path / "runs" / "rdb_esa_x2"
    _finished(run)
    assert read_state_dict(run / "final.safetensors").keys() == create_model("rdb_esa", 2).state_dict().keys()
