"""C2D-ISR (seed 000): HiET layer (eqs. 2-6), U-Net HiET block (eq. 1), SwinIR-/SRFormer-C2D."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lightsr.errors import LightSRError
from lightsr.layers.attention import channel_self_correlation
from lightsr.layers.window import mirror_pad
from lightsr.models import create_model
from lightsr.checkpoint import warm_start
from lightsr.models.c2d import HiETAttention, HiETBlock, hierarchical_encoding, stage1_body

# Table 1 of the paper (params); ours = design "dfe MLP, post-norm, 1 fusion per block" (c2d.py)
OURS = {("swinir_c2d", 2): 759_048, ("swinir_c2d", 3): 767_163, ("swinir_c2d", 4): 778_524,
        ("srformer_c2d", 2): 833_928, ("srformer_c2d", 3): 842_043, ("srformer_c2d", 4): 853_404}
PAPER = {("swinir_c2d", 2): 755e3, ("swinir_c2d", 3): 763e3, ("swinir_c2d", 4): 775e3,
         ("srformer_c2d", 2): 830e3, ("srformer_c2d", 3): 838e3, ("srformer_c2d", 4): 849e3}


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def macs(model: nn.Module, h: int, w: int) -> float:
    """torch.utils.flop_counter total / 2, on the meta device (no arithmetic is run)."""
    model = model.to("meta")
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.zeros(1, 3, h, w, device="meta"))
    return fc.get_total_flops() / 2


@pytest.mark.parametrize("key", sorted(OURS))
def test_param_counts_exact_and_near_table1(key):
    n = n_params(create_model(key[0], key[1]))
    assert n == OURS[key]
    assert abs(n / PAPER[key] - 1) < 0.02


def test_macs_small_input_match_hand_count():
    # 64x64 LR: every window divides 64, so no padding. Per token (C=60, hidden 120, x4):
    # conv_first 1620; per HiET layer DFE(62->60) 744+1296+720+3720 + CSC 2*30*30 + Linear(30->60)
    # 1800 + FFN 14400 = 24480 (x24); fusion 7200 (x4); group convs 32400 (x4); conv_after_body
    # 32400; pixelshuffledirect 60*48*9 = 25920. SRFormer adds DW5x5 120*25 = 3000 per layer.
    per_token = 1620 + 24 * 24480 + 4 * 7200 + 4 * 32400 + 32400 + 25920
    assert macs(create_model("swinir_c2d", 4), 64, 64) == 64 * 64 * per_token
    assert macs(create_model("srformer_c2d", 4), 64, 64) == 64 * 64 * (per_token + 24 * 3000)


@pytest.mark.slow
@pytest.mark.parametrize("name,scale,expected", [
    ("swinir_c2d", 4, 47_011_046_400), ("srformer_c2d", 4, 51_158_246_400)])
def test_macs_1280x720(name, scale, expected):
    assert macs(create_model(name, scale), 720 // scale, 1280 // scale) == expected


@pytest.mark.slow
def test_table2_deltas_1280x720():
    """Table 2 (SRFormer-C2D x4): our params / MACs differences (paper: -2K/-0.3G, +46K/+9.2G,
    -29K/-3.4G, 0/-0.7G, 0/0, 0/+1.6G); see results/c2d.md."""
    f0 = macs(create_model("srformer_c2d", 4), 180, 320)
    expect = [(dict(hie=False), -3456, -209_387_520), (dict(attention="scc"), 45672, None),
              (dict(unet=False), -29040, -1_658_880_000), (dict(windows=[32, 16, 8, 8, 16, 32]), 0, 0),
              (dict(windows=[8, 32, 64, 64, 32, 8]), 0, 0), (dict(windows=[64] * 6), 0, 169_574_400)]
    for opts, dp, df in expect:
        m = create_model("srformer_c2d", 4, **opts)
        diff = macs(m, 180, 320) - f0
        print(opts, f"{n_params(m) - 853_404:+,} params, {diff / 1e9:+.2f} G MACs")
        assert n_params(m) - 853_404 == dp
        assert diff > 0 if df is None else diff == df  # SCC: depends on the shared S-SC evaluation


def test_hierarchical_encoding_bits():
    # eq. 2 on a 6 x 10 map with window (h_i, w_i) = (2, 4): column bit floor(2u/4) mod 2,
    # row bit floor(2v/2) mod 2
    he = hierarchical_encoding(6, 10, (2, 4))
    assert he.shape == (6, 10, 2)
    assert he[0, :, 0].tolist() == [0, 0, 1, 1, 0, 0, 1, 1, 0, 0]
    assert he[:, 0, 1].tolist() == [0, 1, 0, 1, 0, 1]
    assert torch.equal(he[3, :, 0], he[0, :, 0]) and torch.equal(he[:, 7, 1], he[:, 0, 1])
    he8 = hierarchical_encoding(8, 8, 8)
    assert he8[0, :, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_csc_matches_naive_loop():
    torch.manual_seed(0)
    q, v = torch.randn(3, 10, 4, dtype=torch.float64), torch.randn(3, 10, 4, dtype=torch.float64)
    out = channel_self_correlation(q, v)
    ref = torch.zeros_like(out)
    for b in range(3):
        a = [[sum(q[b, s, i] * v[b, s, j] for s in range(10)) / 10 for j in range(4)] for i in range(4)]
        for t in range(10):
            for i in range(4):  # F1 = ((Q^T V / N) V^T)^T: F1[t, i] = sum_j A[i, j] V[t, j]
                ref[b, t, i] = sum(a[i][j] * v[b, t, j] for j in range(4))
    assert torch.allclose(out, ref)


@pytest.mark.parametrize("mlp", ["dfe", "linear"])
def test_hiet_attention_matches_naive_per_window(mlp):
    """Eqs. 2-6 written out per window on a 5 x 7 map (padded to 8 x 8 with window 4)."""
    torch.manual_seed(0)
    attn = HiETAttention(10, 4, mlp=mlp).double()
    x = torch.randn(1, 5, 7, 10, dtype=torch.float64)
    out = attn(x)
    xp = mirror_pad(x.permute(0, 3, 1, 2), 3, 1).permute(0, 2, 3, 1)  # (1, 8, 8, 10)
    he = torch.zeros(1, 8, 8, 2, dtype=torch.float64)
    for r in range(8):
        for col in range(8):  # eq. 2 with u = column, v = row, h_i = w_i = 4
            he[0, r, col] = torch.tensor([int(col / 4 * 2) % 2, int(r / 4 * 2) % 2])
    xin = torch.cat([xp, he], -1)
    f0 = attn.mlp(xin.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)[0] if mlp == "dfe" else attn.mlp(xin)[0]
    ref = torch.zeros(8, 8, 5, dtype=torch.float64)
    for wi in range(2):
        for wj in range(2):
            rows, cols = slice(4 * wi, 4 * wi + 4), slice(4 * wj, 4 * wj + 4)
            win = f0[rows, cols].reshape(16, 10)
            qq, vv = win[:, :5], win[:, 5:]  # eq. 4
            ref[rows, cols] = (((qq.T @ vv) / 16) @ vv.T).T.reshape(4, 4, 5)  # eq. 5
    expected = attn.norm(attn.proj(ref[:5, :7]))  # eq. 6
    assert torch.allclose(out[0], expected)


def _wiring(skips):
    """A 6-layer HiETBlock of tagged linear layers; returns inputs/outputs of each layer."""
    torch.manual_seed(0)

    class Tagged(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x, size):
            return torch.tanh(self.lin(x))

    block = HiETBlock(4, [64, 32, 8, 8, 32, 64], lambda i, w: Tagged(), skips=skips)
    ins, outs = {}, {}
    for i, layer in enumerate(block.layers):
        layer.register_forward_pre_hook(lambda m, a, i=i: ins.__setitem__(i, a[0]))
        layer.register_forward_hook(lambda m, a, o, i=i: outs.__setitem__(i, o))
    x = torch.randn(2, 12, 4)
    y = block(x, (3, 4))
    return block, x, y, ins, outs


def _fused(block, level, dec, enc, size=(3, 4)):
    b, n, c = dec.shape
    cat = torch.cat([dec, enc], -1).transpose(1, 2).reshape(b, 2 * c, *size)
    return block.fusions[level](cat).flatten(2).transpose(1, 2)


@pytest.mark.parametrize("skips", [None, 1, 0])
def test_unet_wiring(skips):
    block, x, y, ins, outs = _wiring(skips)
    assert len(block.fusions) == {None: 2, 1: 1, 0: 0}[skips]
    assert torch.equal(ins[0], x) and torch.equal(y, outs[5])
    for i in (1, 2, 3):  # encoder 64 -> 32 -> 8, then the bottom 8: sequential
        assert torch.equal(ins[i], outs[i - 1])
    # eq. 1: decoder layer 4 (window 32) <- Conv1x1([O_3, O_1]); layer 5 (64) <- Conv1x1([O_4, O_0])
    exp4 = _fused(block, 1, outs[3], outs[1]) if skips is None else outs[3]
    exp5 = _fused(block, 0, outs[4], outs[0]) if skips in (None, 1) else outs[4]
    assert torch.allclose(ins[4], exp4) and torch.allclose(ins[5], exp5)


def test_five_layer_block_for_mambairv2():
    seen = []
    block = HiETBlock(4, [64, 32, 8, 32, 64], lambda i, w: _Probe(seen, w), skips=None)
    assert len(block.fusions) == 2
    block(torch.randn(1, 6, 4), (2, 3))
    assert seen == [64, 32, 8, 32, 64]


class _Probe(nn.Module):
    def __init__(self, seen, w):
        super().__init__()
        self.seen, self.w = seen, w

    def forward(self, x, size):
        self.seen.append(self.w)
        return x


def test_odd_and_tiny_inputs_shape():
    torch.manual_seed(0)
    model = create_model("srformer_c2d", 3, blocks=1).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 37, 53)).shape == (1, 3, 111, 159)
        assert model(torch.rand(1, 3, 3, 2)).shape == (1, 3, 9, 6)


def test_batch_of_one_equals_batch():
    torch.manual_seed(0)
    model = create_model("swinir_c2d", 2, blocks=1).eval()
    x = torch.rand(3, 3, 21, 30)
    with torch.no_grad():
        full = model(x)
        one = model(x[1:2])
    assert torch.allclose(full[1:2], one, atol=1e-5)


def test_ablations_change_counts_in_the_expected_direction():
    # one block (the full x4 model's differences are 4x these: -3,456 / +45,672 / -29,040)
    base = create_model("srformer_c2d", 4, blocks=1)
    p0, f0 = n_params(base), macs(base, 40, 40)
    expect = [  # option, params diff, MACs sign at 40x40 LR
        (dict(hie=False), -864, -1), (dict(attention="scc"), +11418, +1), (dict(unet=False), -7260, -1),
        (dict(windows=[32, 16, 8, 8, 16, 32]), 0, -1), (dict(windows=[8, 32, 64, 64, 32, 8]), 0, 0),
        (dict(windows=[64] * 6), 0, +1)]
    for opts, dp, sign in expect:
        m = create_model("srformer_c2d", 4, blocks=1, **opts)
        assert n_params(m) - p0 == dp, opts
        df = macs(m, 40, 40) - f0
        assert (df > 0) - (df < 0) == sign, (opts, df)


def test_scc_ablation_runs():
    model = create_model("swinir_c2d", 2, blocks=1, attention="scc", windows=[16, 8, 8, 16]).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 11, 13)).shape == (1, 3, 22, 26)


def test_bad_options_raise_one_line_errors():
    for opts in (dict(windows="big"), dict(hie="no"), dict(mlp="x"), dict(skips=3), dict(colour=1),
                 dict(attention="scc", windows=[12, 12])):
        with pytest.raises(LightSRError):
            create_model("swinir_c2d", 4, **opts)


def test_continuous_twin_and_stage2_init():
    torch.manual_seed(0)
    twin = create_model("swinir_c2d_hiif", blocks=1).eval()
    assert twin.continuous
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert twin(x, scale=2.5).shape == (1, 3, 22, 28)
        model = create_model("swinir_c2d", 3, blocks=1)
        rep = warm_start(model, twin, fresh=("upsample",), filter=stage1_body)
        assert rep["fresh"] == [k for k in model.state_dict() if k.startswith("upsample.")] and rep["fresh"]
        assert rep["dropped"] and all(not k.startswith("encoder.") for k in rep["dropped"])  # HIIF-L
        assert torch.equal(model.forward_features(x), twin.encoder.forward_features(x))
    with pytest.raises(LightSRError):
        warm_start(create_model("swinir_c2d", 3, blocks=2), twin, fresh=("upsample",), filter=stage1_body)


@pytest.mark.parametrize("opts", [{"dim": 12}, {"attention": "scc", "skips": None, "windows": [16, 8, 8, 16]}])
def test_every_parameter_gets_a_gradient(opts):
    torch.manual_seed(0)
    model = create_model("srformer_c2d", 2, blocks=1, **opts)
    model(torch.rand(2, 3, 16, 16)).abs().mean().backward()
    missing = [k for k, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
