"""The claim studies' arms are equal-budget twins (experiments/c2d_claim.py, experiments/hasn_warm.py):
the same recipe, data, batch and patch, the same total steps, and each arm starting from what its design
says. Checked on the configs the scripts build, so an edit that breaks a study's fairness fails here."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
sys.path.insert(0, str(EXPERIMENTS))

import c2d_claim  # noqa: E402
import hasn_warm  # noqa: E402

# what an arm may change; everything else must be identical across arms
ARM_FIELDS = {"model", "iters", "scale_mode", "queries", "scale_min", "scale_max", "init", "lr", "head_warmup",
              "head_lr", "warmup", "out", "compile", "keep_steps", "loss", "init_head"}


def _common(cfg) -> dict:
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ARM_FIELDS}


@pytest.mark.parametrize("net", list(c2d_claim.NETS))
def test_c2d_claim_arms_are_equal_budget_twins(net):
    a, b1, b2 = (c2d_claim.config(arm, 1, net) for arm in ("A", "B1", "B2"))
    model, _, n = c2d_claim.NETS[net]
    assert a.iters == n == b1.iters + b2.iters
    assert b1.iters == int(0.7 * n)  # the paper's 700 / 300 epochs split
    assert a.model == b2.model == model and b1.model == f"{model}_hiif"
    assert (b1.scale_min, b1.scale_max) == (1.0, 4.0) and b1.scale_mode == "sample"
    assert Path(b2.init) == c2d_claim.run_dir("B1", 1, net).relative_to(c2d_claim.ROOT)
    assert b2.head_warmup == c2d_claim.HEAD_WARMUP and a.init is None and b1.init is None
    assert _common(a) == _common(b1) == _common(b2)
    assert len({a.out, b1.out, b2.out}) == 3 and all(net in c.out for c in (a, b1, b2))
    # arm B': the same stage 2 but the whole network at the paper's stage-2 LR after the same head-only phase
    b2p = c2d_claim.config("B2p", 1, net)
    assert dataclasses.replace(b2p, lr=b2.lr, head_lr=None, out=b2.out) == b2
    assert b2p.lr == 1e-5 and b2p.head_lr == b2.lr and b2p.out != b2.out


def test_c2d_claim_studies_do_not_share_run_directories():
    runs = {(net, arm, s): c2d_claim.run_dir(arm, s, net) for net in c2d_claim.NETS for arm in ("A", "B1", "B2", "B2p")
            for s in (1, 2)}
    assert len(set(runs.values())) == len(runs)
    # the table's glob for one net picks up that net's runs only (rlfn_s vs rlfn_s_16k)
    for net in c2d_claim.NETS:
        for arm in ("A", "B2", "B2p"):
            hits = {key for key, d in runs.items() if d.match(f"{net}_{arm}_s*")}
            assert hits == {(net, arm, 1), (net, arm, 2)}


@pytest.mark.parametrize("n", [hasn_warm.N, 16_000])
def test_hasn_warm_arms_are_equal_budget_twins(n):
    a, b2 = hasn_warm.config("A", 1, n), hasn_warm.config("B2", 1, n)
    assert a.iters == n and b2.iters == n // 2 and n // 2 in a.keep_steps  # B: A's first half, then N/2
    assert Path(b2.init) == (hasn_warm.run_dir("A", 1, n) / "ckpt" / f"step_{n // 2:08d}").relative_to(hasn_warm.ROOT)
    assert a.loss == "l1" and b2.loss == "l1_kl" and a.model == b2.model == "hasn"
    assert _common(a) == _common(b2)
    assert hasn_warm.run_dir("A", 1, n) != hasn_warm.run_dir("A", 1, hasn_warm.N if n != hasn_warm.N else 16_000)
    b2r = hasn_warm.config("B2r", 1, n)  # the ablation differs from B2 in its loss alone
    assert b2r.loss == "l1" and dataclasses.replace(b2r, loss="l1_kl", out=b2.out) == b2


def test_hasn_16k_rows_reproduce_from_the_committed_states():
    """results/hasn.md "N = 16,000": arm A's committed final weights give its Set5 row, and the shipped
    HASN x4 file is arm B's committed final weights, tensor for tensor, with arm B's Set5 row."""
    import torch

    from conftest import BENCHMARK, need
    from lightsr.checkpoint import read_metadata, read_state_dict
    from lightsr.evaluate import evaluate
    from lightsr.models import build_model, get_entry

    shipped = get_entry("hasn").shipped_weights(4)
    arm_b = hasn_warm.run_dir("B2", 1, 16_000) / "final.safetensors"
    ws, wb = read_state_dict(shipped), read_state_dict(arm_b)
    assert ws.keys() == wb.keys() and all(torch.equal(ws[k], wb[k]) for k in ws)
    assert read_metadata(shipped)["run"] == "experiments/hasn_warm/hasn_16k_B2_s1"
    for run, row in ((hasn_warm.run_dir("A", 1, 16_000), 31.0435), (arm_b.parent, 31.1490)):
        model = build_model("hasn", 4, str(run / "final.safetensors"))
        psnr = evaluate(model, [need(BENCHMARK / "Set5")], 4, progress=False)["Set5"]["psnr"]
        assert psnr == pytest.approx(row, abs=5e-4), run.name
