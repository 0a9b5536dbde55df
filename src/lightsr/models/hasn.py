"""HASN: Hybrid Attention Separable Network for Efficient Image Super-resolution
(Cao, Lei, Shi, Liang, Li, Bai; seed 003). Official code: nathan66666/HASN
``basicsr/archs/hasn_arch.py`` (keys and layout below follow it).

LR -> conv3x3 (3 -> 52) -> 6 x HASB -> conv3x3 (52 -> 52) -> + shallow features ->
conv3x3 (52 -> 3 s^2) -> PixelShuffle(s). No mean shift, input in [0, 1].

Parameters (design/architectures.md section 7): x4 435,272; x3 425,423; x2 418,388; one HASB
64,486 (ESA 10,076, CAB 16,138). MACs at 1280x720 output: see results/cnn_models.md.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers.conv import CAB, ESA, ESA_MIN_SIZE, DepthwiseConv, PointwiseConv, conv_layer, pad_min_size
from ..layers.upsample import UpsampleOneStep
from .registry import register_model


class HASB(nn.Module):
    """Hybrid attention separable block (HASN eq. 6, Fig. 3a; official ``Block``).

        F_o = LN(DWConv7(F_in))
        F_d1, F_d2, F_d3 = FC(F_o), FC(F_o), FC(F_o)           (1x1 convs, C -> 3C)
        F_d = ReLU6(F_d1) * F_d2 + ESA(F_d3)
        F_d = DWConv7(FC(F_d)) + F_in                           (FC: 3C -> C)
        F_out = CAB(F_d)                                        (no residual around CAB)
    """

    def __init__(self, dim: int = 52, mlp_ratio: int = 3, kernel_size: int = 7, esa_channels: int = 16):
        super().__init__()
        hidden = mlp_ratio * dim
        self.dwconv = DepthwiseConv(dim, kernel_size)
        self.ln = nn.LayerNorm(dim)
        self.f1 = PointwiseConv(dim, hidden)
        self.f2 = PointwiseConv(dim, hidden)
        self.f3 = PointwiseConv(dim, hidden)
        self.g = PointwiseConv(hidden, dim)
        self.dwconv2 = DepthwiseConv(dim, kernel_size)
        self.act = nn.ReLU6()
        self.esa = ESA(esa_channels, hidden)
        self.cab = CAB(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f_o = self.dwconv(x)
        f_o = self.ln(f_o.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # LayerNorm over channels
        f_d = self.act(self.f1(f_o)) * self.f2(f_o) + self.esa(self.f3(f_o))
        f_d = self.dwconv2(self.g(f_d)) + x
        return self.cab(f_d)


class HASN(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 52, num_blocks: int = 6, mlp_ratio: int = 3,
                 kernel_size: int = 7):
        super().__init__()
        self.scale = scale
        self.num_blocks = num_blocks
        self.conv_1 = conv_layer(3, channels, 3)
        for i in range(1, num_blocks + 1):  # official names block_1..block_6
            self.add_module(f"block_{i}", HASB(channels, mlp_ratio, kernel_size))
        self.conv_2 = conv_layer(channels, channels, 3)
        self.upsampler = UpsampleOneStep(scale, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_min_size(x, ESA_MIN_SIZE)  # only images smaller than 15 px are padded
        fea = self.conv_1(x)
        out = fea
        for i in range(1, self.num_blocks + 1):
            out = getattr(self, f"block_{i}")(out)
        out = self.upsampler(self.conv_2(out) + fea)
        return out[..., : h * self.scale, : w * self.scale]


@register_model("hasn", scales=(2, 3, 4), paper="Cao et al., HASN (seed 003)", family="cnn")
def hasn(scale: int = 4, channels: int = 52, num_blocks: int = 6, mlp_ratio: int = 3, kernel_size: int = 7) -> HASN:
    """HASN (hybrid attention separable network), 435K params at x4."""
    return HASN(scale=scale, channels=channels, num_blocks=num_blocks, mlp_ratio=mlp_ratio, kernel_size=kernel_size)
