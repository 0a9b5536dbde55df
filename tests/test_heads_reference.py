"""Naive per-query references for the arbitrary-scale heads (issue 16, item 5).

Each reference is written from its paper's equations, one query (output pixel) at a time, with
integer LR indices instead of grid_sample, and compared with the vectorised head of
lightsr.models.liif / metasr / srno / arbsr on a 6x7 LR map at a non-integer scale (15x18 output: s = 2.5 x 18/7).
Every comparison is shown to be able to fail: ``test_*_catches`` re-runs it with one deliberate
defect patched into the vectorised head and requires a mismatch.

Already referenced in tests/test_implicit.py and not repeated here: the Galerkin block in its
matrix form Q (K^T V) / N (``test_galerkin_attention_matches_naive``) and ArbSR's scale-aware
convolution as a routed sum of expert convolutions (``test_arbsr_scale_aware_conv_mixes_experts``).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightsr.layers.coords import coord_grid, make_cell
from lightsr.models import arbsr, liif, metasr, srno
from lightsr.models.arbsr import ArbSRHead
from lightsr.models.liif import LIIFHead
from lightsr.models.metasr import MetaSRHead
from lightsr.models.srno import SRNOHead

LR, HR, C = (6, 7), (15, 18), 8
TOL = 1e-5


@pytest.fixture
def inputs():
    torch.manual_seed(0)
    feat = torch.randn(1, C, *LR)
    inp = torch.rand(1, 3, *LR) * 2 - 1
    return feat, coord_grid(HR), make_cell(HR), inp


def lr_index(k: int, n_hr: int, n_lr: int) -> float:
    """Continuous LR index (centres at integers) of the centre of HR pixel k: (k + 0.5) n/N - 0.5."""
    return (k + 0.5) * n_lr / n_hr - 0.5


def unfolded(feat: torch.Tensor, i: int, j: int) -> torch.Tensor:
    """LIIF's feature unfolding at LR pixel (i, j): the 3x3 neighbourhood (zero outside), (C*9,)
    ordered channel-major as F.unfold."""
    c, h, w = feat.shape[1:]
    taps = [feat[0, :, i + di, j + dj] if 0 <= i + di < h and 0 <= j + dj < w else torch.zeros(c)
            for di in (-1, 0, 1) for dj in (-1, 0, 1)]
    return torch.stack(taps, 1).reshape(-1)


def quadrant_codes(u: float, v: float, h: int, w: int):
    """LIIF eq. (local ensemble): the nearest code in each of the 4 sub-spaces around the query at
    continuous LR index (u, v): rows floor(u), floor(u)+1 and columns floor(v), floor(v)+1, clamped
    into the map. Yields ((row, col), rel, rel of the diagonally opposite code) with
    rel = x_q - v* in LIIF's [-1, 1] coordinates times (h, w), i.e. 2 x the LR-pixel offset."""
    rows = [min(max(math.floor(u) + d, 0), h - 1) for d in (0, 1)]
    cols = [min(max(math.floor(v) + d, 0), w - 1) for d in (0, 1)]

    def rel(a, b):
        return 2 * (u - rows[a]), 2 * (v - cols[b])

    for a in (0, 1):
        for b in (0, 1):
            yield (rows[a], cols[b]), rel(a, b), rel(1 - a, 1 - b)


def area_weights(opposite_rels) -> list[float]:
    """S_t / S: each code weighted by the area between the query and the opposite code."""
    areas = [abs(dy * dx) + 1e-9 for dy, dx in opposite_rels]
    return [a / sum(areas) for a in areas]


def naive_liif(head: LIIFHead, feat, cell) -> torch.Tensor:
    """LIIF (Chen et al. 2021) eqs. 3-5: I(x_q) = sum_t S_t/S f([z*_t unfolded, x_q - v*_t, cell])."""
    (h, w), (H, W) = LR, HR
    rel_cell = [float(cell[0, 0]) * h, float(cell[0, 1]) * w]
    out = torch.zeros(1, 3, H, W)
    for p in range(H):
        for q in range(W):
            codes = list(quadrant_codes(lr_index(p, H, h), lr_index(q, W, w), h, w))
            weights = area_weights([opp for _, _, opp in codes])
            for ((i, j), rel, _), wt in zip(codes, weights):
                z = torch.cat([unfolded(feat, i, j), torch.tensor([*rel, *rel_cell])])
                out[0, :, p, q] += wt * head.imnet(z)
    return out


def naive_metasr(head: MetaSRHead, feat) -> torch.Tensor:
    """Meta-SR (Hu et al. 2019) eqs. 2-4: HR pixel (p, q) reads LR pixel (floor(p/r), floor(q/r));
    its filter W = phi(p/r - floor(p/r), q/r - floor(q/r), 1/r) (9C x 3) acts on the 3x3 unfolded
    feature there. r = H/h per axis (1/r from the height, as LIIF's re-implementation)."""
    (h, w), (H, W) = LR, HR
    out = torch.zeros(1, 3, H, W)
    for p in range(H):
        for q in range(W):
            i, j = (p * h) // H, (q * w) // W  # exact integer floor(p / r)
            v = torch.tensor([(p * h - i * H) / H, (q * w - j * W) / W, h / H])
            weights = head.imnet(v).view(C * 9, 3)
            out[0, :, p, q] = unfolded(feat, i, j) @ weights
    return out


def bilinear(img: torch.Tensor, y: float, x: float, border: bool) -> torch.Tensor:
    """Bilinear value of img (1, C, h, w) at continuous index (y, x); outside the map the nearest
    edge pixel (border) or zero."""
    h, w = img.shape[-2:]
    if border:
        y, x = min(max(y, 0), h - 1), min(max(x, 0), w - 1)
    y0, x0 = math.floor(y), math.floor(x)
    val = torch.zeros(img.shape[1])
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                val += wy * wx * img[0, :, yy, xx]
    return val


def galerkin_per_query(blk, x: torch.Tensor) -> torch.Tensor:
    """SRNO's Galerkin-type attention (Wei & Zhang 2023, eq. 8) as a kernel integral per query:
    o_i = (1/n) sum_j (q_i . LN(k_j)) LN(v_j), per head; r = o + x; out = x + W2 GELU(W1 r).
    x: (n, d_model) tokens; LN = (a - mean) / (unbiased std + eps) * gamma + beta over the head."""
    n, dm = x.shape
    d = dm // blk.heads
    wq = blk.qkv_proj.weight.view(3 * dm, dm)
    t = x @ wq.t() + blk.qkv_proj.bias
    heads = []
    for hd in range(blk.heads):
        q, k, v = (t[:, hd * 3 * d + s * d: hd * 3 * d + (s + 1) * d] for s in range(3))
        k, v = (((a - a.mean(1, keepdim=True)) / (a.std(1, keepdim=True) + ln.eps)) * ln.weight[hd, 0]
                + ln.bias[hd, 0] for a, ln in ((k, blk.kln), (v, blk.vln)))
        heads.append(torch.stack([(k @ q[i]) @ v / n for i in range(n)]))
    r = torch.cat(heads, 1) + x
    return x + conv1x1(blk.o_proj2, F.gelu(conv1x1(blk.o_proj1, r)))


def conv1x1(conv, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution applied to tokens (n, C_in) -> (n, C_out)."""
    return x @ conv.weight.flatten(1).t() + conv.bias


def naive_srno(head: SRNOHead, feat, cell, inp) -> torch.Tensor:
    """SRNO: lifting g(x_q) = W0 [rel_1..4, S_t/S z*_t (t = 1..4), cell*(h, w)] (eq. 6), two Galerkin
    kernel integrals over all queries, projection fc2 GELU fc1, plus the bilinear (border) input."""
    (h, w), (H, W) = LR, HR
    rel_cell = [float(cell[0, 0]) * h, float(cell[0, 1]) * w]
    tokens, skips = [], []
    for p in range(H):
        for q in range(W):
            u, v = lr_index(p, H, h), lr_index(q, W, w)
            codes = list(quadrant_codes(u, v, h, w))
            weights = area_weights([opp for _, _, opp in codes])
            rels = [torch.tensor(rel) for _, rel, _ in codes]
            zs = [feat[0, :, i, j] * wt for ((i, j), _, _), wt in zip(codes, weights)]
            tokens.append(torch.cat([*rels, *zs, torch.tensor(rel_cell)]))
            skips.append(bilinear(inp, u, v, border=True))
    x = conv1x1(head.conv00, torch.stack(tokens))
    x = galerkin_per_query(head.conv1, galerkin_per_query(head.conv0, x))
    out = conv1x1(head.fc2, F.gelu(conv1x1(head.fc1, x))) + torch.stack(skips)
    return out.t().reshape(1, 3, H, W)


def naive_arbsr_upsample(up, feat) -> torch.Tensor:
    """ArbSR (Wang et al. 2021) scale-aware up-sampling, per HR pixel (p, q), s = H/h, W/w:
    R = (p + 0.5)/s - floor((p + 0.5)/s + 1e-3) - 0.5 (sec. 3.3, the official 1e-3 guard);
    e = MLP([1/s_w, 1/s_h, R_p, R_q]) (official order); offset = W_o e; route = sigmoid(W_r e);
    W_c = sum_k route_k W_c,k, W_e = sum_k route_k W_e,k; f = bilinear feature (zero outside) at
    (p + 0.5)/s - 0.5 + offset, read through the official 2/(n - 1) normalisation (index
    scaled by n/(n-1)); out = W_e W_c f + f."""
    (h, w), (H, W) = LR, HR
    sh, sw = H / h, W / w
    out = torch.zeros(1, feat.shape[1], H, W)
    for p in range(H):
        for q in range(W):
            rp = (p + 0.5) / sh - math.floor((p + 0.5) / sh + 1e-3) - 0.5
            rq = (q + 0.5) / sw - math.floor((q + 0.5) / sw + 1e-3) - 0.5
            e = torch.tensor([1 / sw, 1 / sh, rp, rq])
            e = F.relu(conv1x1(up.body[2], F.relu(conv1x1(up.body[0], e[None]))))
            off, route = conv1x1(up.offset, e)[0], torch.sigmoid(conv1x1(up.routing[0], e))[0]
            wc = torch.einsum("k,kab->ab", route, up.weight_compress.flatten(2))
            we = torch.einsum("k,kab->ab", route, up.weight_expand.flatten(2))
            y = ((p + 0.5) / sh - 0.5 + float(off[1])) * h / (h - 1) - 0.5
            x = ((q + 0.5) / sw - 0.5 + float(off[0])) * w / (w - 1) - 0.5
            f = bilinear(feat, y, x, border=False)
            out[0, :, p, q] = we @ (wc @ f) + f
    return out


def naive_arbsr(head: ArbSRHead, feat) -> torch.Tensor:
    return head.tail(naive_arbsr_upsample(head.sa_upsample, feat))


# ---------------------------------------------------------------------------------------------
# one case per head: (head, its naive reference)
# ---------------------------------------------------------------------------------------------
def _case(name: str):
    torch.manual_seed(1)
    if name == "liif":
        head = LIIFHead(C, hidden=(16, 16))
        return head, lambda f, co, ce, i: naive_liif(head, f, ce)
    if name == "metasr":
        head = MetaSRHead(C, hidden=16)
        return head, lambda f, co, ce, i: naive_metasr(head, f)
    if name == "srno":
        head = SRNOHead(C, width=16, heads=4)
        return head, lambda f, co, ce, i: naive_srno(head, f, ce, i)
    head = ArbSRHead(C)
    return head, lambda f, co, ce, i: naive_arbsr(head, f)


def _max_error(name: str, inputs) -> float:
    head, ref = _case(name)
    with torch.no_grad():
        return float((head(*inputs) - ref(*inputs)).abs().max())


HEADS = ["liif", "metasr", "srno", "arbsr"]


@pytest.mark.parametrize("name", HEADS)
def test_head_matches_naive_reference(name, inputs):
    """Vectorised head == its per-query equations, to 1e-5, at a non-integer scale."""
    assert _max_error(name, inputs) < TOL


# ---------------------------------------------------------------------------------------------
# the references can fail: one deliberate defect each, patched into the vectorised head
# ---------------------------------------------------------------------------------------------
make_coord_orig, arbsr_grid_sample_orig = metasr.make_coord, arbsr._arbsr_grid_sample
# the module each head looks its helpers up in (one paper, one file)
HEAD_MODULES = {"liif": liif, "srno": srno, "metasr": metasr, "arbsr": arbsr}


def _unswapped_weights(rels):
    """Defect: weight each code by its own area instead of the diagonally opposite one."""
    areas = [(r[:, 0] * r[:, 1]).abs() + 1e-9 for r in rels]
    tot = torch.stack(areas).sum(0)
    return [(a / tot).unsqueeze(1) for a in areas]


def _shifted_coord(shape, *args, **kwargs):
    """Defect: LR positions a quarter pixel off (MetaSR's rel then misses its 1/r offset)."""
    c = make_coord_orig(shape, *args, **kwargs)
    return c + 0.5 / max(shape)


def _biased_norm(self, x):
    """Defect: Galerkin LayerNorm with the biased standard deviation."""
    x = (x - x.mean(-1, keepdim=True)) / (x.std(-1, unbiased=False, keepdim=True) + self.eps)
    return self.weight * x + self.bias


def _swapped_offsets(x, offset, out_size, scale):
    """Defect: ArbSR's predicted offsets applied with their (x, y) channels swapped."""
    return arbsr_grid_sample_orig(x, offset.flip(1), out_size, scale)


DEFECTS = [
    ("liif", "ensemble_weights", _unswapped_weights),
    ("srno", "ensemble_weights", _unswapped_weights),
    ("srno", "GalerkinLayerNorm.forward", _biased_norm),
    ("metasr", "make_coord", _shifted_coord),
    ("arbsr", "_arbsr_grid_sample", _swapped_offsets),
]


@pytest.mark.parametrize("name, target, defect", DEFECTS, ids=[f"{n}-{t}" for n, t, _ in DEFECTS])
def test_reference_catches(name, target, defect, inputs, monkeypatch):
    """Each reference fails on a head with one defect: swapped area weights (LIIF, SRNO), a biased
    std in SRNO's Galerkin LayerNorm, MetaSR's LR positions shifted, ArbSR's offset channels
    swapped. (Checked by hand too, 2026-12-01: ``areas[3 - k]`` -> ``areas[k]`` in
    layers/coords.ensemble_weights, in a scratch copy of the package put first on PYTHONPATH, made
    test_head_matches_naive_reference fail for liif and srno.)"""
    owner, _, attr = target.rpartition(".")
    module = HEAD_MODULES[name]
    monkeypatch.setattr(getattr(module, owner) if owner else module, attr, defect)
    assert _max_error(name, inputs) > 100 * TOL
