"""EDSR-baseline and RDN-B: exact parameter counts, official key layout, headless feature mode."""
from __future__ import annotations

import pytest
import torch

from lightsr.models import create_model
from lightsr.models.edsr import EDSR
from lightsr.models.rdn import RDN


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("scale,count", [(2, 1_369_859), (3, 1_554_499), (4, 1_517_571), (None, 1_220_416)])
def test_edsr_baseline_params(scale, count):
    # x4 1,517,571 = LIIF's EDSR-baseline (MeanShift weights are buffers, not parameters)
    assert n_params(EDSR(scale)) == count


def test_rdn_params():
    assert n_params(RDN(4)) == 22_271_107  # 22.27M (RDN config B, x4)
    m = RDN(None)
    assert n_params(m) == 21_973_952
    keys = list(m.state_dict())
    assert keys[:2] == ["SFENet1.weight", "SFENet1.bias"]
    assert "RDBs.15.convs.7.conv.0.weight" in keys and "RDBs.0.LFF.weight" in keys and "GFF.1.bias" in keys


def test_rdn_scales_params():
    assert n_params(RDN(2)) == 22_123_395
    assert n_params(RDN(3)) == 22_308_035


def test_edsr_keys_and_shapes():
    m = create_model("edsr_baseline", scale=3).eval()
    keys = list(m.state_dict())
    for k in ("sub_mean.weight", "head.0.weight", "body.15.body.2.weight", "body.16.weight",
              "tail.0.0.weight", "tail.1.weight"):
        assert k in keys
    x = torch.rand(1, 3, 7, 9)
    with torch.no_grad():
        assert m(x).shape == (1, 3, 21, 27)
        f = EDSR(None).forward_features(x)
    assert f.shape == (1, 64, 7, 9)


def test_edsr_mean_shift_round_trip():
    # with zero body/tail weights the mean-shift pair must cancel: out = add_mean(0) / 255 = mean
    m = EDSR(2, rgb_range=255, mean_shift=True)
    for p in m.parameters():
        p.data.zero_()
    y = m(torch.rand(1, 3, 4, 4))
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([0.4488, 0.4371, 0.4040]), atol=1e-6)
