"""Arbitrary-scale (continuous) SR: coordinates, cells, local ensembles and implicit heads.

Conventions (LIIF, ``yinboc/liif``; design/architectures.md section 5)
--------------------------------------------------------------------
* A query coordinate is ``(y, x)`` in [-1, 1], pixel centres: ``make_coord((H, W))[i, j] =
  (-1 + (2i+1)/H, -1 + (2j+1)/W)``. A query grid is (B, Hq, Wq, 2).
* The cell of an HR pixel is ``(2/H_hr, 2/W_hr)``, shape (B, 2). For an LR map of h x w,
  ``cell * (h, w) = 2/s`` (the "rel_cell" of LIIF = the ``cell = [2/s_H, 2/s_W]`` of seed 000).
* A head is an ``nn.Module`` with ``forward(feat, coord, cell, inp) -> (B, 3, Hq, Wq)`` where
  ``feat`` (B, C, h, w) are backbone features and ``inp`` is the (normalised) LR image the
  bilinear skip of SRNO/HIIF-L reads. ``head.global_queries`` is True when the head attends over
  all queries of an image (SRNO, HIIF-L): such heads also expose ``embed / attn_blocks / project``
  and are evaluated exactly in row chunks by accumulating each linear attention's K^T V over the
  grid (:meth:`ImplicitSR.query`); per-query heads (LIIF, MetaSR) are chunked directly. Memory is
  bounded by ``max_queries`` either way (ArbSR renders whole grids).

Heads
-----
* :class:`LIIFHead`  ``LIIFHead(in_dim=64)``    -- LIIF (Chen et al. 2021), keys ``imnet.layers.*``
* :class:`MetaSRHead` ``MetaSRHead(in_dim=64)`` -- Meta-SR as in ``liif/models/misc.py``
* :class:`SRNOHead`  ``SRNOHead(in_dim=64, width=256, heads=16)`` -- SRNO (Galerkin attention),
  keys ``conv00, conv0, conv1, fc1, fc2`` as ``AnySR/models/sronet.py``
* :class:`ArbSRHead` ``ArbSRHead(in_dim=64)`` -- ArbSR's scale-aware up-sampler + tail conv; the
  backbone side (:class:`SAAdapt` after every K blocks) is an EDSR/RDN option (``adapt_every``)
* :class:`HIIFL`     ``HIIFL(in_dim, dim=None, heads=None)`` -- HIIF-L of C2D-ISR (seed 000 eqs. 7-9);
  ``dim`` defaults to ``in_dim`` (the paper sets dim = C).

Wrapper
-------
:class:`ImplicitSR` ``(backbone, head, norm=0.5)`` turns a backbone with
``forward_features(x) -> (B, C, h, w)`` into a continuous model
(``forward(x, scale=None, coord=None, cell=None)``, ``model.continuous = True``).
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import LightSRError

__all__ = [
    "make_coord", "make_cell", "coord_grid", "parse_scale", "output_size", "scale_from_cell",
    "neighbours", "ensemble_weights", "hierarchical_bits", "local_coord",
    "LIIFHead", "MetaSRHead", "SRNOHead", "HIIFL", "GalerkinAttention", "ImplicitSR", "query_chunks",
    "SAConv", "SAAdapt", "SAUpsample", "ArbSRHead",
]

# ----------------------------------------------------------------------------------------------
# coordinates and cells
# ----------------------------------------------------------------------------------------------


def make_coord(shape: Sequence[int], ranges: Sequence[tuple[float, float]] | None = None,
               flatten: bool = True, device: torch.device | str | None = None) -> Tensor:
    """Pixel-centre coordinates of a grid (LIIF ``utils.make_coord``): (H, W, 2) or (H*W, 2)."""
    seqs = []
    for i, n in enumerate(shape):
        v0, v1 = (-1.0, 1.0) if ranges is None else ranges[i]
        r = (v1 - v0) / (2 * n)
        seqs.append(v0 + r + (2 * r) * torch.arange(n, device=device, dtype=torch.float32))
    ret = torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1)
    return ret.view(-1, ret.shape[-1]) if flatten else ret


def coord_grid(hr_size: tuple[int, int], batch: int = 1, device: torch.device | str | None = None) -> Tensor:
    """(B, H, W, 2) query grid of the pixel centres of an H x W output."""
    return make_coord(hr_size, flatten=False, device=device).unsqueeze(0).expand(batch, -1, -1, -1)


def make_cell(hr_size: tuple[int, int], batch: int = 1, device: torch.device | str | None = None) -> Tensor:
    """(B, 2) cell ``(2/H, 2/W)`` of the pixels of an H x W output."""
    h, w = hr_size
    return torch.tensor([2.0 / h, 2.0 / w], device=device).unsqueeze(0).repeat(batch, 1)


def parse_scale(scale: float | Sequence[float]) -> tuple[float, float]:
    """A float or (s_h, s_w) pair -> (s_h, s_w); a LightSRError for non-positive/invalid scales."""
    if isinstance(scale, Tensor):
        scale = scale.tolist()
    if isinstance(scale, (int, float)):
        pair = (float(scale), float(scale))
    else:
        try:
            if isinstance(scale, (str, bytes)):
                raise TypeError
            pair = tuple(float(s) for s in scale)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise LightSRError(f"scale must be a number or an (s_h, s_w) pair, not {scale!r}") from None
        if len(pair) != 2:
            raise LightSRError(f"scale must be a number or an (s_h, s_w) pair, not {scale!r}")
    if not all(math.isfinite(s) and s > 0 for s in pair):
        raise LightSRError(f"scale must be positive, got {scale!r}")
    return pair  # type: ignore[return-value]


def output_size(h: int, w: int, scale: float | Sequence[float]) -> tuple[int, int]:
    """Output size of an arbitrary-scale model: (round(h*s_h), round(w*s_w))."""
    sh, sw = parse_scale(scale)
    return max(1, round(h * sh)), max(1, round(w * sw))


def scale_from_cell(cell: Tensor, lr_size: tuple[int, int]) -> tuple[float, float]:
    """Recover (s_h, s_w) from a cell (2/H_hr, 2/W_hr) and the LR size (first sample)."""
    c = cell[0].detach().double().cpu()
    return float(2.0 / (c[0] * lr_size[0])), float(2.0 / (c[1] * lr_size[1]))


# ----------------------------------------------------------------------------------------------
# 4-neighbour local ensemble
# ----------------------------------------------------------------------------------------------


def neighbours(feat: Tensor, coord: Tensor, rel_scale: float = 1.0
               ) -> Iterator[tuple[Tensor, Tensor]]:
    """The 4 nearest LR codes of every query (LIIF local ensemble, design section 5.1).

    For v in {-1, +1}^2 (order (-1,-1), (-1,+1), (+1,-1), (+1,+1)): shift the query by half an LR
    pixel (+ eps 1e-6), clamp into the image, fetch the nearest code ``z*`` (B, C, Hq, Wq) and the
    relative offset ``rel = (x_q - v*) * (h, w) * rel_scale`` (B, 2, Hq, Wq). ``rel_scale = 1`` is
    the LIIF/SRNO scaling (rel in (-2, 2)); ``0.5`` gives LR-pixel units (HIIF).
    """
    b, _, h, w = feat.shape
    pos = make_coord((h, w), flatten=False, device=feat.device).permute(2, 0, 1)
    pos = pos.unsqueeze(0).expand(b, 2, h, w)
    rx, ry, eps = 1.0 / h, 1.0 / w, 1e-6
    mult = torch.tensor([h * rel_scale, w * rel_scale], device=feat.device).view(1, 2, 1, 1)
    for vx in (-1, 1):
        for vy in (-1, 1):
            shift = torch.tensor([vx * rx + eps, vy * ry + eps], device=coord.device, dtype=coord.dtype)
            c = (coord + shift).clamp(-1 + 1e-6, 1 - 1e-6).flip(-1)
            z = F.grid_sample(feat, c, mode="nearest", align_corners=False)
            centre = F.grid_sample(pos.to(coord.dtype), c, mode="nearest", align_corners=False)
            yield z, (coord.permute(0, 3, 1, 2) - centre) * mult


def ensemble_weights(rels: Sequence[Tensor]) -> list[Tensor]:
    """Bilinear-like blending weights (B, 1, Hq, Wq): each neighbour is weighted by the area of the
    diagonally opposite rectangle, ``area_{3-k} / sum(area)``, ``area = |rel_y * rel_x| + 1e-9``."""
    areas = [(r[:, 0] * r[:, 1]).abs() + 1e-9 for r in rels]
    tot = torch.stack(areas).sum(0)
    return [(areas[3 - k] / tot).unsqueeze(1) for k in range(4)]


def local_coord(coord: Tensor, lr_size: tuple[int, int]) -> Tensor:
    """Query position inside its LR pixel, in LR-pixel units measured from the upper-left
    neighbouring centre: (B, 2, Hq, Wq), clamped to [0, 1] (the x_q of seed 000 eq. 7)."""
    h, w = lr_size
    sizes = torch.tensor([h, w], device=coord.device, dtype=coord.dtype)
    # continuous LR-pixel index of the query, centres at integers
    t = (coord + 1) / 2 * sizes - 0.5
    return (t - torch.floor(t)).clamp(0, 1).permute(0, 3, 1, 2)


def hierarchical_bits(x_local: Tensor, level: int) -> Tensor:
    """Seed 000 eq. 7: delta_h(x_q, j) = floor(x_q * 2^(j+1)) mod 2 (HIIF's ``compute_hi_coord``,
    x_q clipped to [0, 1 - 1e-6] so that x_q = 1 stays in the last cell; HIIF's ``t - 1e-9`` is a
    no-op in float32)."""
    t = x_local.clamp(0, 1 - 1e-6)
    return torch.remainder(torch.floor(t * 2 ** (level + 1)), 2)


def _grid_sample_bilinear(inp: Tensor, coord: Tensor) -> Tensor:
    return F.grid_sample(inp, coord.flip(-1), mode="bilinear", padding_mode="border", align_corners=False)


def _cell_map(cell: Tensor, lr_size: tuple[int, int], like: Tensor) -> Tensor:
    rel_cell = cell * torch.tensor(lr_size, device=cell.device, dtype=cell.dtype)
    return rel_cell.view(-1, 2, 1, 1).expand(-1, 2, *like.shape[-2:])


# ----------------------------------------------------------------------------------------------
# heads
# ----------------------------------------------------------------------------------------------


class MLP(nn.Module):
    """LIIF ``models/mlp.py``: Linear/ReLU stack, keys ``layers.{0,2,...}``, channels last."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int]):
        super().__init__()
        layers: list[nn.Module] = []
        last = in_dim
        for h in hidden:
            layers += [nn.Linear(last, h), nn.ReLU()]
            last = h
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class LIIFHead(nn.Module):
    """LIIF (Chen et al., CVPR 2021): feature unfolding (3x3, C -> 9C), local ensemble over the 4
    nearest codes, cell decoding; imnet MLP (9C+2+2 -> 256 x4 -> 3, ReLU), blended by area."""

    global_queries = False

    def __init__(self, in_dim: int = 64, hidden: Sequence[int] = (256, 256, 256, 256),
                 feat_unfold: bool = True, cell_decode: bool = True):
        super().__init__()
        self.feat_unfold, self.cell_decode = feat_unfold, cell_decode
        d = in_dim * (9 if feat_unfold else 1) + 2 + (2 if cell_decode else 0)
        self.imnet = MLP(d, 3, hidden)

    def forward(self, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None = None) -> Tensor:
        h, w = feat.shape[-2:]
        if self.feat_unfold:
            feat = F.unfold(feat, 3, padding=1).view(feat.shape[0], feat.shape[1] * 9, h, w)
        preds, rels = [], []
        for z, rel in neighbours(feat, coord):
            parts = [z, rel] + ([_cell_map(cell, (h, w), rel)] if self.cell_decode else [])
            preds.append(self.imnet(torch.cat(parts, 1).permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
            rels.append(rel)
        return sum(p * a for p, a in zip(preds, ensemble_weights(rels)))


class MetaSRHead(nn.Module):
    """Meta-SR (Hu et al., CVPR 2019) as re-implemented in ``liif/models/misc.py``: a weight-prediction
    MLP maps [rel_coord, 1/s-like cell term] (3 -> 256 -> 9C*3) to per-query filters that are applied
    to the nearest 3x3-unfolded feature."""

    global_queries = False

    def __init__(self, in_dim: int = 64, hidden: int = 256):
        super().__init__()
        self.in_dim = in_dim
        self.imnet = MLP(3, in_dim * 9 * 3, [hidden])

    def forward(self, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None = None) -> Tensor:
        b, c, h, w = feat.shape
        feat = F.unfold(feat, 3, padding=1).view(b, c * 9, h, w)
        # LR centres shifted by half an LR pixel (top-left corners), query shifted by half a cell
        pos = make_coord((h, w), flatten=False, device=feat.device)
        pos = (pos - torch.tensor([1.0 / h, 1.0 / w], device=feat.device)).permute(2, 0, 1)
        pos = pos.unsqueeze(0).expand(b, 2, h, w)
        c_ = coord - cell.view(b, 1, 1, 2) / 2
        cq = (c_ + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6).flip(-1)
        q_feat = F.grid_sample(feat, cq, mode="nearest", align_corners=False)  # (B, 9C, Hq, Wq)
        q_pos = F.grid_sample(pos, cq, mode="nearest", align_corners=False)
        rel = (c_.permute(0, 3, 1, 2) - q_pos) * torch.tensor([h / 2, w / 2], device=feat.device).view(1, 2, 1, 1)
        r_rev = (cell[:, 0] * (h / 2)).view(b, 1, 1, 1).expand(b, 1, *rel.shape[-2:])
        weights = self.imnet(torch.cat([rel, r_rev], 1).permute(0, 2, 3, 1))  # (B, Hq, Wq, 9C*3)
        weights = weights.view(*weights.shape[:3], c * 9, 3)
        return torch.einsum("bkhw,bhwko->bohw", q_feat, weights)


class GalerkinLayerNorm(nn.Module):
    """SRNO's LayerNorm over the head dimension: (x - mean) / (std_unbiased + eps) (galerkin.py)."""

    def __init__(self, heads: int, head_dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(heads, 1, head_dim))
        self.bias = nn.Parameter(torch.zeros(heads, 1, head_dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + self.eps)
        return self.weight * x + self.bias


class GalerkinAttention(nn.Module):
    """Galerkin-type linear attention block (SRNO ``simple_attn``; HIIF ``qkv_attn``):
    [Q K V] = W_qkv X; K, V <- LN(K), LN(V) per head; O = Q (K^T V) / N (no softmax);
    R = O + X; output = X + W2 GELU(W1 R)  (the FFN reads R, the residual is the block input X).
    Channels-first (B, C, H, W) with 1x1 convs, keys ``qkv_proj, o_proj1, o_proj2, kln, vln``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv_proj = nn.Conv2d(dim, 3 * dim, 1)
        self.o_proj1 = nn.Conv2d(dim, dim, 1)
        self.o_proj2 = nn.Conv2d(dim, dim, 1)
        self.kln = GalerkinLayerNorm(heads, self.head_dim)
        self.vln = GalerkinLayerNorm(heads, self.head_dim)
        self.act = nn.GELU()

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, c, h, w = x.shape
        qkv = self.qkv_proj(x).permute(0, 2, 3, 1).reshape(b, h * w, self.heads, 3 * self.head_dim)
        q, k, v = qkv.permute(0, 2, 1, 3).chunk(3, dim=-1)  # (B, heads, N, d)
        return q, self.kln(k), self.vln(v)

    def kv(self, x: Tensor) -> Tensor:
        """K^T V (B, heads, d, d) of these tokens; sums over chunks of a query grid."""
        _, k, v = self._qkv(x)
        return k.transpose(-2, -1) @ v

    def forward(self, x: Tensor, kv: Tensor | None = None, n: int | None = None) -> Tensor:
        """``kv``/``n``: K^T V and token count of the whole grid when ``x`` is one chunk of it."""
        b, c, h, w = x.shape
        q, k, v = self._qkv(x)
        if kv is None:
            kv, n = k.transpose(-2, -1) @ v, h * w
        o = q @ kv / n
        r = o.permute(0, 2, 1, 3).reshape(b, h, w, c).permute(0, 3, 1, 2) + x
        return x + self.o_proj2(self.act(self.o_proj1(r)))


class SRNOHead(nn.Module):
    """SRNO (Wei & Zhang, CVPR 2023; ``AnySR/models/sronet.py``): the 4 neighbour codes, each times
    its diagonal-swapped area weight, their 4 relative coordinates and rel_cell are concatenated
    ((C+2)*4+2 = 266 at C = 64) -> Conv1x1 -> 2 Galerkin blocks -> Conv1x1 -> GELU -> Conv1x1 -> RGB,
    plus the bilinear-upsampled input."""

    global_queries = True

    def __init__(self, in_dim: int = 64, width: int = 256, heads: int = 16):
        super().__init__()
        self.conv00 = nn.Conv2d((in_dim + 2) * 4 + 2, width, 1)
        self.conv0 = GalerkinAttention(width, heads)
        self.conv1 = GalerkinAttention(width, heads)
        self.fc1 = nn.Conv2d(width, 256, 1)
        self.fc2 = nn.Conv2d(256, 3, 1)

    @property
    def attn_blocks(self) -> list[GalerkinAttention]:
        return [self.conv0, self.conv1]

    def embed(self, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None = None) -> Tensor:
        h, w = feat.shape[-2:]
        zs, rels = zip(*neighbours(feat, coord))
        zs = [z * a for z, a in zip(zs, ensemble_weights(rels))]
        return self.conv00(torch.cat([*rels, *zs, _cell_map(cell, (h, w), rels[0])], 1))

    def project(self, x: Tensor, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None = None) -> Tensor:
        out = self.fc2(F.gelu(self.fc1(x)))
        return out + _grid_sample_bilinear(inp, coord) if inp is not None else out

    def forward(self, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None = None) -> Tensor:
        x = self.conv1(self.conv0(self.embed(feat, coord, cell, inp)))
        return self.project(x, feat, coord, cell, inp)


class _LNMLP(nn.Module):
    """HIIF ``MLP_with_shortcut`` without the (never used) shortcut: LN -> Linear -> GELU -> Linear."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x: Tensor) -> Tensor:  # channels-first in and out
        y = self.fc2(F.gelu(self.fc1(self.norm(x.permute(0, 2, 3, 1)))))
        return y.permute(0, 3, 1, 2)


class HIIFL(nn.Module):
    """HIIF-L, the continuous up-sampler of C2D-ISR stage 1 (seed 000 eqs. 7-9).

    ``HIIFL(in_dim, dim=None, heads=None)``: ``in_dim`` = backbone width C (F_D channels), ``dim``
    the attention width (default C, "dim = C" in the paper), ``heads`` default 6 if it divides dim
    else 4/2/1. Three MLPs and one linear attention:

      g  = [sum-free 4-neighbour area-weighted F_D (4C), delta_h(x_q, 0) (2), cell*(h,w) = 2/s (2)]
      z0 = MHA(MLP_0(g))                      eq. 8; MHA = Galerkin linear attention of width dim,
                                              whose FFN is the second MLP
      z1 = MLP_1([z0, delta_h(x_q, 1)])       eq. 9 -> RGB (+ bilinear-upsampled input, as HIIF)

    delta_h(x_q, j) = floor(x_q 2^(j+1)) mod 2 (eq. 7) on the local coordinate x_q in [0, 1] (LR-
    pixel units from the upper-left neighbouring centre). Parameters at C = dim = 60, 6 heads:
    see tests/test_implicit.py (asserted exactly).
    """

    global_queries = True

    def __init__(self, in_dim: int, dim: int | None = None, heads: int | None = None):
        super().__init__()
        dim = dim or in_dim
        if heads is None:
            heads = next(h for h in (6, 4, 2, 1) if dim % h == 0)
        self.mlp0 = _LNMLP(4 * in_dim + 4, dim, dim)
        self.attn = GalerkinAttention(dim, heads)
        self.mlp1 = _LNMLP(dim + 2, dim, 3)

    @property
    def attn_blocks(self) -> list[GalerkinAttention]:
        return [self.attn]

    def embed(self, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None = None) -> Tensor:
        h, w = feat.shape[-2:]
        zs, rels = zip(*neighbours(feat, coord))
        zs = [z * a for z, a in zip(zs, ensemble_weights(rels))]
        xq = local_coord(coord, (h, w))
        return self.mlp0(torch.cat([*zs, hierarchical_bits(xq, 0), _cell_map(cell, (h, w), xq)], 1))

    def project(self, z0: Tensor, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None = None) -> Tensor:
        xq = local_coord(coord, tuple(feat.shape[-2:]))
        out = self.mlp1(torch.cat([z0, hierarchical_bits(xq, 1)], 1))  # eq. 9
        return out + _grid_sample_bilinear(inp, coord) if inp is not None else out

    def forward(self, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None = None) -> Tensor:
        z0 = self.attn(self.embed(feat, coord, cell, inp))  # eq. 8: MHA(MLP([F_D, delta_h(x_q, 0), cell]))
        return self.project(z0, feat, coord, cell, inp)


# ----------------------------------------------------------------------------------------------
# ArbSR (Wang et al., ICCV 2021; LongguangWang/ArbSR model/arbrcan.py): scale-aware adaption + upsampler
# ----------------------------------------------------------------------------------------------


class SAConv(nn.Module):
    """Scale-aware convolution: 4 expert kernels fused by routing weights Softmax(MLP([1/s_h, 1/s_w]))
    (keys ``routing.{0,2}``, ``weight_pool``)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, num_experts: int = 4):
        super().__init__()
        self.cin, self.cout, self.k = cin, cout, kernel_size
        self.routing = nn.Sequential(nn.Linear(2, 64), nn.ReLU(True), nn.Linear(64, num_experts), nn.Softmax(1))
        self.weight_pool = nn.Parameter(torch.empty(num_experts, cout, cin, kernel_size, kernel_size))
        for i in range(num_experts):
            nn.init.kaiming_uniform_(self.weight_pool.data[i], a=math.sqrt(5))

    def forward(self, x: Tensor, scale: tuple[float, float]) -> Tensor:
        r = self.routing(torch.tensor([[1 / scale[0], 1 / scale[1]]], device=x.device, dtype=x.dtype))
        weight = (self.weight_pool * r.view(-1, 1, 1, 1, 1)).sum(0)
        return F.conv2d(x, weight, None, padding=self.k // 2)


class SAAdapt(nn.Module):
    """Scale-aware feature adaption: x + SAConv(x) * mask(x), mask a small conv/BN/sigmoid net."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.mask = nn.Sequential(
            nn.Conv2d(channels, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(True), nn.AvgPool2d(2),
            nn.Conv2d(16, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(True),
            nn.Conv2d(16, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(True),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(16, 1, 3, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())
        self.adapt = SAConv(channels, channels, 3)

    def forward(self, x: Tensor, scale: tuple[float, float]) -> Tensor:
        h, w = x.shape[-2:]
        pad = (0, w % 2, 0, h % 2)  # AvgPool2d(2) + x2 upsample: pad odd sizes, crop back
        mask = self.mask(F.pad(x, pad, mode="replicate") if any(pad) else x)[..., :h, :w]
        return x + self.adapt(x, scale) * mask


class SAUpsample(nn.Module):
    """Scale-aware up-sampler: per-HR-pixel filters (compress C -> C/8 -> expand C, mixtures of 4
    experts routed by an MLP of [1/s_w, 1/s_h, local y, local x]) applied to offset-resampled
    features, plus the resampled features (keys as ``SA_upsample``)."""

    def __init__(self, channels: int = 64, num_experts: int = 4):
        super().__init__()
        self.c, self.e = channels, num_experts
        self.weight_compress = nn.Parameter(torch.empty(num_experts, channels // 8, channels, 1, 1))
        self.weight_expand = nn.Parameter(torch.empty(num_experts, channels, channels // 8, 1, 1))
        for i in range(num_experts):
            nn.init.kaiming_uniform_(self.weight_compress.data[i], a=math.sqrt(5))
            nn.init.kaiming_uniform_(self.weight_expand.data[i], a=math.sqrt(5))
        self.body = nn.Sequential(nn.Conv2d(4, 64, 1), nn.ReLU(True), nn.Conv2d(64, 64, 1), nn.ReLU(True))
        self.routing = nn.Sequential(nn.Conv2d(64, num_experts, 1), nn.Sigmoid())
        self.offset = nn.Conv2d(64, 2, 1)

    def forward(self, x: Tensor, out_size: tuple[int, int], scale: tuple[float, float]) -> Tensor:
        b, c, h, w = x.shape
        (H, W), (sh, sw) = out_size, scale
        yy = torch.arange(H, device=x.device, dtype=x.dtype)
        xx = torch.arange(W, device=x.device, dtype=x.dtype)
        # (1) position of every HR pixel inside its LR pixel, in [-0.5, 0.5)
        ch = (yy + 0.5) / sh - torch.floor((yy + 0.5) / sh + 1e-3) - 0.5
        cw = (xx + 0.5) / sw - torch.floor((xx + 0.5) / sw + 1e-3) - 0.5
        inp = torch.stack([torch.full((H, W), 1 / sw, device=x.device, dtype=x.dtype),
                           torch.full((H, W), 1 / sh, device=x.device, dtype=x.dtype),
                           ch.view(H, 1).expand(H, W), cw.view(1, W).expand(H, W)]).unsqueeze(0)
        # (2) filters and offsets
        emb = self.body(inp)
        offset = self.offset(emb)
        route = self.routing(emb).view(self.e, H * W).t()                    # (HW, E)
        wc = (route @ self.weight_compress.view(self.e, -1)).view(1, H, W, c // 8, c)
        we = (route @ self.weight_expand.view(self.e, -1)).view(1, H, W, c, c // 8)
        # (3) resample at the projected positions + offsets, then spatially varying filtering
        fea0 = _arbsr_grid_sample(x, offset, (H, W), scale)                   # (B, C, H, W)
        fea = fea0.permute(0, 2, 3, 1).unsqueeze(-1)                          # (B, H, W, C, 1)
        out = (we @ (wc @ fea)).squeeze(-1)
        return out.permute(0, 3, 1, 2) + fea0


def _arbsr_grid_sample(x: Tensor, offset: Tensor, out_size: tuple[int, int], scale: tuple[float, float]) -> Tensor:
    """ArbSR's ``grid_sample``: HR pixel centres projected to LR, normalised with 2/(n-1) (the
    official code's convention, kept for checkpoint fidelity), plus the predicted offsets."""
    b, _, h, w = x.shape
    H, W = out_size
    gx = ((torch.arange(W, device=x.device, dtype=x.dtype) + 0.5) / scale[1] - 0.5) * 2 / max(w - 1, 1) - 1
    gy = ((torch.arange(H, device=x.device, dtype=x.dtype) + 0.5) / scale[0] - 0.5) * 2 / max(h - 1, 1) - 1
    grid = torch.stack([gx.view(1, W).expand(H, W), gy.view(H, 1).expand(H, W)], -1).unsqueeze(0)
    off = torch.stack([offset[:, 0] * 2 / max(w - 1, 1), offset[:, 1] * 2 / max(h - 1, 1)], -1)
    return F.grid_sample(x, (grid + off).expand(b, -1, -1, -1), padding_mode="zeros", align_corners=False)


class ArbSRHead(nn.Module):
    """ArbSR's reconstruction: SAUpsample to the output grid, then Conv3x3 (C -> 3) (keys
    ``sa_upsample.*``, ``tail.1``). It renders whole grids: ``coord`` must be the full pixel-centre
    grid of the output (its shape gives the size; the scale is output size / input size)."""

    global_queries = True

    def __init__(self, in_dim: int = 64):
        super().__init__()
        self.sa_upsample = SAUpsample(in_dim)
        self.tail = nn.Sequential(nn.Identity(), nn.Conv2d(in_dim, 3, 3, padding=1))

    def forward(self, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None = None) -> Tensor:
        h, w = feat.shape[-2:]
        H, W = coord.shape[1:3]
        return self.tail(self.sa_upsample(feat, (H, W), (H / h, W / w)))


# ----------------------------------------------------------------------------------------------
# the generic continuous model
# ----------------------------------------------------------------------------------------------


def query_chunks(hq: int, wq: int, max_queries: int) -> Iterator[slice]:
    """Row slices of an Hq x Wq query grid holding at most ~max_queries queries each."""
    rows = max(1, max_queries // max(1, wq))
    for r in range(0, hq, rows):
        yield slice(r, min(hq, r + rows))


class ImplicitSR(nn.Module):
    """backbone features + implicit head = a continuous-scale SR model.

    ``backbone.forward_features(x) -> (B, C, h, w)``; ``head(feat, coord, cell, inp)``.
    ``norm=0.5`` (LIIF family): the backbone and the head's bilinear skip see (x - 0.5) / 0.5 and the
    output is mapped back; ``norm=None``: the backbone normalises itself (the lightweight skeleton).
    A backbone with ``set_scale(s_h, s_w)`` (AnySR) is told the scale before every forward.
    State-dict keys: ``encoder.*`` (backbone) and the head's own keys at top level (official
    LIIF/SRNO layout; loading also accepts ``head.``-prefixed keys).
    """

    continuous = True

    def __init__(self, backbone: nn.Module, head: nn.Module, norm: float | None = 0.5,
                 max_queries: int = 65536):
        super().__init__()
        self.encoder = backbone
        self.head = head
        self.norm = norm
        self.max_queries = max_queries
        self.scale = None  # continuous
        self.register_state_dict_post_hook(ImplicitSR._flatten_head_keys)
        self._register_load_state_dict_pre_hook(self._official_keys)

    # keys: official checkpoints put the head's modules at top level; the module keeps them under
    # ``head.``; saving flattens them, loading accepts both (prefix-aware, so nesting/DDP work)
    @staticmethod
    def _flatten_head_keys(module, state_dict, prefix, local_metadata):
        for k in [k for k in state_dict if k.startswith(prefix + "head.")]:
            state_dict[prefix + k[len(prefix) + len("head."):]] = state_dict.pop(k)

    def _official_keys(self, state_dict, prefix, *args, **kwargs):
        for k in list(state_dict):
            if k.startswith(prefix):
                rest = k[len(prefix):]
                if not rest.startswith(("encoder.", "head.")):
                    state_dict[prefix + "head." + rest] = state_dict.pop(k)

    def _norm(self, x: Tensor) -> Tensor:
        return (x - 0.5) / self.norm if self.norm else x

    def _denorm(self, y: Tensor) -> Tensor:
        return y * self.norm + 0.5 if self.norm else y

    def features(self, x: Tensor, scale: tuple[float, float] | None) -> Tensor:
        if scale is not None and hasattr(self.encoder, "set_scale"):
            self.encoder.set_scale(*scale)
        return self.encoder.forward_features(x)

    def forward(self, x: Tensor, scale: float | Sequence[float] | None = None,
                coord: Tensor | None = None, cell: Tensor | None = None) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise LightSRError(f"expected an RGB batch (B, 3, h, w), got shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        if coord is None:
            if scale is None:
                raise LightSRError("a continuous model needs scale= (or coord= and cell=)")
            size = output_size(h, w, scale)
            coord = coord_grid(size, b, x.device)
            cell = make_cell(size, b, x.device)
        elif cell is None:
            cell = make_cell(tuple(coord.shape[1:3]), b, x.device)
        pair = parse_scale(scale) if scale is not None else scale_from_cell(cell, (h, w))
        inp = self._norm(x)
        feat = self.features(inp, pair)
        return self._denorm(self.query(feat, coord, cell, inp))

    def query(self, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None) -> Tensor:
        """Run the head on a query grid in row chunks of at most ``max_queries`` queries.

        Per-query heads: each chunk independently. Heads with global linear attention
        (``attn_blocks``, SRNO / HIIF-L): exact chunking in len(blocks) + 1 passes -- pass i
        recomputes the chunk's tokens up to block i and accumulates that block's K^T V over the
        whole grid, the last pass renders. Heads rendering whole grids only (ArbSR): one pass."""
        hq, wq = coord.shape[1:3]
        chunks = list(query_chunks(hq, wq, self.max_queries))
        if len(chunks) == 1 or (getattr(self.head, "global_queries", False)
                                and not hasattr(self.head, "attn_blocks")):
            return self.head(feat, coord, cell, inp)
        if not getattr(self.head, "global_queries", False):
            return torch.cat([self.head(feat, coord[:, sl], cell, inp) for sl in chunks], dim=2)
        blocks, n = self.head.attn_blocks, hq * wq
        stats: list[Tensor] = []
        for i in range(len(blocks) + 1):
            acc, rows = None, []
            for sl in chunks:
                x = self.head.embed(feat, coord[:, sl], cell, inp)
                for blk, kv in zip(blocks[:i], stats):
                    x = blk(x, kv, n)
                if i < len(blocks):
                    kv_c = blocks[i].kv(x)
                    acc = kv_c if acc is None else acc + kv_c
                else:
                    rows.append(self.head.project(x, feat, coord[:, sl], cell, inp))
            if i < len(blocks):
                stats.append(acc)
        return torch.cat(rows, dim=2)
