"""AnySR on the command line (the issue "AnySR on the command line like in the paper"): continuous and
asymmetric --scale in upscale and eval, one-line refusals for fixed-scale models and conflicting
sub-network flags, --max-gflops on the encoder (Table 3's count), --tile with a continuous model,
and Algorithm 1's group sampling in the anysr recipe with the per-step width/scale log."""
from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightsr.cli import main
from lightsr.errors import LightSRError
from lightsr.models import create_model
from lightsr.models.anysr import SCALE_GROUPS, AnySR, EDSRAnySR
from lightsr.models.srno import SRNOHead


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A randomly initialised anysr_srno_edsr checkpoint (its architecture is read from the file)."""
    from lightsr.checkpoint import save_weights

    torch.manual_seed(0)
    return save_weights(create_model("anysr_srno_edsr"), tmp_path_factory.mktemp("w") / "anysr.safetensors")


@pytest.fixture(scope="module")
def img(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (18, 20, 3), dtype=np.uint8)).save(path)
    return path


def _cli(capsys, *argv) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def _size(path) -> tuple[int, int]:
    w, h = Image.open(path).size
    return h, w


# ---- 1-2: continuous and asymmetric --scale -------------------------------------------------------


@pytest.mark.parametrize("scale,hw", [("2.5", (45, 50)), ("2x3", (36, 60)), ("2,3", (36, 60)), ("3x3", (54, 60))])
def test_upscale_continuous_scale(tmp_path, capsys, ckpt, img, scale, hw):
    """--scale is the continuous model's scale (today: every file fails after the model loads)."""
    out = tmp_path / "o.png"
    rc, err = _cli(capsys, "upscale", img, "-o", out, "--model", "anysr_srno_edsr", "--weights", ckpt,
                   "--scale", scale, "-q")
    assert rc == 0, err
    assert _size(out) == hw


def test_asymmetric_scale_on_a_tiny_image():
    """Below 16 pixels the image is edge-padded and the output's centre cropped back, per axis."""
    from lightsr.upscaler import Upscaler

    torch.manual_seed(0)
    m = create_model("anysr_srno_edsr").eval()
    up = Upscaler(m, precision="fp32", outscale=(2, 3))
    x = torch.rand(3, 6, 5)
    y = up(x)
    assert y.shape == (3, 12, 15)
    pad = torch.nn.functional.pad(x[None], (5, 6, 5, 5), mode="replicate")  # 6x5 -> 16x16, centred
    with torch.no_grad():
        want = m(pad, scale=(2, 3))[0, :, 10:22, 15:30].clamp(0, 1)
    assert torch.allclose(y, want, atol=1e-5)


def test_upscale_checkpoint_only_and_outscale_agree(tmp_path, capsys, ckpt, img):
    rc, err = _cli(capsys, "upscale", img, "-o", tmp_path / "a.png", "--weights", ckpt, "--scale", "1.5", "-q")
    assert rc == 0 and _size(tmp_path / "a.png") == (27, 30), err
    rc, err = _cli(capsys, "upscale", img, "-o", tmp_path / "b.png", "--weights", ckpt, "--scale", "2.5",
                   "--outscale", "3", "-q")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--outscale" in err
    rc, err = _cli(capsys, "upscale", img, "-o", tmp_path / "c.png", "--weights", ckpt, "-q")  # no scale at all
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--scale" in err


@pytest.mark.parametrize("scale,says", [("2.5", "--outscale 2.5"), ("2x3", "asymmetric")])
def test_fixed_scale_model_refuses_in_one_line(tmp_path, capsys, img, scale, says):
    for cmd in (["upscale", img, "-o", tmp_path / "o.png", "--model", "rlfn_s", "--scale", scale, "-q"],
                ["upscale", img, "-o", tmp_path / "o.png", "--scale", scale, "-q"]):  # the default model
        rc, err = _cli(capsys, *cmd)
        assert rc == 2 and says in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "o.png").exists()
    if scale == "2x3":
        rc, err = _cli(capsys, "eval", "--model", "rlfn_s", "--scale", scale, "--data", img.parent)
        assert rc == 2 and "asymmetric" in err and len(err.strip().splitlines()) == 1, err


def test_asymmetric_scale_refuses_self_ensemble(tmp_path, capsys, ckpt, img):
    rc, err = _cli(capsys, "upscale", img, "-o", tmp_path / "o.png", "--weights", ckpt, "--scale", "2x3",
                   "--self-ensemble", "-q")
    assert rc == 2 and "self-ensemble" in err and len(err.strip().splitlines()) == 1


def test_eval_asymmetric_scale(tmp_path, capsys, ckpt, monkeypatch):
    """eval --scale 2x3: LR floor(H/2) x floor(W/3), HR cropped to 2h x 3w, the model asked for (2, 3)."""
    from lightsr.data.benchmark import BenchmarkFolder

    monkeypatch.setenv("LIGHTSR_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "set"
    data.mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (25, 31, 3), dtype=np.uint8)).save(data / "x.png")
    pair = BenchmarkFolder(data, (2, 3)).load(data / "x.png")
    assert pair.lr.shape[:2] == (12, 10) and pair.hr.shape[:2] == (24, 30)
    js = tmp_path / "r.json"
    rc = main(["eval", "--weights", str(ckpt), "--scale", "2x3", "--data", str(data), "--json", str(js)])
    out = capsys.readouterr().out
    assert rc == 0 and "x2x3" in out
    res = json.loads(js.read_text())
    assert res["meta"]["scale"] == [2, 3] and math.isfinite(res["set"]["psnr"])
    rc = main(["eval", "--model", "anysr_srno_edsr", "--random-weights", "--scale", "2.5", "--data", str(data)])
    assert rc == 0 and "x2.5" in capsys.readouterr().out


# ---- 3: conflicting sub-network flags -------------------------------------------------------------


@pytest.mark.parametrize("flags", [["--width", "0.5", "--full-net"], ["--width", "0.5", "--max-gflops", "9"],
                                   ["--max-gflops", "9", "--full-net"]])
def test_subnetwork_flags_exclude_each_other(tmp_path, capsys, ckpt, img, flags):
    """Today --width silently wins over --full-net (and over --max-gflops)."""
    rc, err = _cli(capsys, "upscale", img, "-o", tmp_path / "o.png", "--weights", ckpt, "--scale", "2", *flags, "-q")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and flags[0] in err
    rc, err = _cli(capsys, "eval", "--model", "anysr_srno_edsr", "--random-weights", "--scale", "2",
                   "--data", img.parent, *flags)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and flags[0] in err


# ---- 4: --max-gflops budgets the encoder ----------------------------------------------------------


def test_budget_counts_the_encoder_as_table3():
    """32x32 input at x2: encoder 0.64 / 0.87 / 1.12 / 1.25 G MACs at w 0.5 / 0.7 / 0.9 / 1; the SRNO head
    adds 3.3 G at every width. A 1 GFLOP budget picks w = 0.7 (today: refused, the smallest whole model
    needing 3.95)."""
    m = create_model("anysr_srno_edsr")
    enc = {w: m.macs((32, 32), 2, w, encoder_only=True) / 1e9 for w in m.widths}
    assert enc[0.7] <= 1.0 < enc[0.9] and 1.9 < enc[1.0] / enc[0.5] < 2.0
    assert m.width_for_budget(1.0, (32, 32), 2) == 0.7
    e, h = m.cost((32, 32), 2, 0.7)
    assert abs(e / 1e9 - enc[0.7]) < 1e-9 and 3.2 < h / 1e9 < 3.4
    with pytest.raises(LightSRError, match=r"encoder.*SRNOHead adds 3\.\d\d G"):
        m.width_for_budget(0.5, (32, 32), 2)


def test_budget_reported_by_upscale_and_profile(tmp_path, capsys, ckpt, img):
    rc, err = _cli(capsys, "upscale", img, "-o", tmp_path / "o.png", "--weights", ckpt, "--scale", "2",
                   "--max-gflops", "0.35", "-q")
    assert rc == 0, err
    line = [ln for ln in err.splitlines() if "--max-gflops" in ln]
    assert len(line) == 1 and "width 0.7" in line[0] and "encoder" in line[0] and "SRNOHead" in line[0]
    rc = main(["profile", "--model", "anysr_srno_edsr", "--scale", "2", "--input-size", "32x32", "--no-latency",
               "--max-gflops", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "width 0.7: encoder 0.87 G MACs" in out and "head 3.30 G" in out


# ---- continuous model with --tile -----------------------------------------------------------------


def test_continuous_model_tiled(tmp_path, capsys, ckpt, img, monkeypatch):
    """x2 with --tile 8: the image runs as 3 x 3 tiles, each given the scale; a tile padding that covers
    the whole image makes every tile see it all, so the blend equals the untiled output (the SRNO head
    attends over all queries: with less context the tiles differ, as they would for any global head)."""
    from lightsr.upscaler import Upscaler

    calls = []
    real = Upscaler._forward
    monkeypatch.setattr(Upscaler, "_forward", lambda self, x, s, whole=True: calls.append((s, whole)) or
                        real(self, x, s, whole))
    base = ["upscale", img, "--weights", ckpt, "--ext", "png", "-q"]
    assert _cli(capsys, *base, "--scale", "2", "-o", tmp_path / "whole")[0] == 0
    assert calls == [(2, True)]
    calls.clear()
    assert _cli(capsys, *base, "--scale", "2", "-o", tmp_path / "tiled", "--tile", "8", "--tile-pad", "24")[0] == 0
    assert len(calls) == 9 and all(c == (2, False) for c in calls)
    a = np.asarray(Image.open(tmp_path / "whole" / "a.png"), dtype=int)
    b = np.asarray(Image.open(tmp_path / "tiled" / "a.png"), dtype=int)
    assert a.shape == b.shape == (36, 40, 3) and np.abs(a - b).max() <= 1
    calls.clear()  # a fractional scale's grid does not align with tiles: the whole image runs
    assert _cli(capsys, *base, "--scale", "2.5", "-o", tmp_path / "frac", "--tile", "8")[0] == 0
    assert calls == [(2.5, True)] and _size(tmp_path / "frac" / "a.png") == (45, 50)


# ---- 5: Algorithm 1 lines 2-3 in the recipe, per-step log -----------------------------------------


def test_recipe_samples_groups_as_algorithm1():
    """t ~ U{1..T}, s ~ S_t: every scale is one of S (the official sweep, today's default, drifts by 0.1
    from a random start and hits S only by chance); a pure function of (seed, step)."""
    from lightsr.train.config import import_object
    from lightsr.train.recipes import AnySRSweep, get_recipe

    cfg = get_recipe("anysr")
    fn = import_object(cfg.scale_schedule, "scale schedule")(cfg)
    draws = [fn(np.random.default_rng([cfg.seed, k, 0x5CA1E]), k) for k in range(800)]
    members = {s for g in SCALE_GROUPS for s in g}
    assert set(draws) <= members
    share = [sum(d in g for d in draws) / len(draws) for g in SCALE_GROUPS]
    assert all(abs(p - 0.25) < 0.06 for p in share)  # each group 1/T
    again = [fn(np.random.default_rng([cfg.seed, k, 0x5CA1E]), k) for k in range(800)]
    assert again == draws  # the data stream's per-step generator is a function of (seed, step) only
    sweep = get_recipe("anysr_sweep")
    assert import_object(sweep.scale_schedule, "scale schedule") is AnySRSweep and sweep.scale_max == 4.1


def _small_anysr() -> AnySR:
    torch.manual_seed(0)
    return AnySR(EDSRAnySR(n_resblocks=1), SRNOHead(64, width=8, heads=2))


def _cfg(folder, out, **kw):
    from lightsr.train.recipes import get_recipe

    cfg = get_recipe("anysr")
    cfg.train_dirs, cfg.out, cfg.holdout, cfg.lr_patch, cfg.batch_size, cfg.iters = [str(folder)], str(out), 0, 10, 2, 6
    cfg.deterministic, cfg.device, cfg.progress, cfg.log_every, cfg.val_every, cfg.save_every = \
        True, "cpu", False, 1, 0, 0
    cfg.cache_dir, cfg.lr = None, 1e-3
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(2)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (44, 44, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return d


def _steps(run) -> list[dict]:
    with open(run / "steps.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_steps_log_width_and_scale_and_resume_exactly(folder, tmp_path):
    """steps.csv: one row per step with the width and the scale pair the hook chose (today: nothing
    is logged); 3 steps + resume 3 steps == 6 straight steps, rows and weights alike."""
    from lightsr.checkpoint import read_state_dict
    from lightsr.train.anysr import choose_subnet
    from lightsr.train.engine import Trainer

    straight = Trainer(_cfg(folder, tmp_path / "a"), model=_small_anysr()).fit()
    rows = _steps(tmp_path / "a")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    members = {s for g in SCALE_GROUPS for s in g}
    m = _small_anysr()
    for k, r in enumerate(rows):
        sh, sw, w = float(r["scale_h"]), float(r["scale_w"]), float(r["width"])
        assert sh == sw and sh in members
        assert w == choose_subnet((sh, sw), m.widths, m.reset_p, random.Random(1_000_003 * k + 17))
    Trainer(_cfg(folder, tmp_path / "b", stop_after=3), model=_small_anysr()).fit()
    with open(tmp_path / "b" / "steps.csv", "a") as f:  # a row an interrupted run wrote past its checkpoint
        f.write("4,0.123,9.9,9.9\n")
    resumed = Trainer(_cfg(folder, tmp_path / "b"), model=_small_anysr(), resume=True).fit()
    assert _steps(tmp_path / "b") == rows
    wa, wb = (read_state_dict(Path(r["checkpoint"]) / "model.safetensors") for r in (straight, resumed))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
