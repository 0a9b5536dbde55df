"""``--init`` from a run that has no final or best weights (its newest step checkpoint), from one step
checkpoint, and ``--keep_steps`` milestones that pruning never deletes (HASN's stage 2 starts from
stage 1's step-100k weights)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightsr.checkpoint import read_state_dict
from lightsr.errors import LightSRError
from lightsr.train import Trainer, get_recipe, init_from
from test_train import TinySR, cfg_for, folder, fresh  # noqa: F401  (folder: the tiny-images fixture)


def steps_in(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "ckpt").iterdir())


def same(model, path) -> bool:
    sd = read_state_dict(path)
    return all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())


def test_init_from_a_run_stopped_early(folder, tmp_path, capsys):  # noqa: F811
    """No final/best weights: the newest step checkpoint (its EMA), said in one line."""
    run = tmp_path / "stage1"
    Trainer(cfg_for(folder, run, stop_after=3, save_every=2, keep=5), model=fresh()).fit()
    assert steps_in(run) == ["step_00000002", "step_00000003"]
    assert not (run / "final.safetensors").exists() and not (run / "best.safetensors").exists()
    newest = run / "ckpt" / "step_00000003" / "ema.safetensors"
    m = TinySR()
    rep = init_from(m, run, head=())
    assert rep["path"] == str(newest) and rep["loaded"] == 6 and same(m, newest)
    capsys.readouterr()
    t = Trainer(cfg_for(folder, tmp_path / "stage2", init=str(run), init_head=()), model=TinySR())
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "newest step checkpoint" in ln]
    assert lines == [f"lightsr train: --init {run}: no final or best weights; using its newest step "
                     f"checkpoint {newest}"]
    assert same(t.model, newest)
    # once the run has final weights, those are taken, silently
    Trainer(cfg_for(folder, run), model=TinySR(), resume=True).fit()
    rep = init_from(TinySR(), run, head=())
    assert rep["path"] == str(run / "final.safetensors") and rep["note"] is None


def test_init_from_a_step_checkpoint_or_file(folder, tmp_path):  # noqa: F811
    run = tmp_path / "stage1"
    Trainer(cfg_for(folder, run, stop_after=3, save_every=1, keep=5), model=fresh()).fit()
    step2 = run / "ckpt" / "step_00000002"  # not the newest
    m = TinySR()
    assert init_from(m, step2, head=())["path"] == str(step2 / "ema.safetensors") and same(m, step2 / "ema.safetensors")
    m = TinySR()
    init_from(m, step2 / "model.safetensors", head=())
    assert same(m, step2 / "model.safetensors")
    assert not same(m, step2 / "ema.safetensors")  # two different files: the choice was tested
    with pytest.raises(LightSRError, match="no final.safetensors, best.safetensors or step checkpoint"):
        (tmp_path / "empty").mkdir()
        init_from(TinySR(), tmp_path / "empty", head=())


def test_keep_steps_milestones_survive_pruning(folder, tmp_path):  # noqa: F811
    """save_every 2, keep 1, keep_steps [3]: step 3 is written (off the save grid) and never pruned."""
    run = tmp_path / "run"
    Trainer(cfg_for(folder, run, iters=6, save_every=2, keep=1, keep_steps=[3]), model=fresh()).fit()
    assert steps_in(run) == ["step_00000003", "step_00000006"]
    run = tmp_path / "run2"
    Trainer(cfg_for(folder, run, iters=6, save_every=2, keep=1, keep_steps=[2]), model=fresh()).fit()
    assert steps_in(run) == ["step_00000002", "step_00000006"]


def test_keep_steps_flag_and_hasn_recipes():
    from lightsr.cli import build_parser
    from lightsr.cli.train import config_from_args

    p = build_parser()
    c = config_from_args(p.parse_args("train --recipe hasn_stage1 --keep_steps 100000,200000".split()))
    assert c.keep_steps == [100_000, 200_000]
    with pytest.raises(SystemExit):
        p.parse_args("train --keep_steps 10,x".split())
    s1, s2 = get_recipe("hasn_stage1"), get_recipe("hasn_stage2")
    assert s1.keep_steps == [100_000] and s1.save_every and 100_000 % s1.save_every == 0
    assert s2.init == "runs/hasn_x4_stage1/ckpt/step_00100000" and s2.keep_steps == []
    assert "keep_steps" in (get_recipe.__globals__["hasn_stage2"].__doc__ or "")


def test_resume_does_not_read_init_again(folder, tmp_path):  # noqa: F811
    """A stage-2 run resumed after its --init source is gone: the weights come from its checkpoint."""
    import shutil

    s1 = tmp_path / "stage1"
    Trainer(cfg_for(folder, s1, iters=2), model=fresh()).fit()
    kw = dict(init=str(s1), init_head=())
    a = Trainer(cfg_for(folder, tmp_path / "a", **kw), model=TinySR()).fit()
    Trainer(cfg_for(folder, tmp_path / "b", stop_after=3, **kw), model=TinySR()).fit()
    shutil.rmtree(s1)
    b = Trainer(cfg_for(folder, tmp_path / "b", **kw), model=TinySR(), resume=True).fit()
    wa, wb = (read_state_dict(Path(r["checkpoint"]) / "model.safetensors") for r in (a, b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
