"""ArbSR (Wang et al., ICCV 2021; ``LongguangWang/ArbSR`` model/arbrcan.py): scale-aware feature
adaption and the scale-aware up-sampler.

* :class:`ArbSRHead` ``ArbSRHead(in_dim=64)`` -- the scale-aware up-sampler + tail conv (keys
  ``sa_upsample.*``, ``tail.1``).
* :class:`SAAdapt` -- the backbone side, inserted after every K blocks of EDSR/RDN (their
  ``adapt_every`` option); :class:`SAConv` its scale-aware convolution.
Registered models: :mod:`lightsr.models.arbitrary` (``arbsr_edsr``, ``arbsr_rdn``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SAConv", "SAAdapt", "SAUpsample", "ArbSRHead"]


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
