"""Training-side behaviours no other test pins down: the EMA really averages, ``best.safetensors`` holds
the best validation step (not the last), and evaluating a model then training it in one process works
(index / mask tables first built under ``torch.inference_mode`` must still serve autograd)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from lightsr.checkpoint import read_metadata, read_state_dict
from lightsr.train import EMA, Trainer
from test_train import TinySR, cfg_for, folder, fresh  # noqa: F401  (folder: the tiny-images fixture)


def test_ema_update_by_hand():
    """``ema = d ema + (1 - d) w``; with warm-up ``d_t = min(d, (1 + t) / (10 + t))``; buffers copied."""
    model = nn.BatchNorm1d(2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([1.0, 2.0]))
    ema = EMA(model, 0.9)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([3.0, 6.0]))
        model.running_mean.fill_(5.0)
    ema.update(model)  # d = 0.9
    assert ema.module.weight.tolist() == pytest.approx([0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * 6])
    assert ema.module.running_mean.tolist() == [5.0, 5.0]
    ema.update(model, t=1)  # d_1 = 2/11
    w = 0.9 * 1 + 0.1 * 3
    assert ema.module.weight[0].item() == pytest.approx(2 / 11 * w + 9 / 11 * 3)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10**6) == 0.9


def test_trainer_ema_follows_the_recursion(folder, tmp_path):  # noqa: F811
    """The saved EMA of steps 1..3 is the warm-up recursion of the saved raw weights (not a copy of them)."""
    run = tmp_path / "run"
    init = {k: v.clone() for k, v in fresh().state_dict().items()}
    Trainer(cfg_for(folder, run, iters=3, save_every=1, keep=5, warmup=0), model=fresh()).fit()
    prev = init
    for step in (1, 2, 3):
        ck = run / "ckpt" / f"step_{step:08d}"
        w, e = read_state_dict(ck / "model.safetensors"), read_state_dict(ck / "ema.safetensors")
        d = min(0.9, step / (9 + step))  # update t = step - 1
        for k in w:
            assert torch.allclose(e[k], d * prev[k] + (1 - d) * w[k], atol=1e-6), (step, k)
        assert any(not torch.equal(e[k], w[k]) for k in w)
        prev = e


def test_best_holds_the_best_step_not_the_last(folder, tmp_path):  # noqa: F811
    """Validation at steps 2 and 4; the update making step 3 is followed by ruined weights (output + 2), so step 4's
    PSNR is far lower: best.safetensors must keep step 2's weights while final.safetensors has step 4's."""
    def hook(step, model, batch):
        def ruin():
            if step == 2:  # the update that makes step 3
                with torch.no_grad():
                    model.upsample[0].bias.add_(2.0)  # every HR pixel + 2: white once clamped
        return {"after_step": ruin}

    run = tmp_path / "run"
    cfg = cfg_for(folder, run, iters=4, val_dir=str(folder), val_every=2, save_every=2, keep=5, ema=0.0)
    res = Trainer(cfg, model=fresh(), hook=hook).fit()
    assert math.isfinite(res["final_psnr"]) and res["final_psnr"] < res["best_psnr"] - 3
    meta = read_metadata(run / "best.safetensors")
    assert meta["step"] == 2 and meta["val_psnr_y"] == pytest.approx(res["best_psnr"])
    best, at2 = read_state_dict(run / "best.safetensors"), read_state_dict(run / "ckpt/step_00000002/model.safetensors")
    assert all(torch.equal(best[k], at2[k]) for k in best)
    final = read_state_dict(run / "final.safetensors")
    assert not torch.equal(final["upsample.0.bias"], best["upsample.0.bias"])
    log = [r.split(",") for r in (run / "log.csv").read_text().splitlines()[1:]]
    psnr = {int(r[0]): float(r[-1]) for r in log if r[-1]}
    assert psnr[2] == pytest.approx(res["best_psnr"], abs=1e-4) and psnr[4] < psnr[2]


def _clear_table_caches() -> None:
    """Forget the process-wide index / mask tables, so this test builds them first under inference_mode."""
    from lightsr.layers import attention, window

    for mod in (window, attention):
        for obj in vars(mod).values():
            if callable(getattr(obj, "cache_clear", None)):
                obj.cache_clear()


def test_evaluate_then_train_in_one_process(folder, tmp_path):  # noqa: F811
    """evaluate() (inference_mode) a window-attention model, then train it (validating in between):
    the cached relative-position index and shifted-window mask must not be inference tensors."""
    from lightsr.evaluate import evaluate
    from lightsr.models.swinir import SwinIR

    torch.manual_seed(0)
    model = SwinIR(2, dim=12, depths=(2,), heads=2, window=4, drop_path_rate=0.0)
    _clear_table_caches()
    before = evaluate(model, [folder], scale=2, progress=False)
    cfg = cfg_for(folder, tmp_path / "run", iters=4, val_dir=str(folder), val_every=2, ema=0.0, precision="fp32")
    res = Trainer(cfg, model=model).fit()
    assert res["step"] == 4 and math.isfinite(res["final_psnr"])
    after = evaluate(model, [folder], scale=2, progress=False)
    assert after[folder.name]["psnr"] != before[folder.name]["psnr"]  # it trained
