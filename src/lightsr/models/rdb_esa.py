"""RDB-ESA: the "Possible Architecture" of the efficient-SR study notes.

    F0 = ReLU(Conv3x3(LR))                                  (3 -> C, shallow features)
    B_i = RDB(B_{i-1}),  B_0 = F0,  i = 1..N                (residual distillation blocks)
    F = ESA(Conv1x1([B_1, ..., B_N]))                       (N*C -> C fusion, spatial attention)
    SR = PixelShuffle_s(Conv3x3(F + F0))                    (C -> 3 s^2, global skip)

RDB (the notes' "Residual Distillation Block"): three sequential Conv3x3 + ReLU (C -> C) give
F1, F2, F3; ``X + CA(Conv1x1([F1, F2, F3]))`` with RCAN channel attention (reduction 16).
ESA is the RLFN/HASN form with 16 channels (:class:`lightsr.layers.conv.ESA`).

The notes fix the topology, not the sizes: the defaults C = 48, N = 5 put it at 388,463
parameters (x4), inside the 300-500K band the notes target; MACs in results/cnn_models.md.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers.conv import ESA, ESA_MIN_SIZE, ChannelAttention, conv_layer, pad_min_size
from ..layers.upsample import UpsampleOneStep
from .detect import Guess, Shapes, detector, one_step
from .registry import Traits, register_model


class RDB(nn.Module):
    """Residual distillation block: 3 x (Conv3x3 + ReLU) -> concat -> Conv1x1 -> CA -> + input."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.convs = nn.ModuleList(conv_layer(channels, channels, 3) for _ in range(3))
        self.fuse = conv_layer(3 * channels, channels, 1)
        self.ca = ChannelAttention(channels, reduction)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, h = [], x
        for conv in self.convs:
            h = self.act(conv(h))
            feats.append(h)
        return x + self.ca(self.fuse(torch.cat(feats, dim=1)))


class RDBESA(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 48, num_blocks: int = 5, esa_channels: int = 16,
                 reduction: int = 16):
        super().__init__()
        self.scale = scale
        self.head = nn.Sequential(conv_layer(3, channels, 3), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList(RDB(channels, reduction) for _ in range(num_blocks))
        self.fusion = conv_layer(num_blocks * channels, channels, 1)
        self.esa = ESA(esa_channels, channels)
        self.upsampler = UpsampleOneStep(scale, channels, 3)

    def forward_features(self, x: torch.Tensor, crop: bool = True) -> torch.Tensor:
        """F_D: what the up-sampler sees (``crop=False`` keeps the padding of images under 15 px)."""
        h, w = x.shape[-2:]
        x = pad_min_size(x, ESA_MIN_SIZE)  # only images smaller than 15 px are padded
        f0 = self.head(x)
        outs, b = [], f0
        for block in self.blocks:
            b = block(b)
            outs.append(b)
        f = self.esa(self.fusion(torch.cat(outs, dim=1))) + f0
        return f[..., :h, :w] if crop else f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        out = self.upsampler(self.forward_features(x, crop=False))
        return out[..., : h * self.scale, : w * self.scale]


@register_model("rdb_esa", scales=(2, 3, 4), paper="'Possible Architecture' of the study notes Super-Resolution Study (2025)", family="cnn",
                pretrained={s: f"rdb_esa_x{s}.safetensors" for s in (2, 3, 4)},
                traits=Traits(min_size=ESA_MIN_SIZE))  # ESA's strided conv + 7x7 pooling; ESA: tiling approximate
def rdb_esa(scale: int = 4, channels: int = 48, num_blocks: int = 5, esa_channels: int = 16) -> RDBESA:
    """RDB-ESA (residual distillation blocks + ESA + channel attention), 388K params at x4."""
    return RDBESA(scale=scale, channels=channels, num_blocks=num_blocks, esa_channels=esa_channels)


@detector("rdb_esa", "head.0.weight", "blocks.0.fuse.weight", "fusion.weight", "esa.conv1.weight",
          "upsampler.0.weight")
def _rdb_esa(s: Shapes) -> list[Guess]:
    return one_step("rdb_esa", s, {"channels": s.out("head.0.weight"), "num_blocks": s.count("blocks.{}.fuse.weight"),
                                   "esa_channels": s.out("esa.conv1.weight")})
