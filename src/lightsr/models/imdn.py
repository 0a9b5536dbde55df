"""IMDN: Lightweight Image Super-Resolution with Information Multi-distillation Network
(Hui, Gao, Yang, Wang; ACM MM 2019). Official code: Zheng222/IMDN ``model/architecture.py``.

LR -> conv3x3 (3 -> 64) -> 6 x IMDB -> concat -> 1x1 + LeakyReLU(0.05) -> conv3x3 -> + shallow
features -> conv3x3 (64 -> 3 s^2) -> PixelShuffle(s). No mean shift; input in [0, 1].
Parameters: x2 694,404; x3 703,059; x4 715,176 (= the official checkpoints).
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers.conv import ChannelAttention, conv_layer
from ..layers.upsample import UpsampleOneStep
from .detect import Guess, Shapes, detector, one_step
from .registry import Published, Traits, register_model


class IMDB(nn.Module):
    """Information multi-distillation block (IMDN Fig. 2, eqs. 1-4; official ``IMDModule``).

    Each 3x3 conv's output is split into a distilled quarter (kept) and the remaining three
    quarters (refined further); the four distilled parts are concatenated, re-weighted by
    contrast-aware channel attention (eq. 6), fused by a 1x1 conv and added to the input.
    """

    def __init__(self, channels: int = 64, distillation_rate: float = 0.25):
        super().__init__()
        self.distilled = int(channels * distillation_rate)
        self.remaining = channels - self.distilled
        self.c1 = conv_layer(channels, channels, 3)
        self.c2 = conv_layer(self.remaining, channels, 3)
        self.c3 = conv_layer(self.remaining, channels, 3)
        self.c4 = conv_layer(self.remaining, self.distilled, 3)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.c5 = conv_layer(self.distilled * 4, channels, 1)
        self.cca = ChannelAttention(self.distilled * 4, reduction=16, contrast=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = (self.distilled, self.remaining)
        d1, r1 = self.act(self.c1(x)).split(split, dim=1)
        d2, r2 = self.act(self.c2(r1)).split(split, dim=1)
        d3, r3 = self.act(self.c3(r2)).split(split, dim=1)
        d4 = self.c4(r3)
        out = torch.cat([d1, d2, d3, d4], dim=1)
        return self.c5(self.cca(out)) + x


class IMDN(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 64, num_blocks: int = 6, in_ch: int = 3, out_ch: int = 3):
        super().__init__()
        self.scale = scale
        self.num_blocks = num_blocks
        self.fea_conv = conv_layer(in_ch, channels, 3)
        for i in range(1, num_blocks + 1):  # official names IMDB1..IMDB6
            self.add_module(f"IMDB{i}", IMDB(channels))
        self.c = nn.Sequential(conv_layer(channels * num_blocks, channels, 1), nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = conv_layer(channels, channels, 3)
        self.upsampler = UpsampleOneStep(scale, channels, out_ch)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """F_D: what the up-sampler sees."""
        fea = self.fea_conv(x)
        outs, h = [], fea
        for i in range(1, self.num_blocks + 1):
            h = getattr(self, f"IMDB{i}")(h)
            outs.append(h)
        return self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsampler(self.forward_features(x))


_IMDN = "https://github.com/Zheng222/IMDN/raw/8f158e6a5ac9db6e5857d9159fd4a6c4214da574/checkpoints/IMDN_x{}.pth"


@register_model("imdn", scales=(2, 3, 4), paper="Hui et al., IMDN, ACM MM 2019", family="cnn", published={
    2: Published(_IMDN.format(2), "740b39653592bd3f49955a21cd9e16f2d37f2c413368cc09327601b8fbe42ce1",
                 "no licence file", {"Set5": (38.0062, 0.9606), "Set14": (33.6383, 0.9179)}),
    3: Published(_IMDN.format(3), "11b1716a19bc16e5e353e1db798d476169338e631eb170c82d765559888cb028",
                 "no licence file", {"Set5": (34.3644, 0.9271), "Set14": (30.3264, 0.8418)}),
    4: Published(_IMDN.format(4), "e660c38221147217a136debeb99eb304d62d9c0f73ac421ed66281b619719714",
                 "no licence file", {"Set5": (32.2047, 0.8948), "Set14": (28.5819, 0.7811),
                                     "BSD100": (27.5598, 0.7354)})},
                traits=Traits(tiling_exact=False))  # contrast-aware channel attention: global statistics
def imdn(scale: int = 4, channels: int = 64, num_blocks: int = 6) -> IMDN:
    """IMDN (information multi-distillation network), 715K params at x4."""
    return IMDN(scale=scale, channels=channels, num_blocks=num_blocks)


@detector("imdn", "fea_conv.weight", "IMDB1.c1.weight", "LR_conv.weight", "upsampler.0.weight")
def _imdn(s: Shapes) -> list[Guess]:
    return one_step("imdn", s, {"channels": s.out("fea_conv.weight"), "num_blocks": s.count("IMDB{}.c1.weight")})
