"""LIIF (Chen et al., CVPR 2021; ``yinboc/liif``): the local implicit image function head.

``LIIFHead(in_dim=64)``: feature unfolding (3x3, C -> 9C), local ensemble over the 4 nearest codes,
cell decoding; the ``imnet`` MLP (9C+2+2 -> 256 x4 -> 3, ReLU) blended by area. Keys ``imnet.layers.*``.
Coordinates, cells and the continuous wrapper: :mod:`lightsr.layers.coords`; registered models:
:mod:`lightsr.models.arbitrary` (``liif_edsr``, ``liif_rdn``).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.coords import cell_map, ensemble_weights, neighbours

__all__ = ["MLP", "LIIFHead"]


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
            parts = [z, rel] + ([cell_map(cell, (h, w), rel)] if self.cell_decode else [])
            preds.append(self.imnet(torch.cat(parts, 1).permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
            rels.append(rel)
        return sum(p * a for p, a in zip(preds, ensemble_weights(rels)))
