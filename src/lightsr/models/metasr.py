"""Meta-SR (Hu et al., CVPR 2019) as re-implemented in ``liif/models/misc.py``.

``MetaSRHead(in_dim=64)``: a weight-prediction MLP (keys ``imnet.layers.*``) maps [rel_coord, cell
term] to per-query filters applied to the nearest 3x3-unfolded feature. Registered models:
:mod:`lightsr.models.arbitrary` (``metasr_edsr``, ``metasr_rdn``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.coords import make_coord
from .liif import MLP

__all__ = ["MetaSRHead"]


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
