"""The loss registry (one decorated function per loss, the CLI's ``--loss`` choices), L2 and L1 + TV by hand."""
from __future__ import annotations

import pytest
import torch

from lightsr.errors import LightSRError
from lightsr.train import losses
from lightsr.train.losses import LOSSES, TV_WEIGHT, get_loss, l1_tv, l2, register_loss, total_variation


def test_l2_by_hand():
    pred = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[0.5, -0.25], [1.0, 0.0]]).view(1, 1, 2, 2)
    assert l2(pred, target).item() == pytest.approx((0.25 + 0.0625 + 1.0 + 0.0) / 4)  # 0.328125
    assert get_loss("L2") is l2


def test_total_variation_and_l1_tv_by_hand():
    x = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]).view(1, 1, 2, 3)
    # vertical |2-0|, |2-1|, |2-3| -> mean 4/3; horizontal |1-0|, |3-1|, 0, 0 -> mean 3/4
    assert total_variation(x).item() == pytest.approx(4 / 3 + 3 / 4)
    assert total_variation(torch.full((2, 3, 4, 5), 0.7)).item() == 0.0  # flat: no variation
    target = torch.zeros_like(x)  # L1 = (0 + 1 + 3 + 2 + 2 + 2) / 6 = 5/3
    assert TV_WEIGHT == 0.01
    assert l1_tv(x, target).item() == pytest.approx(5 / 3 + 0.01 * (4 / 3 + 3 / 4))
    assert get_loss("l1+tv") is l1_tv and get_loss("l1-tv") is l1_tv
    # the regulariser acts on the prediction: its gradient pulls a spike down
    spike = torch.zeros(1, 1, 3, 3)
    spike[0, 0, 1, 1] = 1.0
    spike.requires_grad_(True)
    total_variation(spike).backward()
    assert spike.grad[0, 0, 1, 1].item() == pytest.approx(2 * (1 / 6 + 1 / 6))  # 4 neighbours, means over 6


def test_registry_is_one_function_and_feeds_the_cli(monkeypatch):
    """A loss added with @register_loss is at once a --loss choice; an unknown name lists them all."""
    from lightsr.cli import build_parser
    from lightsr.cli.train import config_from_args

    monkeypatch.setattr(losses, "LOSSES", dict(LOSSES))

    @register_loss
    def l1_double(pred, target):
        return 2 * (pred - target).abs().mean()

    assert get_loss("l1_double") is l1_double and "l1_double" not in LOSSES  # the original is untouched
    p = build_parser()
    for name in ("l1_double", "l2", "l1_tv", "charbonnier", "l1_kl", "l1"):
        assert config_from_args(p.parse_args(["train", "--loss", name])).loss == name
    with pytest.raises(SystemExit):
        p.parse_args(["train", "--loss", "nope"])
    with pytest.raises(LightSRError, match="choose from l1, l2, charbonnier, l1_kl, l1_tv, l1_double"):
        get_loss("nope")


def test_unknown_loss_message_on_the_command_line(capsys):
    from lightsr.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "--loss", "l3"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "unknown loss 'l3'; choose from l1, l2, charbonnier, l1_kl, l1_tv" in err
