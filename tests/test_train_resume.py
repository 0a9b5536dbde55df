"""Exact resume of models that draw random numbers while training (DropPath, Gumbel routing), and
``lightsr train --resume`` from the run's config.json alone."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from lightsr.checkpoint import read_state_dict
from lightsr.train import Trainer
from test_train import cfg_for, folder  # noqa: F401  (the fixture of tiny training images)


def tiny_swinir() -> nn.Module:
    """SwinIR's blocks with stochastic depth (DropPath 0.5): every training step draws from torch's RNG."""
    from lightsr.models.swinir import SwinIR

    torch.manual_seed(3)
    return SwinIR(2, dim=12, depths=(2,), heads=2, window=4, drop_path_rate=0.5)


def tiny_mambairv2() -> nn.Module:
    """MambaIRv2's attentive layers: training routes tokens with gumbel_softmax (random)."""
    from lightsr.layers.skeleton import LightweightSR
    from lightsr.models.mambairv2 import AttentiveLayers

    torch.manual_seed(3)
    body = AttentiveLayers(depth=2, window=4, dim=12, heads=2, d_state=4, inner_rank=8, num_tokens=8,
                           mlp_ratio=1.0)
    return LightweightSR([body], dim=12, scale=2, pad_multiple=4, pad_mode="symmetric")


@pytest.mark.parametrize("make", [tiny_swinir, tiny_mambairv2], ids=["droppath", "routing"])
def test_resume_exact_with_random_layers(folder, tmp_path, make):  # noqa: F811
    """4 steps straight == 2 steps, stop, resume, 2 steps: torch.equal weights (the DataLoader's
    iterator must not draw from the global generator that the checkpoint restored)."""
    kw = dict(iters=4, precision="fp32", ema=0.0)
    a = Trainer(cfg_for(folder, tmp_path / "a", **kw), model=make()).fit()
    Trainer(cfg_for(folder, tmp_path / "b", stop_after=2, **kw), model=make()).fit()
    b = Trainer(cfg_for(folder, tmp_path / "b", **kw), model=make(), resume=True).fit()
    wa = read_state_dict(Path(a["checkpoint"]) / "model.safetensors")
    wb = read_state_dict(Path(b["checkpoint"]) / "model.safetensors")
    assert a["step"] == b["step"] == 4 and set(wa) == set(wb)
    assert all(torch.equal(wa[k], wb[k]) for k in wa), max((wa[k] - wb[k]).abs().max().item() for k in wa)
    # the model does draw random numbers in training (else this test would prove nothing)
    m, x = make().train(), torch.rand(1, 3, 8, 8)
    assert not torch.equal(m(x), m(x))


# ---- `lightsr train` from the command line: --resume alone, Ctrl-C, a full disk ---------------------

def cli_args(folder, out, *extra: str) -> list[str]:
    """A tiny registered model (RLFN-S at 4 channels) on the tiny images, 6 steps, a checkpoint every 2."""
    return ["--model", "rlfn_s", "--opt", "channels=4", "--opt", "mid_channels=4", "--opt", "num_blocks=1",
            "--train_dir", str(folder), "--scale", "2", "--lr_patch", "8", "--batch_size", "2", "--iters", "6",
            "--lr", "2e-3", "--ema", "0.9", "--device", "cpu", "--seed", "5", "--no_progress", "--val_every", "0",
            "--save_every", "2", "--log_every", "1", "--deterministic", "--holdout", "0", "--precision", "fp32",
            "--out", str(out), *extra]


@pytest.fixture
def cli(monkeypatch, tmp_path):
    """``lightsr train ...`` in this process; the LR cache in tmp_path."""
    from lightsr.cli.train import main

    monkeypatch.setenv("LIGHTSR_CACHE", str(tmp_path / "cache"))
    return main


def final_weights(out) -> dict:
    return read_state_dict(Path(out) / "final.safetensors")


def test_cli_resume_needs_only_out(folder, tmp_path, cli, capsys):  # noqa: F811
    """``--out DIR --resume`` takes every setting from DIR/config.json; a flag that would break exact
    resume is refused in one line, a runtime flag (``--keep``) is accepted."""
    assert cli(cli_args(folder, tmp_path / "a")) == 0
    assert cli(cli_args(folder, tmp_path / "b", "--stop_after", "2")) == 0
    capsys.readouterr()
    assert cli(["--out", str(tmp_path / "b"), "--resume", "--lr", "1e-2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lightsr: error: --resume: settings differ") and "lr: 0.002 -> 0.01" in err[-1]
    assert cli(["--out", str(tmp_path / "b"), "--resume", "--keep", "1"]) == 0
    assert "resumed" in capsys.readouterr().err
    wa, wb = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [p.name for p in (tmp_path / "b" / "ckpt").iterdir()] == ["step_00000006"]  # --keep 1 applied


def test_cli_ctrl_c_exits_130_with_a_checkpoint(folder, tmp_path, cli, monkeypatch, capsys):  # noqa: F811
    """SIGINT during training: the step finishes, a checkpoint is written, exit status 130."""
    import os
    import signal

    real = Trainer.train_step

    def step_then_ctrl_c(self, batch):
        loss = real(self, batch)
        if self.step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return loss

    monkeypatch.setattr(Trainer, "train_step", step_then_ctrl_c)
    out = tmp_path / "run"
    assert cli(cli_args(folder, out)) == 130
    assert "stopped at step 3/6" in capsys.readouterr().err
    assert (out / "ckpt" / "step_00000003" / "state.json").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back


def test_cli_full_disk_keeps_the_previous_checkpoint(folder, tmp_path, cli, monkeypatch, capsys):  # noqa: F811
    """ENOSPC while writing the step-4 checkpoint: one line naming it, exit 2, no partial directory;
    the step-2 checkpoint is intact and the run resumes from it to the same weights as a straight run."""
    import errno

    import lightsr.checkpoint as ck

    real = ck.save_weights

    def full_at_step_4(state, path, *a, **kw):
        if "step_00000004" in str(path):
            Path(path).write_bytes(b"\0" * 10)  # a partial file, as a full disk leaves
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(state, path, *a, **kw)

    monkeypatch.setattr(ck, "save_weights", full_at_step_4)
    out = tmp_path / "run"
    assert cli(cli_args(folder, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"lightsr: error: no space left on device: {out / 'ckpt' / 'step_00000004'}"
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["step_00000002"]
    assert sorted(p.name for p in (out / "ckpt" / "step_00000002").iterdir()) == [
        "ema.safetensors", "model.safetensors", "rng_rank0.pt", "state.json", "state.pt"]
    monkeypatch.setattr(ck, "save_weights", real)
    assert cli(["--out", str(out), "--resume"]) == 0
    assert cli(cli_args(folder, tmp_path / "straight")) == 0
    wa, wb = final_weights(out), final_weights(tmp_path / "straight")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
