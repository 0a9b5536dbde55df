"""HIIF-L (models/hiif.py; seed 000 eqs. 7-9 with HIIF's blocks): its Table 2 v1.2 counts pinned, and a
naive per-query reference of the whole head compared with the vectorised one (issue 16, item 2).

The reference is written from the equations one query at a time, with integer LR indices instead of
grid_sample (the helpers of tests/test_heads_reference.py), on a 6x7 LR map at a non-integer scale
(15x18 output). ``test_reference_catches`` shows that it can fail: one deliberate defect at a time is
patched into the vectorised head and a mismatch is required. Broken by hand too (2026-12-01, in a
scratch copy of the package put first on PYTHONPATH): ``HEADS_DEFAULT = 6`` made
``test_table2_v12_counts`` fail (FLOPs +137.08 G instead of +139.30 G), ``levels=3`` -> ``levels=4``
as the default made it fail on the parameters, and ``hierarchical_bits(xq, j)`` -> ``(xq, j - 1)``
in ``HIIFL.project`` made ``test_head_matches_naive_reference`` fail.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightsr.layers.coords import coord_grid, make_cell
from lightsr.models import create_model, hiif
from lightsr.models.hiif import HIIFL
from lightsr.profile import count_fast, count_params

from test_heads_reference import C, HR, LR, TOL, area_weights, bilinear, inputs, lr_index, quadrant_codes  # noqa: F401

# Table 2 v1.2 ("w/o D", SRFormer-C2D x4): stage-1 model minus the discrete model; fvcore convention,
# 1x3x180x320 input (720x1280 output). Ours: results/c2d.md "HIIF-L candidates", reading H.
PAPER = (188e3, 143.3e9)
OURS = (152_235, 139_295_232_000)
GAP = (-0.190, -0.028)  # recorded relative gaps, to 0.1 %


def test_table2_v12_counts():
    disc, twin = create_model("srformer_c2d", 4).eval(), create_model("srformer_c2d_hiif").eval()
    dp = count_params(twin) - count_params(disc)
    df = count_fast(twin, 4, "fvcore", (180, 320)) - count_fast(disc, 4, "fvcore", (180, 320))
    assert (dp, df) == OURS
    for ours, paper, gap in zip((dp, df), PAPER, GAP):
        assert abs((ours / paper - 1) - gap) < 0.001


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    head = HIIFL(C, hidden=16, blocks=2)
    feat, inp = torch.randn(2, C, *LR), torch.rand(2, 3, *LR)
    head(feat, coord_grid(HR, 2), make_cell(HR, 2), inp).abs().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


# ---------------------------------------------------------------------------------------------
# the naive reference
# ---------------------------------------------------------------------------------------------
def conv3x3(conv, feat: torch.Tensor) -> torch.Tensor:
    """The freq convolution as a sum over its 9 taps, zero outside the map: (C, h, w) -> (C', h, w)."""
    _, h, w = feat.shape
    padded = F.pad(feat, (1, 1, 1, 1))
    out = conv.bias.view(-1, 1, 1).repeat(1, h, w)
    for di in range(3):
        for dj in range(3):
            out = out + torch.einsum("oc,chw->ohw", conv.weight[:, :, di, dj], padded[:, di:di + h, dj:dj + w])
    return out


def layer_norm(x: torch.Tensor, ln) -> torch.Tensor:
    """(x - mean) / sqrt(biased var + eps) * gamma + beta over the last dimension."""
    mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    return (x - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def linear(fc, x: torch.Tensor) -> torch.Tensor:
    return x @ fc.weight.t() + fc.bias


def mlp(block, x: torch.Tensor) -> torch.Tensor:
    """LN -> Linear -> GELU -> Linear."""
    return linear(block.fc2, F.gelu(linear(block.fc1, layer_norm(x, block.norm))))


def attention(blk, x: torch.Tensor) -> torch.Tensor:
    """Per query i and head: o_i = (1/N) sum_j (q_i . LN_k(k_j)) LN_v(v_j); out = x + W2 GELU(W1 (x + o)).
    x: (N, dim); each head's q, k, v are its 3 d consecutive channels of Linear(dim -> 3 dim)."""
    n, dim = x.shape
    d = dim // blk.heads
    t = linear(blk.qkv_proj, x)
    heads = []
    for hd in range(blk.heads):
        q, k, v = (t[:, hd * 3 * d + s * d: hd * 3 * d + (s + 1) * d] for s in range(3))
        k, v = layer_norm(k, blk.kln), layer_norm(v, blk.vln)
        heads.append(torch.stack([(k @ q[i]) @ v / n for i in range(n)]))  # sum_j (q_i . k_j) v_j / N
    o = torch.cat(heads, 1)
    return x + linear(blk.proj2, F.gelu(linear(blk.proj1, x + o)))


def bits(x: float, level: int) -> float:
    """Eq. 7 for one coordinate: floor(x 2^(level+1)) mod 2, x kept inside [0, 1)."""
    return float(math.floor(min(max(x, 0.0), 1 - 1e-6) * 2 ** (level + 1)) % 2)


def naive_hiif_l(head: HIIFL, feat, cell, inp) -> torch.Tensor:
    """Eqs. 7-9 per query (p, q), continuous LR index (u, v), local coordinate x_q = (u - floor u,
    v - floor v) (offset from the upper-left neighbouring centre):
    g = [S_t/S freq(F_D)[z*_t] for the 4 quadrant codes t, delta_h(x_q, 0), cell (h, w)];
    z = MHA(MLP_0(g)) over all queries; z <- MLP_j([z, delta_h(x_q, j)]) for j = 1 .. L-1; plus the
    bilinear (border) input."""
    (h, w), (H, W) = LR, HR
    lifted = conv3x3(head.freq, feat[0]) if head.freq is not None else feat[0]
    rel_cell = [float(cell[0, 0]) * h, float(cell[0, 1]) * w]
    tokens, local, skips = [], [], []
    for p in range(H):
        for q in range(W):
            u, v = lr_index(p, H, h), lr_index(q, W, w)
            codes = list(quadrant_codes(u, v, h, w))
            weights = area_weights([opp for _, _, opp in codes])
            xq = (u - math.floor(u), v - math.floor(v))
            zs = [lifted[:, i, j] * wt for ((i, j), _, _), wt in zip(codes, weights)]
            tokens.append(torch.cat([*zs, torch.tensor([bits(xq[0], 0), bits(xq[1], 0), *rel_cell])]))
            local.append(xq)
            skips.append(bilinear(inp, u, v, border=True))
    z = mlp(head.fc_layers[0], torch.stack(tokens))
    for blk in head.attn:
        z = attention(blk, z)
    for j in range(1, head.levels):
        code = torch.tensor([[bits(a, j), bits(b, j)] for a, b in local])
        z = mlp(head.fc_layers[j], torch.cat([z, code], 1))
    return (z + torch.stack(skips)).t().reshape(1, 3, H, W)


CONFIGS = {"chosen": dict(hidden=16), "options": dict(hidden=16, heads=4, levels=4, freq=False, blocks=2)}


def _max_error(config: str, inputs) -> float:
    torch.manual_seed(1)
    head = HIIFL(C, **CONFIGS[config])
    feat, coord, cell, inp = inputs
    with torch.no_grad():
        return float((head(*inputs) - naive_hiif_l(head, feat, cell, inp)).abs().max())


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_head_matches_naive_reference(config, inputs):
    """Vectorised HIIF-L == its per-query equations, to 1e-5, at a non-integer scale."""
    assert _max_error(config, inputs) < TOL


bits_orig, weights_orig = hiif.hierarchical_bits, hiif.ensemble_weights


def _next_level(x, level):
    """Defect: the code of the level below (level 0 read twice, the last level never)."""
    return bits_orig(x, max(level - 1, 0))


def _own_area(rels):
    """Defect: each code weighted by its own area instead of the diagonally opposite one."""
    return weights_orig(rels[::-1])


def _unnormalised_k(self, x):
    """Defect: K without its per-head LayerNorm."""
    b, h, w, _ = x.shape
    t = self.qkv_proj(x).reshape(b, h * w, self.heads, 3 * self.head_dim).transpose(1, 2)
    q, k, v = t.chunk(3, dim=-1)
    return q, k, self.vln(v)


DEFECTS = [("hierarchical_bits", _next_level), ("ensemble_weights", _own_area),
           ("HIIFAttention._qkv", _unnormalised_k)]


@pytest.mark.parametrize("target, defect", DEFECTS, ids=[t for t, _ in DEFECTS])
def test_reference_catches(target, defect, inputs, monkeypatch):
    owner, _, attr = target.rpartition(".")
    monkeypatch.setattr(getattr(hiif, owner) if owner else hiif, attr, defect)
    assert _max_error("chosen", inputs) > 100 * TOL


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_second_image_equals_a_fresh_model(mode):
    """No per-image state survives between images: image B after image A (same size, chunked
    rendering, gradients off as in inference) equals B on a fresh copy of the model, also when B is
    written into A's input tensor in place, when the backbone hands both features over in one
    static buffer, and through the upscaler (which runs under inference_mode). Broken on purpose,
    in memory: HIIF-L's freq convolution cached across calls keyed by the feature's shape, or by
    its data_ptr() or id() (caught by the static buffer), or by a weakref and _version (an error
    under inference_mode) -> fails."""
    import copy

    import numpy as np

    from lightsr.upscaler import Upscaler

    torch.manual_seed(0)
    model = create_model("rlfn_s_hiif").eval()
    model.max_queries = 50  # 20x24 queries: rendered in 10 chunks, in len(attn) + 1 passes each
    fresh = copy.deepcopy(model)
    a, b = torch.rand(1, 3, 10, 12), torch.rand(1, 3, 10, 12)
    ctx = torch.no_grad if mode == "no_grad" else torch.inference_mode
    with ctx():
        want = fresh(b, scale=2)
        assert not torch.equal(fresh(a, scale=2), want)
        model(a, scale=2)
        assert torch.equal(model(b, scale=2), want)
        x = a.clone()
        model(x, scale=2)
        x.copy_(b)
        assert torch.equal(model(x, scale=2), want)
    # a backbone returning one static buffer refilled in place (as CUDA graphs do): F_D of both
    # images is the same object, storage and shape
    real_features, static = model.encoder.forward_features, []

    def static_features(x, *args, **kwargs):
        f = real_features(x, *args, **kwargs)
        if not static:
            static.append(torch.empty_like(f))
        return static[0].copy_(f)

    model.encoder.forward_features = static_features
    with ctx():
        model(a, scale=2)
        assert torch.equal(model(b, scale=2), want)
    del model.encoder.forward_features
    rng = np.random.default_rng(0)
    ia, ib = (rng.integers(0, 256, (10, 12, 3), dtype=np.uint8) for _ in range(2))
    up = Upscaler(model, precision="fp32", outscale=2)
    with ctx():
        up(ia)
        got = up(ib)
    np.testing.assert_array_equal(got, Upscaler(copy.deepcopy(fresh), precision="fp32", outscale=2)(ib))
