"""CARN-M: Fast, Accurate, and Lightweight Super-Resolution with Cascading Residual Network
(Ahn, Kang, Sohn; ECCV 2018). Official code: nmhkahn/CARN-pytorch ``carn/model/carn_m.py``, ``ops.py``.

The mobile variant: 3 cascading blocks, each applying ONE shared efficient residual block three
times (recursive weight sharing) with group-4 convolutions; local and global cascading by concat +
1x1 conv (paper Fig. 2/3). One network carries x2, x3 and x4 up-sampling heads (the official
multi-scale model); ``scale`` picks the head forward uses, and the state dict holds all three so
the official ``carn_m.pth`` loads strictly. Input in [0, 1]; a frozen 1x1 "MeanShift" conv
subtracts / adds the DIV2K RGB mean (its weights are in the checkpoint).

Parameters: 414,811 in all (all three heads); 294,171 on the x4 path.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.skeleton import DIV2K_MEAN  # the one copy: the RGB mean of DIV2K
from .detect import Guess, Miss, Shapes, builder_defaults, detector, nondefault
from .registry import Published, Traits, register_model


class MeanShift(nn.Module):
    """Frozen 1x1 conv adding (``sign=+1``) or subtracting (``-1``) the RGB mean; key ``shifter``."""

    def __init__(self, mean: tuple[float, float, float] = DIV2K_MEAN, sign: int = -1):
        super().__init__()
        self.shifter = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.shifter.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.shifter.bias.copy_(sign * torch.tensor(mean))
        self.shifter.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shifter(x)


class BasicBlock(nn.Module):
    """Conv + ReLU (the 1x1 cascading fusions); key ``body.0``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size, 1, kernel_size // 2), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class EResidualBlock(nn.Module):
    """Efficient residual block (paper Fig. 4c): group conv3x3 -> ReLU -> group conv3x3 -> ReLU ->
    conv1x1, then ReLU(out + x)."""

    def __init__(self, channels: int = 64, groups: int = 4):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, groups=groups), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, groups=groups), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


def cascade(x: torch.Tensor, blocks, fusions) -> torch.Tensor:
    """Cascading (paper eqs. 1-2): o_i = c_i([o_0, f_1(o_0), ..., f_i(o_{i-1})]), o_0 = x.

    ``blocks`` holds one module per step; CARN-M's local block passes the same module three times.
    """
    cat = out = x
    for block, fuse in zip(blocks, fusions):
        cat = torch.cat([cat, block(out)], dim=1)
        out = fuse(cat)
    return out


class CascadingBlock(nn.Module):
    """Local cascading block of CARN-M: one shared EResidualBlock ``b1`` used three times."""

    def __init__(self, channels: int = 64, groups: int = 4):
        super().__init__()
        self.b1 = EResidualBlock(channels, groups)
        self.c1 = BasicBlock(channels * 2, channels)
        self.c2 = BasicBlock(channels * 3, channels)
        self.c3 = BasicBlock(channels * 4, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cascade(x, (self.b1, self.b1, self.b1), (self.c1, self.c2, self.c3))


class UpsampleHead(nn.Module):
    """[group conv3x3 (C -> 4C) -> ReLU -> PixelShuffle(2)] x log2(s), or the x3 form; key ``body``."""

    def __init__(self, channels: int, scale: int, groups: int = 4):
        super().__init__()
        layers: list[nn.Module] = []
        factors = [2] * int(math.log2(scale)) if scale in (2, 4, 8) else [3]
        for f in factors:
            layers += [nn.Conv2d(channels, f * f * channels, 3, 1, 1, groups=groups), nn.ReLU(inplace=True),
                       nn.PixelShuffle(f)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MultiScaleUpsample(nn.Module):
    """The official multi-scale up-sampler: heads ``up2``, ``up3``, ``up4``."""

    def __init__(self, channels: int, groups: int = 4):
        super().__init__()
        self.up2 = UpsampleHead(channels, 2, groups)
        self.up3 = UpsampleHead(channels, 3, groups)
        self.up4 = UpsampleHead(channels, 4, groups)

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        return getattr(self, f"up{scale}")(x)


class CARNM(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 64, groups: int = 4):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"CARN-M has x2/x3/x4 heads, not x{scale}")
        self.scale = scale
        self.sub_mean = MeanShift(sign=-1)
        self.add_mean = MeanShift(sign=+1)
        self.entry = nn.Conv2d(3, channels, 3, 1, 1)
        self.b1 = CascadingBlock(channels, groups)
        self.b2 = CascadingBlock(channels, groups)
        self.b3 = CascadingBlock(channels, groups)
        self.c1 = BasicBlock(channels * 2, channels)
        self.c2 = BasicBlock(channels * 3, channels)
        self.c3 = BasicBlock(channels * 4, channels)
        self.upsample = MultiScaleUpsample(channels, groups)
        self.exit = nn.Conv2d(channels, 3, 3, 1, 1)

    def active_parameters(self) -> int:
        """Parameters on the path the current scale uses (the other two heads excluded)."""
        unused = [getattr(self.upsample, f"up{s}") for s in (2, 3, 4) if s != self.scale]
        return sum(p.numel() for p in self.parameters()) - sum(p.numel() for m in unused for p in m.parameters())

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        scale = self.scale if scale is None else int(scale)
        x = self.entry(self.sub_mean(x))
        x = cascade(x, (self.b1, self.b2, self.b3), (self.c1, self.c2, self.c3))  # global cascading
        return self.add_mean(self.exit(self.upsample(x, scale)))


_CARN_M = Published(  # one file, one network with x2/x3/x4 heads
    "https://github.com/nmhkahn/CARN-pytorch/raw/40d3514f81cccd680d846cd5ab07af35f2c8e0e2/checkpoint/carn_m.pth",
    "d48a759a84509351facb6b7c6d5bd6edec98b98519b8c464ee4ab44d2ba964ff", "MIT")


@register_model("carn_m", scales=(2, 3, 4), paper="Ahn et al., CARN-M, ECCV 2018", family="cnn", published={
    2: _CARN_M, 3: _CARN_M,
    4: Published(_CARN_M.url, _CARN_M.sha256, _CARN_M.licence, {
        "Set5": (31.8813, 0.8910), "Set14": (28.4132, 0.7772), "BSD100": (27.4524, 0.7316)},
        "the paper's Set5 31.92 is not reproduced by the official code with this file")},
                traits=Traits(tiling_exact=True))  # a purely local CNN
def carn_m(scale: int = 4, channels: int = 64, groups: int = 4) -> CARNM:
    """CARN-M (cascading residual network, mobile), one network with x2/x3/x4 heads; 415K params."""
    return CARNM(scale=scale, channels=channels, groups=groups)


@detector("carn_m", "entry.weight", "b1.b1.body.0.weight", "c1.body.0.weight", "exit.weight")
def _carn_m(s: Shapes) -> list[Guess]:
    heads = tuple(k for k in (2, 3, 4) if f"upsample.up{k}.body.0.weight" in s)
    if heads != (2, 3, 4):
        raise Miss("not the multi-scale network with up2/up3/up4 heads (lightsr builds that one)")
    c = s.out("entry.weight")
    d = {"channels": c, "groups": c // s.inp("b1.b1.body.0.weight")}
    return [("carn_m", heads, nondefault(d, builder_defaults("carn_m")), d)]
