"""SRNO (Wei & Zhang, CVPR 2023; ``AnySR/models/sronet.py``): a neural-operator head built on
Galerkin-type linear attention.

``SRNOHead(in_dim=64, width=256, heads=16)``, keys ``conv00, conv0, conv1, fc1, fc2``;
:class:`GalerkinAttention` (keys ``qkv_proj, o_proj1, o_proj2, kln, vln``). HIIF-L's attention
(HIIF's variant: Linear layers, one standard LayerNorm of head width) is
``models.hiif.HIIFAttention``; both share :class:`LinearAttention`. Registered models:
:mod:`lightsr.models.arbitrary` (``srno_edsr``, ``srno_rdn``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.coords import cell_map, grid_sample_bilinear, ensemble_weights, neighbours

__all__ = ["GalerkinLayerNorm", "LinearAttention", "GalerkinAttention", "SRNOHead"]


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


class LinearAttention(nn.Module):
    """What every Galerkin-type block shares: O = Q (K^T V) / N per head, over all tokens or, for one
    chunk of a query grid, with the K^T V and token count N of the whole grid. A subclass supplies
    ``_qkv(x) -> (q, k, v)`` (B, heads, N, d) and ``_finish(x, o)`` (the residual and FFN)."""

    def kv(self, x: Tensor) -> Tensor:
        """K^T V (B, heads, d, d) of these tokens; sums over chunks of a query grid."""
        _, k, v = self._qkv(x)
        return k.transpose(-2, -1) @ v

    def forward(self, x: Tensor, kv: Tensor | None = None, n: int | None = None) -> Tensor:
        """``kv``/``n``: K^T V and token count of the whole grid when ``x`` is one chunk of it."""
        q, k, v = self._qkv(x)
        if kv is None:
            kv, n = k.transpose(-2, -1) @ v, k.shape[-2]
        return self._finish(x, q @ kv / n)


class GalerkinAttention(LinearAttention):
    """Galerkin-type linear attention block (SRNO ``simple_attn``):
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

    def _finish(self, x: Tensor, o: Tensor) -> Tensor:
        b, c, h, w = x.shape
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
        return self.conv00(torch.cat([*rels, *zs, cell_map(cell, (h, w), rels[0])], 1))

    def project(self, x: Tensor, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None = None) -> Tensor:
        out = self.fc2(F.gelu(self.fc1(x)))
        return out + grid_sample_bilinear(inp, coord) if inp is not None else out

    def forward(self, feat: Tensor, coord: Tensor, cell: Tensor, inp: Tensor | None = None) -> Tensor:
        x = self.conv1(self.conv0(self.embed(feat, coord, cell, inp)))
        return self.project(x, feat, coord, cell, inp)
