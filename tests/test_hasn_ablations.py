"""HASN ablation switches (paper section 5, Tables 2-8): parameter counts and FLOPs against the
paper's tables, each switch against a hand-written forward, detection round trips, refusals.

The ablation networks are the authors' own (official repository, Python 3.9 bytecode of
``basicsr/archs/starsr*_arch`` and ``sum_arch``; results/cnn_models.md, "HASN ablation options")."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from lightsr.errors import LightSRError
from lightsr.models import create_model
from lightsr.models.hasn import HASB, SPAB
from lightsr.models.loading import detect
from lightsr.profile import count_flops

# The paper prints parameters in thousands, rounded (Table 2) or cut (Table 4: 202,796 -> "202k"),
# so a count that is right lies within 1,000 of the printed figure.
K_TOLERANCE = 1_000

# Table 2 (CB base network; the sum and multiplication rows print the same parameter counts):
# embedding dim -> (paper params, paper FLOPs in G, our exact params)
TABLE2 = {30: (90_000, 5.77, 89_838), 52: (227_000, 14.73, 227_756), 90: (610_000, 39.62, 609_618)}
# Table 4 (CB base network, C = 52): depthwise kernel -> (paper params, paper FLOPs in G, ours)
TABLE4 = {3: (202_000, 13.09, 202_796), 5: (212_000, 13.75, 212_780), 7: (227_000, 14.73, 227_756),
          9: (247_000, 16.04, 247_724)}
# Table 3 (HASB number; full HASN): blocks -> paper params
TABLE3 = {2: 177_000, 4: 306_000, 6: 435_000, 8: 564_000, 10: 693_000, 12: 822_000}


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def hasn(**opts) -> torch.nn.Module:
    return create_model("hasn", scale=4, **opts)


def fvcore_g(**opts) -> float:
    """FLOPs as the paper counts them (Table 3 convention, tests/test_profile.py): fvcore at a
    1x3x256x256 input, x4."""
    m = hasn(**opts).eval().to("meta")
    return count_flops(m, 4, convention="fvcore", input_size=(256, 256)) / 1e9


# ---------------------------------------------------------------------------------------------
# the defaults are the published HASN
# ---------------------------------------------------------------------------------------------


def test_explicit_defaults_are_todays_model():
    torch.manual_seed(0)
    a = hasn()
    torch.manual_seed(0)
    b = hasn(block="hasb", esa=True, cab=True, act="relu6", fusion="mul", block_residual=False)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert n_params(a) == 435_272  # design/architectures.md section 7; paper Table 1 / 6: 435K
    x = torch.rand(1, 3, 20, 17)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


# ---------------------------------------------------------------------------------------------
# parameters and FLOPs against the paper's tables
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", sorted(TABLE2))
def test_table2_cb_network_mul_and_add(dim):
    """Table 2: the CB base network at three widths, element-wise multiplication vs addition.
    Parameters within 1,000 of the printed figure (and pinned exactly); FLOPs within 0.5 %."""
    paper_params, paper_g, ours = TABLE2[dim]
    mul, add = hasn(block="cb", channels=dim), hasn(block="cb", channels=dim, fusion="add")
    assert n_params(mul) == n_params(add) == ours
    assert abs(ours - paper_params) < K_TOLERANCE
    assert fvcore_g(block="cb", channels=dim) == pytest.approx(paper_g, rel=0.005)


@pytest.mark.parametrize("k", sorted(TABLE4))
def test_table4_cb_network_kernel_size(k):
    """Table 4: the CB base network (C = 52) with 3/5/7/9 depthwise kernels. Parameters within 1,000
    of the printed figure (and pinned exactly); FLOPs within 0.5 %. With eq. 6's LayerNorm the
    counts would be 624 higher and the FLOPs 0.10G higher (fvcore: 5 per element), so the CB has none."""
    paper_params, paper_g, ours = TABLE4[k]
    assert n_params(hasn(block="cb", kernel_size=k)) == ours
    assert abs(ours - paper_params) < K_TOLERANCE
    assert fvcore_g(block="cb", kernel_size=k) == pytest.approx(paper_g, rel=0.005)


def test_table3_hasb_number():
    """Table 3: full HASN with 2..12 blocks; 48,356 + 64,486 per block."""
    for blocks, paper in TABLE3.items():
        ours = n_params(hasn(num_blocks=blocks))
        assert ours == 48_356 + 64_486 * blocks and abs(ours - paper) < K_TOLERANCE


def test_table6_spab_in_place_of_hasb():
    """Table 6 prints 836K for the SPAB network and 435K for HASN. HASN matches; the SPAB network
    does not: six deployed SPABs (3 x (9 C^2 + C) each) in HASN's skeleton are 487,340, and no
    reading found reaches 836K (training-time Conv3XC branches: 2,049,524; SPAN's own skeleton at
    C = 52: 498,208 = its Table 1 entry). Pinned to our count; the gap is reported, not hidden."""
    m = hasn(block="spab")
    assert n_params(m) == 48_356 + 6 * 3 * (9 * 52 * 52 + 52) == 487_340
    assert abs(n_params(hasn()) - 435_000) < K_TOLERANCE
    assert abs(n_params(m) - 836_000) > 300_000  # the known, unexplained mismatch (see docstring)


def test_table7_esa_and_cab_deltas():
    """Table 7 prints no parameter counts; the switches remove exactly their own layers: the ESA
    branch is the third FC (52 -> 156: 8,268) plus ESA on 156 channels (10,076), CAB is 16,138."""
    full = n_params(hasn())
    assert full - n_params(hasn(esa=False)) == 6 * (8_268 + 10_076)
    assert full - n_params(hasn(cab=False)) == 6 * 16_138
    cb = n_params(hasn(block="cb"))
    assert n_params(hasn(block="cb", esa=True)) - cb == 6 * (8_268 + 10_076)
    assert n_params(hasn(block="cb", cab=True)) - cb == 6 * 16_138
    assert full - n_params(hasn(block="cb", esa=True, cab=True)) == 6 * 2 * 52  # only the LayerNorms
    assert n_params(hasn(block="cb", esa=False, cab=False)) == cb


@pytest.mark.parametrize("opts", [{"act": "relu"}, {"act": "LeakyReLU"}, {"fusion": "add"}, {"block_residual": True}])
def test_switches_without_parameters(opts):
    """Tables 2, 5, 8 change no weights: same names and shapes as the base they modify."""
    for block in ("hasb", "cb"):
        base = hasn(block=block).state_dict()
        other = hasn(block=block, **opts).state_dict()
        assert [(k, v.shape) for k, v in base.items()] == [(k, v.shape) for k, v in other.items()]


# ---------------------------------------------------------------------------------------------
# each switch does what the paper (and the official ablation code) says
# ---------------------------------------------------------------------------------------------


def _gate(block, f_o, act, fusion):
    a, b = act(block.f1(f_o)), block.f2(f_o)
    return a * b if fusion == "mul" else a + b


def _block_reference(block, x, *, ln, esa, cab, act, fusion):
    """Eq. 6 written out, with the ablation switches (official Block / StarSR2 / Sum / starsr_esa2 /
    starsr_ca forward passes)."""
    f_o = block.dwconv(x)
    if ln:
        f_o = F.layer_norm(f_o.permute(0, 2, 3, 1), (f_o.shape[1],), block.ln.weight, block.ln.bias).permute(0, 3, 1, 2)
    f_d = _gate(block, f_o, act, fusion)
    if esa:
        f_d = f_d + block.esa(block.f3(f_o))
    y = x + block.dwconv2(block.g(f_d))
    return block.cab(y) if cab else y


ACTS = {"relu": F.relu, "leakyrelu": lambda t: F.leaky_relu(t, 0.01), "relu6": F.relu6}


@pytest.mark.parametrize("block,esa,cab", [("hasb", None, None), ("hasb", False, None), ("hasb", None, False),
                                           ("cb", None, None), ("cb", True, None), ("cb", None, True)])
@pytest.mark.parametrize("act,fusion", [("relu6", "mul"), ("relu", "add"), ("leakyrelu", "mul")])
def test_block_matches_eq6_with_switches(block, esa, cab, act, fusion):
    torch.manual_seed(0)
    m = hasn(channels=32, num_blocks=1, block=block, esa=esa, cab=cab, act=act, fusion=fusion).eval()  # CAB: C >= 30
    b = m.block_1
    has_esa = (block == "hasb") if esa is None else esa
    has_cab = (block == "hasb") if cab is None else cab
    assert (b.ln is not None, b.esa is not None, b.f3 is not None, b.cab is not None) == \
        (block == "hasb", has_esa, has_esa, has_cab)
    x = torch.randn(2, 32, 19, 23) * 4  # wide enough that ReLU6 and ReLU differ
    with torch.no_grad():
        want = _block_reference(b, x, ln=block == "hasb", esa=has_esa, cab=has_cab, act=ACTS[act], fusion=fusion)
        torch.testing.assert_close(b(x), want, rtol=1e-5, atol=1e-5)


def test_activation_modules():
    """Table 8: ReLU, LeakyReLU (PyTorch default slope 0.01, as the official StarSRlrelu), ReLU6."""
    assert type(HASB(32, act="relu").act) is torch.nn.ReLU
    assert type(HASB(32, act="relu6").act) is torch.nn.ReLU6
    lrelu = hasn(block="cb", act="LeakyReLU").block_1.act
    assert type(lrelu) is torch.nn.LeakyReLU and lrelu.negative_slope == 0.01


def test_block_residual_network():
    """Table 5 (b) / official StarSRres: conv_2(F_6 + F_5 + ... + F_1) + F_0, then the up-sampler."""
    torch.manual_seed(0)
    m = hasn(block="cb", channels=16, block_residual=True).eval()
    x = torch.rand(1, 3, 18, 21)
    with torch.no_grad():
        fea = m.conv_1(x)
        outs, out = [], fea
        for i in range(1, 7):
            out = getattr(m, f"block_{i}")(out)
            outs.append(out)
        total = outs[5] + outs[4] + outs[3] + outs[2] + outs[1] + outs[0]
        want = m.upsampler(m.conv_2(total) + fea)
        torch.testing.assert_close(m(x), want, rtol=1e-5, atol=1e-5)
        m.block_residual = False  # the same weights without the residuals: a different network
        assert not torch.allclose(m(x), want)


def test_spab_forward():
    """SPAN's block: three 3x3 convs with SiLU between, out = (h3 + x) * (sigmoid(h3) - 0.5)."""
    torch.manual_seed(0)
    b = SPAB(8).eval()
    x = torch.randn(1, 8, 11, 13)
    with torch.no_grad():
        h = F.conv2d(x, b.c1_r.weight, b.c1_r.bias, padding=1)
        h = F.conv2d(F.silu(h), b.c2_r.weight, b.c2_r.bias, padding=1)
        h = F.conv2d(F.silu(h), b.c3_r.weight, b.c3_r.bias, padding=1)
        torch.testing.assert_close(b(x), (h + x) * (torch.sigmoid(h) - 0.5), rtol=1e-6, atol=1e-6)
    assert sorted(hasn(block="spab").block_1.state_dict()) == [f"c{i}_r.{p}" for i in (1, 2, 3) for p in ("bias", "weight")]


VARIANTS = [{"block": "cb"}, {"block": "cb", "esa": True}, {"block": "cb", "cab": True},
            {"block": "cb", "esa": True, "cab": True}, {"esa": False}, {"cab": False}, {"esa": False, "cab": False},
            {"block": "spab"}, {"block": "cb", "channels": 30, "kernel_size": 3}, {"block": "spab", "num_blocks": 4}]


@pytest.mark.parametrize("opts", VARIANTS)
def test_forward_any_size(opts):
    torch.manual_seed(0)
    m = create_model("hasn", scale=3, **opts).eval()
    for h, w in ((5, 7), (16, 19)):
        with torch.no_grad():
            y = m(torch.rand(1, 3, h, w))
        assert y.shape == (1, 3, 3 * h, 3 * w) and torch.isfinite(y).all()


@pytest.mark.parametrize("opts", VARIANTS)
def test_detected_from_shapes(opts):
    """A checkpoint of an ablation network is recognised from its keys and shapes alone (the options
    that change no weights, act / fusion / block_residual, cannot be, like other such options)."""
    with torch.device("meta"):
        sd = create_model("hasn", scale=2, **opts).state_dict()
    d = detect(sd)
    assert (d.model, d.scale, d.options) == ("hasn", 2, opts)


# ---------------------------------------------------------------------------------------------
# refusals: one line, LightSRError
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("opts,match", [
    ({"block": "rlfb"}, "block='rlfb' is not one of hasb, cb, spab"),
    ({"esa": "off"}, "esa takes true or false"),
    ({"cab": 1}, "cab takes true or false"),
    ({"act": "gelu"}, r"act='gelu' is not one of relu, leakyrelu, relu6 \(Table 8\)"),
    ({"act": None}, "act=None is not one of"),
    ({"fusion": "concat"}, r"fusion='concat' is not one of mul, add \(Table 2\)"),
    ({"block_residual": "yes"}, r"block_residual takes true or false \(Table 5\)"),
    ({"block": "spab", "esa": True}, "esa does not apply to block=spab"),
    ({"block": "spab", "act": "relu"}, "act does not apply to block=spab"),
    ({"block": "spab", "fusion": "add"}, "fusion does not apply to block=spab"),
])
def test_bad_values_are_one_line_errors(opts, match):
    with pytest.raises(LightSRError, match=match) as info:
        hasn(**opts)
    assert "\n" not in str(info.value)


def test_cli_opt(tmp_path, capsys):
    """``--opt key=value`` reaches the builder; a bad value is exit code 2 and one line."""
    from lightsr.cli import main

    out = tmp_path / "p.json"
    args = ["profile", "--model", "hasn", "--scale", "4", "--no-latency", "--input-size", "32x32"]
    assert main([*args, "--opt", "block=cb", "--opt", "fusion=add", "--opt", "block_residual=true",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["params"] == 227_756
    capsys.readouterr()
    assert main([*args, "--opt", "act=gelu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "act='gelu'" in err
