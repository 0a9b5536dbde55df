"""Pixel-shuffle up-samplers (sub-pixel convolution, Shi et al. 2016).

Module indices match the official code (``upsample.0.weight`` ...), so checkpoints load strictly.
"""
from __future__ import annotations

import math

from torch import nn


class UpsampleOneStep(nn.Sequential):
    """'pixelshuffledirect': Conv3x3 (C -> out_ch * s^2) then PixelShuffle(s) (SwinIR-light, IMDN...)."""

    def __init__(self, scale: int, in_ch: int, out_ch: int = 3, kernel_size: int = 3):
        super().__init__(nn.Conv2d(in_ch, out_ch * scale * scale, kernel_size, 1, kernel_size // 2),
                         nn.PixelShuffle(scale))


class Upsample(nn.Sequential):
    """'pixelshuffle' (EDSR/RCAN/SwinIR classic): log2(s) x [Conv3x3 (C -> 4C), PixelShuffle(2)]
    for s = 2^n, or [Conv3x3 (C -> 9C), PixelShuffle(3)] for s = 3."""

    def __init__(self, scale: int, ch: int, bias: bool = True):
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(ch, 4 * ch, 3, 1, 1, bias=bias), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(ch, 9 * ch, 3, 1, 1, bias=bias), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"Upsample supports scales 2^n and 3, not {scale}")
        super().__init__(*layers)
