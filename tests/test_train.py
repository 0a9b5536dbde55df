"""Training engine: losses (HASN KL by hand), schedules, exact resume, --init, continuous models,
run-directory safety and CLI spellings (torchrun: test_train_ddp.py)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from lightsr.checkpoint import read_state_dict
from lightsr.errors import LightSRError
from lightsr.train import TrainConfig, Trainer, get_recipe, init_from, lr_at
from lightsr.train.losses import charbonnier, kl_divergence, l1, l1_kl


# ---- tiny models ----------------------------------------------------------------------------------

class TinySR(nn.Module):
    """conv -> ReLU -> conv -> PixelShuffle, plus a bicubic-free nearest skip."""

    def __init__(self, scale=2, c=8):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1))
        self.upsample = nn.Sequential(nn.Conv2d(c, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x):
        return self.upsample(self.body(x)) + nn.functional.interpolate(x, scale_factor=self.scale)


class TinyImplicit(nn.Module):
    """A continuous model with the engine's calling convention: model(lr, scale=, coord=, cell=)."""

    continuous = True

    def __init__(self):
        super().__init__()
        self.body = nn.Conv2d(3, 8, 3, padding=1)
        self.out = nn.Linear(8 + 2, 3)
        self.seen = []

    def forward(self, x, scale=None, coord=None, cell=None, width=1.0):
        self.seen.append((scale, tuple(coord.shape), tuple(cell.shape), width))
        f = F.grid_sample(self.body(x), coord.flip(-1), mode="bilinear", align_corners=False)
        rel = (cell * torch.tensor(x.shape[-2:])).view(-1, 2, 1, 1).expand(-1, -1, *coord.shape[1:3])
        y = self.out(torch.cat([f, rel], 1).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return y + F.grid_sample(x, coord.flip(-1), mode="bilinear", align_corners=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    g = torch.Generator().manual_seed(1)
    for i in range(5):
        x = torch.rand(3, 8, 8, generator=g)
        x = F.interpolate(x[None], size=(60, 64), mode="bicubic", align_corners=False)[0]
        Image.fromarray((x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()).save(d / f"{i}.png")
    return d


def cfg_for(folder, out, **kw) -> TrainConfig:
    base = dict(model="tiny", scale=2, train_dirs=[str(folder)], val_dir=None, holdout=0, out=str(out), lr_patch=8,
                batch_size=4, iters=6, lr=2e-3, schedule="cosine", warmup=2, ema=0.9, clip_grad=1.0,
                deterministic=True, device="cpu", progress=False, log_every=1, val_every=0, save_every=0,
                cache_dir=None, seed=5)
    base.update(kw)
    return TrainConfig(**base)


def fresh(seed: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    return TinySR()


def weights(path) -> dict:
    return read_state_dict(path)


# ---- losses ---------------------------------------------------------------------------------------


def test_kl_loss_by_hand():
    """softmax over RGB per pixel, KL(P_HR || P_SR), mean over B*C*H*W (official HASN KLLoss)."""
    pred = torch.log(torch.tensor([1.0, 2.0, 3.0])).view(1, 3, 1, 1)  # P_SR = (1/6, 2/6, 3/6)
    target = torch.zeros(1, 3, 1, 1)  # P_HR = (1/3, 1/3, 1/3)
    # sum_i P_HR log(P_HR / P_SR) = (ln 2 + ln 1 + ln(2/3)) / 3 = ln(4/3) / 3, averaged over 3 elements
    expect = math.log(4 / 3) / 9
    assert kl_divergence(pred, target).item() == pytest.approx(expect, abs=1e-6)
    assert l1_kl(pred, target).item() == pytest.approx(math.log(6) / 3 + expect, abs=1e-6)
    assert kl_divergence(target, target).item() == pytest.approx(0.0, abs=1e-7)
    # a shift of all channels changes nothing (softmax), L1 sees it
    assert kl_divergence(pred + 5, target).item() == pytest.approx(expect, abs=1e-6)


def test_l1_and_charbonnier():
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.25)
    assert l1(a, b).item() == pytest.approx(0.25)
    assert charbonnier(a, a).item() == pytest.approx(1e-3)
    assert charbonnier(a, b).item() == pytest.approx(math.sqrt(0.0625 + 1e-6))


def test_lr_schedules():
    c = TrainConfig(lr=1.0, schedule="multistep", milestones=[0.5, 8], gamma=0.5)
    assert [lr_at(c, s, 10) for s in (0, 4, 5, 7, 8, 9)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    c = TrainConfig(lr=1.0, schedule="cosine", min_lr=0.0, warmup=2, warmup_start_lr=0.0)
    assert [lr_at(c, s, 12) for s in (0, 1)] == [0.0, 0.5]
    assert lr_at(c, 2, 12) == pytest.approx(1.0) and lr_at(c, 7, 12) == pytest.approx(0.5)
    assert lr_at(c, 12, 12) == pytest.approx(0.0)
    # a head-only phase first (C2D stage 2): constant at head_lr (else the peak), then the schedule over the rest
    c = TrainConfig(lr=1.0, schedule="constant", head_warmup=3, head_lr=0.25, warmup=2, warmup_start_lr=0.0)
    assert [lr_at(c, s, 10) for s in (0, 2, 3, 4, 5, 9)] == [0.25, 0.25, 0.0, 0.5, 1.0, 1.0]
    c.head_lr = None
    assert lr_at(c, 0, 10) == 1.0


# ---- exact resume -----------------------------------------------------------------------------------


def test_resume_is_exact(folder, tmp_path):
    """6 steps straight == 3 steps, stop, resume 3 steps: identical weights, EMA and loss curve."""
    straight = Trainer(cfg_for(folder, tmp_path / "a"), model=fresh()).fit()
    part = Trainer(cfg_for(folder, tmp_path / "b", stop_after=3), model=fresh()).fit()
    assert part["step"] == 3 and not (tmp_path / "b" / "final.safetensors").exists()
    resumed = Trainer(cfg_for(folder, tmp_path / "b"), model=TinySR(), resume=True).fit()
    assert straight["step"] == resumed["step"] == 6
    ck_a, ck_b = Path(straight["checkpoint"]), Path(resumed["checkpoint"])
    for name in ("model.safetensors", "ema.safetensors"):
        wa, wb = weights(ck_a / name), weights(ck_b / name)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    losses = [[r.split(",")[3] for r in (tmp_path / d / "log.csv").read_text().splitlines()] for d in "ab"]
    assert len(losses[0]) == 7 and losses[0] == losses[1]  # header + 6 steps, same curve
    # the EMA differs from the raw weights, and final.safetensors holds the EMA
    fin = weights(tmp_path / "a" / "final.safetensors")
    assert all(torch.equal(fin[k], weights(ck_a / "ema.safetensors")[k]) for k in fin)


def test_run_dir_is_never_overwritten(folder, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "something.txt").write_text("user data")
    with pytest.raises(LightSRError, match="--resume"):
        Trainer(cfg_for(folder, out), model=TinySR())
    Trainer(cfg_for(folder, tmp_path / "r2", iters=2), model=TinySR()).fit()
    with pytest.raises(LightSRError, match="settings differ"):
        Trainer(cfg_for(folder, tmp_path / "r2", iters=2, lr=1.0), model=TinySR(), resume=True)


# ---- stage-2 / warm-start initialisation --------------------------------------------------------------


def test_init_loads_backbone_keeps_head(tmp_path):
    from lightsr.checkpoint import save_weights

    src = TinySR(scale=2)
    save_weights(src, tmp_path / "s1.safetensors")
    dst = TinySR(scale=3)
    head_before = dst.upsample[0].weight.clone()
    rep = init_from(dst, tmp_path / "s1.safetensors", head=("upsample",))
    assert rep["loaded"] == 4 and rep["fresh"] == ["upsample.0.weight", "upsample.0.bias"]
    assert torch.equal(dst.body[0].weight, src.body[0].weight)
    assert torch.equal(dst.upsample[0].weight, head_before)
    with pytest.raises(LightSRError, match="outside its head"):
        init_from(TinySR(scale=3, c=4), tmp_path / "s1.safetensors", head=("upsample",))
    with pytest.raises(LightSRError, match="outside its head"):  # warm start: nothing may differ
        init_from(TinySR(scale=3), tmp_path / "s1.safetensors", head=())
    # a continuous stage-1 twin: encoder.* + an implicit head (C2D eq. 10)
    stage1 = {f"encoder.{k}": v for k, v in src.state_dict().items() if k.startswith("body.")}
    stage1.update({"imnet.0.weight": torch.zeros(3, 3), "imnet.0.bias": torch.zeros(3)})
    save_weights(stage1, tmp_path / "hiif.safetensors")
    dst = TinySR(scale=4)
    rep = init_from(dst, tmp_path / "hiif.safetensors", head=("upsample",))
    assert rep["loaded"] == 4 and sorted(rep["dropped"]) == ["imnet.0.bias", "imnet.0.weight"]
    assert torch.equal(dst.body[2].weight, src.body[2].weight)


# ---- continuous scale + step hook ------------------------------------------------------------------


def test_continuous_training_and_hook(folder, tmp_path):
    calls = []

    def hook(step, model, batch):  # the AnySR extension point: choose a sub-network per step
        calls.append(step)
        kept = model.out.bias.detach().clone()

        def restore():  # after the optimiser step: undo the update of "unused" weights
            with torch.no_grad():
                model.out.bias.copy_(kept)

        return {"width": 0.5 if step % 2 else 1.0, "after_step": restore}

    model = TinyImplicit()
    bias0 = model.out.bias.detach().clone()
    cfg = cfg_for(folder, tmp_path / "c", iters=3, lr_patch=6, scale_max=4.0, scale_mode="batch",
                  queries="full", ema=0.0)
    res = Trainer(cfg, model=model, hook=hook).fit()
    assert res["step"] == 3 and calls == [0, 1, 2]
    (s, coord, cell, width) = model.seen[0]
    assert isinstance(s, tuple) and coord[1] == round(s[0] * 6) and cell == (4, 2)
    assert [w for *_, w in model.seen[:3]] == [1.0, 0.5, 1.0]
    assert torch.equal(model.out.bias, bias0)  # after_step ran after every optimiser step
    model = TinyImplicit()
    cfg = cfg_for(folder, tmp_path / "d", iters=2, lr_patch=6, scale_mode="sample", queries="fast", ema=0.0)
    Trainer(cfg, model=model).fit()
    assert model.seen[0][0] is None and model.seen[0][1] == (4, 6, 6, 2)


def test_validation_keeps_best(folder, tmp_path):
    cfg = cfg_for(folder, tmp_path / "v", iters=4, val_dir=str(folder), val_every=2, ema=0.0)
    res = Trainer(cfg, model=TinySR()).fit()
    assert math.isfinite(res["final_psnr"]) and res["best_psnr"] >= res["final_psnr"]
    log = (tmp_path / "v" / "log.csv").read_text()
    assert [r.split(",")[0] for r in log.splitlines()[1:] if r.split(",")[-1]] == ["2", "4"]
    from lightsr.checkpoint import read_metadata

    assert read_metadata(tmp_path / "v" / "best.safetensors")["val_psnr_y"] == pytest.approx(res["best_psnr"])


# ---- CLI --------------------------------------------------------------------------------------------


def test_cli_spellings_and_recipes():
    from lightsr.cli import build_parser
    from lightsr.cli.train import config_from_args

    p = build_parser()
    a = p.parse_args("train --train_dir A B --val_dir V --scale 2 --epochs 100 --batch_size 16 --patch_size 128".split())
    b = p.parse_args("train --train-dir A B --val-dir V --scale 2 --epochs 100 --batch-size 16 --patch-size 128".split())
    ca, cb = config_from_args(a), config_from_args(b)
    assert ca == cb and ca.model == "rdb_esa" and ca.lr_patch == 64 and ca.train_dirs == ["A", "B"]
    c = config_from_args(p.parse_args("train --recipe hasn_stage2 --iters 10".split()))
    assert c.loss == "l1_kl" and c.iters == 10 and c.milestones == [250_000, 400_000, 450_000, 475_000]
    s1, s2 = get_recipe("c2d_stage1"), get_recipe("c2d_stage2", scale=3)
    assert (s1.scale_mode, s1.queries, s1.lr, s1.min_lr) == ("sample", "fast", 4e-4, 1e-6)
    assert s2.model == "srformer_c2d" and s2.scale == 3 and s2.lr == 1e-5
    with pytest.raises(LightSRError, match="unknown recipe"):
        get_recipe("nope")


def test_anysr_sweep():
    from lightsr.train.recipes import AnySRSweep

    f = AnySRSweep(TrainConfig(seed=0))
    s = [f(None, t) for t in range(40)]
    assert all(1.0 <= v <= 4.1 for v in s)
    steps = [round(b - a, 6) for a, b in zip(s, s[1:])]
    assert set(steps) <= {0.1, -3.0}  # +0.1 per step; -3.1 + 0.1 at the wrap


# ---- nothing lost: refusals before any step, held-out validation ------------------------------------


def test_held_out_validation_never_trains_on_its_images(folder, tmp_path):
    """Validation images come out of the first training folder and out of the training set."""
    t = Trainer(cfg_for(folder, tmp_path / "r", holdout=1, iters=1), model=fresh())
    held = [p.name for p in t.val_files]
    assert held == ["0.png"]  # evenly spaced over the sorted folder: the first of 5 for one image
    assert "0.png" not in [p.name for p in t.data.bank.files] and len(t.data.bank.files) == 4
    res = t.fit()
    assert math.isfinite(res["final_psnr"])
    state = json.loads((tmp_path / "r" / "ckpt" / "step_00000001" / "state.json").read_text())
    assert state["val_files"] == ["0.png"]


@pytest.mark.parametrize("field,value,msg", [("iters", -3, "--iters must be positive"),
                                             ("batch_size", 0, "--batch_size must be a positive"),
                                             ("epochs", 0.0, None)])
def test_non_positive_sizes_refused_and_nothing_left(folder, tmp_path, field, value, msg):
    out = tmp_path / "run"
    kw = {field: value}
    if field == "epochs":
        kw.update(iters=None, epochs=-1.0)
        msg = "--epochs must be positive"
    with pytest.raises(LightSRError, match=msg):
        Trainer(cfg_for(folder, out, **kw), model=fresh())
    assert not out.exists()


def test_bad_validation_folder_leaves_nothing(folder, tmp_path):
    out = tmp_path / "run"
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "missing", tmp_path / "empty"):
        with pytest.raises(LightSRError, match="not found|no images"):
            Trainer(cfg_for(folder, out, val_dir=str(bad)), model=fresh())
        assert not out.exists()


def _stopped_run(folder, out):
    Trainer(cfg_for(folder, out, stop_after=2), model=fresh()).fit()
    return sorted((out / "ckpt").glob("step_*"))[-1]


def test_resume_refuses_another_world_model_or_data(folder, tmp_path):
    out = tmp_path / "run"
    last = _stopped_run(folder, out)
    state = json.loads((last / "state.json").read_text())
    assert state["world"] == 1 and state["model"] == "tiny" and len(state["data"]) == 16
    for key, value, msg in (("world", 2, "2 processes, now 1"), ("model", "rlfn_s", "model rlfn_s, now tiny"),
                            ("data", "0123456789abcdef", "other training images")):
        bad = dict(state, **{key: value})
        (last / "state.json").write_text(json.dumps(bad))
        with pytest.raises(LightSRError, match=msg) as exc:
            Trainer(cfg_for(folder, out), model=TinySR(), resume=True)
        assert "\n" not in str(exc.value)
    (last / "state.json").write_text(json.dumps(state))
    assert Trainer(cfg_for(folder, out), model=TinySR(), resume=True).step == 2


@pytest.mark.parametrize("damage", ["truncate", "remove"])
def test_resume_of_a_damaged_state_starts_nothing(folder, tmp_path, damage):
    out = tmp_path / "run"
    last = _stopped_run(folder, out)
    target = last / "state.pt"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    else:
        target.unlink()
    before = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(LightSRError, match="damaged|missing") as exc:
        Trainer(cfg_for(folder, out), model=TinySR(), resume=True)
    assert "nothing started" in str(exc.value)
    assert sorted(p.name for p in out.rglob("*")) == before


def test_sigterm_stops_with_a_checkpoint(folder, tmp_path):
    """A signal during fit: the step finishes, a checkpoint is written, the run resumes from it."""
    import signal

    out = tmp_path / "run"
    t = Trainer(cfg_for(folder, out, iters=50), model=fresh())
    real = t.train_step

    def step_then_signal(batch):
        loss = real(batch)
        if t.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss

    t.train_step = step_then_signal
    res = t.fit()
    assert res["step"] == 3 and (out / "ckpt" / "step_00000003" / "state.json").is_file()
    rows = (out / "sessions.csv").read_text().splitlines()
    assert rows[0].startswith("started,host") and rows[1].split(",")[4:6] == ["0", "3"]
    assert Trainer(cfg_for(folder, out, iters=50), model=TinySR(), resume=True).step == 3
