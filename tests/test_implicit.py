"""Coordinates, cells, local ensemble, hierarchical bits and the implicit heads (LIIF, MetaSR, SRNO,
HIIF-L) of lightsr.layers.coords, lightsr.models.{liif,metasr,srno,arbsr,hiif},
and the registered <head>_<backbone> continuous models."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightsr.errors import LightSRError
from lightsr.layers.coords import (ImplicitSR, coord_grid, ensemble_weights, hierarchical_bits, local_coord, make_cell,
                                   make_coord, neighbours, output_size, parse_scale)
from lightsr.models.arbsr import ArbSRHead, SAAdapt, SAConv, SAUpsample
from lightsr.models.liif import LIIFHead
from lightsr.models.metasr import MetaSRHead
from lightsr.models.srno import GalerkinAttention, SRNOHead
from lightsr.models import create_model
from lightsr.models.edsr import EDSR
from lightsr.models.hiif import HIIFL


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_make_coord_pixel_centres():
    c = make_coord((2, 4), flatten=False)
    assert c.shape == (2, 4, 2)
    assert torch.allclose(c[:, 0, 0], torch.tensor([-0.5, 0.5]))
    assert torch.allclose(c[0, :, 1], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert make_coord((3, 5)).shape == (15, 2)
    assert torch.allclose(make_cell((4, 8), batch=2), torch.tensor([[0.5, 0.25]] * 2))
    assert coord_grid((3, 5), batch=2).shape == (2, 3, 5, 2)


def test_scales_and_sizes():
    assert output_size(10, 7, 2.5) == (25, 18)  # round(17.5) = 18 (banker's rounding as Python)
    assert output_size(12, 10, (1.5, 3.7)) == (18, 37)
    assert parse_scale(3) == (3.0, 3.0)
    for bad in (0, -2, (1, 2, 3), "x", float("nan")):
        with pytest.raises(LightSRError):
            parse_scale(bad)


def test_local_ensemble_is_bilinear_in_the_interior():
    # blending the 4 nearest codes with the diagonal-area weights = bilinear interpolation
    torch.manual_seed(0)
    feat = torch.randn(1, 5, 6, 7)
    coord = coord_grid((17, 19))
    zs, rels = zip(*neighbours(feat, coord))
    blend = sum(z * w for z, w in zip(zs, ensemble_weights(rels)))
    ref = F.grid_sample(feat, coord.flip(-1), mode="bilinear", align_corners=False)
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))
    assert torch.allclose(blend[inner], ref[inner], atol=1e-5)
    w = torch.cat(ensemble_weights(rels), 1)
    assert torch.allclose(w.sum(1), torch.ones(1, 17, 19), atol=1e-6)
    # LIIF scaling: rel in (-2, 2)
    assert all(r.abs().max() < 2 + 1e-5 for r in rels)


def test_hierarchical_bits_and_local_coord():
    x = torch.tensor([0.0, 0.3, 0.55, 0.8, 1.0])
    assert hierarchical_bits(x, 0).tolist() == [0, 0, 1, 1, 1]
    assert hierarchical_bits(x, 1).tolist() == [0, 1, 0, 1, 1]   # floor(4x) mod 2: 0,1,2,3,3
    # local coordinate inside an LR pixel, from the upper-left centre: queries on a 2x grid of a
    # 4x4 map sit a quarter pixel either side of each centre -> 0.75 / 0.25 alternating
    lc = local_coord(coord_grid((8, 8)), (4, 4))
    assert torch.allclose(lc[0, 0, 1:7, 0], torch.tensor([0.25, 0.75] * 3))
    assert lc.min() >= 0 and lc.max() <= 1


def test_galerkin_attention_matches_naive():
    torch.manual_seed(0)
    blk = GalerkinAttention(8, 2)
    x = torch.randn(2, 8, 3, 4)
    out = blk(x)
    # naive per-head loop of O = Q (K^T V) / N, custom LN (unbiased std), R = O + X, X + FFN(R)
    t = blk.qkv_proj(x).flatten(2).transpose(1, 2)  # (B, N, 3C)
    heads = []
    for h in range(2):
        q, k, v = (t[..., h * 12 + j * 4: h * 12 + (j + 1) * 4] for j in range(3))
        ln = lambda a, m: ((a - a.mean(-1, keepdim=True)) / (a.std(-1, keepdim=True) + 1e-5)) * m.weight[h, 0] + m.bias[h, 0]
        k, v = ln(k, blk.kln), ln(v, blk.vln)
        heads.append(q @ (k.transpose(1, 2) @ v) / 12)
    r = torch.cat(heads, -1).transpose(1, 2).reshape(2, 8, 3, 4) + x
    ref = x + blk.o_proj2(F.gelu(blk.o_proj1(r)))
    assert torch.allclose(out, ref, atol=1e-5)


def test_head_parameter_counts():
    assert n_params(LIIFHead(64)) == 346_883      # 580->256->256->256->256->3
    assert n_params(MetaSRHead(64)) == 445_120    # 3->256->64*9*3
    assert n_params(SRNOHead(64)) == 794_883      # 266->256, 2 Galerkin(256, 16), 256->256->3
    # HIIF-L (models/hiif.py) at C = 60: freq conv 32,460 + MLP_0 (LN 244, 244->256->60) 78,628 +
    # attention (qkv 10,980, LN_k/LN_v of head width 30: 120, FFN 7,320) 18,420 + MLP_1 (62->256->60)
    # 31,672 + MLP_2 (62->256->3) 17,023
    assert n_params(HIIFL(60)) == 32_460 + 78_628 + 18_420 + 31_672 + 17_023 == 178_203
    assert n_params(HIIFL(48)) == 135_219
    assert n_params(SAAdapt(64)) == 162_023       # mask net 14,115 + SA conv (4 experts) 147,908
    assert n_params(ArbSRHead(64)) == 10_697      # SA up-sampler 8,966 + tail conv 1,731


def test_arbsr_scale_aware_conv_mixes_experts():
    torch.manual_seed(0)
    conv = SAConv(4, 5, 3)
    x = torch.randn(1, 4, 6, 6)
    r = conv.routing(torch.tensor([[1 / 2.0, 1 / 3.0]]))[0]
    ref = sum(F.conv2d(x, conv.weight_pool[i], padding=1) * r[i] for i in range(4))
    assert torch.allclose(conv(x, (2.0, 3.0)), ref, atol=1e-5)
    assert not torch.allclose(conv(x, (2.0, 3.0)), conv(x, (4.0, 4.0)), atol=1e-4)
    up = SAUpsample(16)
    assert up(torch.randn(2, 16, 5, 7), (9, 20), (1.8, 20 / 7)).shape == (2, 16, 9, 20)


def small_model(head: str) -> ImplicitSR:
    heads = {"liif": lambda: LIIFHead(8, hidden=(16, 16)), "metasr": lambda: MetaSRHead(8, hidden=16),
             "srno": lambda: SRNOHead(8, width=16, heads=4), "hiif_l": lambda: HIIFL(8, heads=2),
             "arbsr": lambda: ArbSRHead(8)}
    k = 1 if head == "arbsr" else None
    return ImplicitSR(EDSR(None, n_resblocks=1, n_feats=8, adapt_every=k), heads[head]()).eval()


@pytest.mark.parametrize("head", ["liif", "metasr", "srno", "hiif_l", "arbsr"])
def test_heads_any_scale_shapes(head):
    torch.manual_seed(0)
    m = small_model(head)
    x = torch.rand(1, 3, 10, 8)
    with torch.no_grad():
        for s in (1.5, 2.5, 3.7, 6, (2.0, 3.1)):
            y = m(x, scale=s)
            assert y.shape[-2:] == output_size(10, 8, s)
            assert torch.isfinite(y).all()
        # coord/cell path = scale path
        size = output_size(10, 8, 2.5)
        y1 = m(x, scale=2.5)
        y2 = m(x, coord=coord_grid(size), cell=make_cell(size))
    assert torch.allclose(y1, y2, atol=1e-6)


@pytest.mark.parametrize("name", ["liif_edsr", "metasr_edsr", "srno_edsr", "hiif_l_edsr", "arbsr_edsr"])
def test_registered_models_run(name):
    m = create_model(name).eval()
    assert m.continuous and m.encoder.out_dim == 64
    with torch.no_grad():
        assert m(torch.rand(1, 3, 5, 4), scale=3.7).shape == (1, 3, 18, 15)


@pytest.mark.parametrize("head", ["liif", "metasr", "srno", "hiif_l"])
def test_chunked_queries_are_exact(head):
    # per-query heads chunk directly; linear-attention heads accumulate K^T V over chunks
    torch.manual_seed(0)
    m = small_model(head)
    m.max_queries = 100
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        chunked = m(x, scale=3.3)
        m.max_queries = 10 ** 9
        whole = m(x, scale=3.3)
    assert torch.allclose(chunked, whole, atol=1e-6)


def test_official_key_layout_round_trip():
    m = create_model("srno_edsr")
    sd = m.state_dict()
    assert "conv00.weight" in sd and "conv0.qkv_proj.weight" in sd and "encoder.body.16.weight" in sd
    assert not any(k.startswith("head.") for k in sd)
    m2 = create_model("srno_edsr")
    m2.load_state_dict(sd)  # strict
    assert torch.equal(m2.head.fc2.weight, m.head.fc2.weight)


def test_generic_wrapper_and_errors():
    m = ImplicitSR(EDSR(None, n_resblocks=1, n_feats=8), HIIFL(8, heads=2), norm=None)
    y = m(torch.rand(2, 3, 5, 6), scale=(1.5, 2))
    assert y.shape == (2, 3, 8, 12)
    with pytest.raises(LightSRError):
        m(torch.rand(1, 3, 5, 6))
    with pytest.raises(LightSRError):
        m(torch.rand(1, 4, 5, 6), scale=2)


def test_a_few_training_steps_reduce_loss():
    # LIIF trained for 20 steps on one image at random continuous scales fits it better than at start
    torch.manual_seed(0)
    m = small_model("liif").train()
    hr = F.interpolate(torch.rand(1, 3, 4, 4), size=(12, 12), mode="bicubic", align_corners=False).clamp(0, 1)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    losses = []
    for _ in range(20):
        lr = F.interpolate(hr, size=(4, 4), mode="area")
        loss = F.l1_loss(m(lr, scale=3), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0]
    with torch.no_grad():
        for s in (1.5, 2.5, 3.7, 6):
            assert m(lr, scale=s).shape[-2:] == output_size(4, 4, s)
