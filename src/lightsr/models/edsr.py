"""EDSR (Lim et al., CVPRW 2017), the *baseline* configuration: 16 residual blocks x 64 channels.

Keys follow EDSR-PyTorch / ``yinboc/liif/models/edsr.py`` (``head.0``, ``body.{i}.body.{0,2}``,
``body.16``, ``tail.0.{0,2}`` up-sampler, ``tail.1``; ``sub_mean``/``add_mean`` are fixed buffers,
not parameters), so EDSR-PyTorch and LIIF encoder checkpoints load strictly.

    f0 = head(x);  F_D = body(f0) + f0                     (forward_features: the headless encoder)
    y  = tail(F_D)  (Upsampler: log2(s) x [Conv3x3 C->4C, PixelShuffle(2)] or [C->9C, PS(3)], Conv3x3 C->3)

Parameters: x4 1,517,571; x2 1,369,859; x3 1,554,499; headless encoder 1,220,416.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layers.skeleton import DIV2K_MEAN  # the one copy: the RGB mean of DIV2K
from ..layers.upsample import Upsample
from .arbsr import SAAdapt
from .detect import Guess, Miss, Shapes, defaults_of, detector
from .registry import Traits, register_model


class MeanShift(nn.Module):
    """EDSR's fixed 1x1 mean shift; weight/bias are buffers (checkpoint keys, no parameters)."""

    def __init__(self, rgb_range: float, sign: int = -1, mean=DIV2K_MEAN):
        super().__init__()
        self.register_buffer("weight", torch.eye(3).view(3, 3, 1, 1))
        self.register_buffer("bias", sign * rgb_range * torch.tensor(mean))

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.conv2d(x, self.weight, self.bias)


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class ResBlock(nn.Module):
    """Conv-ReLU-Conv + identity, no BN (EDSR)."""

    def __init__(self, n_feats: int, res_scale: float = 1.0):
        super().__init__()
        self.body = nn.Sequential(conv3x3(n_feats, n_feats), nn.ReLU(True), conv3x3(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    """EDSR. ``scale=None`` (or ``no_upsampling=True``) builds the headless encoder of LIIF/SRNO.

    ``mean_shift`` / ``rgb_range``: EDSR-PyTorch multiplies the [0, 1] input by rgb_range (255) and
    subtracts the DIV2K mean; LIIF's encoder (rgb_range 1) skips the mean shift.
    ``blocks`` replaces the residual blocks (AnySR passes its width-sliced blocks).
    ``adapt_every=K`` inserts ArbSR's scale-aware feature adaption after every K blocks (keys
    ``sa_adapt.{i}``; the scale comes from :meth:`set_scale`)."""

    _scale: tuple[float, float] = (4.0, 4.0)

    def __init__(self, scale: int | None = 4, n_resblocks: int = 16, n_feats: int = 64,
                 res_scale: float = 1.0, rgb_range: float = 1.0, mean_shift: bool = False,
                 blocks: list[nn.Module] | None = None, adapt_every: int | None = None):
        super().__init__()
        self.scale, self.rgb_range, self.mean_shift = scale, rgb_range, mean_shift
        self.out_dim = n_feats
        self.sub_mean = MeanShift(rgb_range, -1)
        self.add_mean = MeanShift(rgb_range, +1)
        self.head = nn.Sequential(conv3x3(3, n_feats))
        blocks = blocks if blocks is not None else [ResBlock(n_feats, res_scale) for _ in range(n_resblocks)]
        self.body = nn.Sequential(*blocks, conv3x3(n_feats, n_feats))
        if scale is not None:
            self.tail = nn.Sequential(Upsample(scale, n_feats), conv3x3(n_feats, 3))
        self.adapt_every = adapt_every
        if adapt_every:
            self.sa_adapt = nn.ModuleList(SAAdapt(n_feats) for _ in range(len(blocks) // adapt_every))

    def set_scale(self, s_h: float, s_w: float) -> None:
        self._scale = (float(s_h), float(s_w))

    def forward_features(self, x: Tensor) -> Tensor:
        x = x * self.rgb_range
        if self.mean_shift:
            x = self.sub_mean(x)
        f0 = self.head(x)
        if not self.adapt_every:
            return self.body(f0) + f0
        res = f0
        for i, blk in enumerate(self.body[:-1]):
            res = blk(res)
            if (i + 1) % self.adapt_every == 0:
                res = self.sa_adapt[i // self.adapt_every](res, self._scale)
        return self.body[-1](res) + f0

    def forward(self, x: Tensor) -> Tensor:
        if self.scale is None:
            return self.forward_features(x)
        y = self.tail(self.forward_features(x))
        if self.mean_shift:
            y = self.add_mean(y)
        return y / self.rgb_range


@register_model("edsr_baseline", scales=(2, 3, 4), paper="Lim et al., CVPRW 2017 (EDSR-baseline)",
                family="cnn", traits=Traits(tiling_exact=True))  # a purely local CNN
def edsr_baseline(scale: int = 4, rgb_range: float = 255.0, mean_shift: bool = True) -> EDSR:
    """EDSR-baseline (16 x 64), EDSR-PyTorch conventions (rgb_range 255, DIV2K mean shift)."""
    return EDSR(scale, rgb_range=rgb_range, mean_shift=mean_shift)


def edsr_baseline_encoder(**kwargs) -> EDSR:
    """The headless EDSR-baseline of LIIF/MetaSR/SRNO (rgb_range 1, no mean shift)."""
    return EDSR(None, **kwargs)


def _edsr_tail_scale(s: Shapes, prefix: str, feats: int) -> int:
    n = s.stepped(prefix + "{}.weight")
    out = s.out(prefix + "0.weight")
    if n == 1 and out == 9 * feats:
        return 3
    if out == 4 * feats and n >= 1:
        return 2 ** n
    raise Miss(f"up-sampler {prefix}0 has {out} output channels, not 4C or 9C")


@detector("edsr_baseline", "head.0.weight", "body.0.body.0.weight", "tail.0.0.weight")
def _edsr(s: Shapes) -> list[Guess]:
    feats, blocks = s.out("head.0.weight"), s.count("body.{}.body.0.weight")
    base = defaults_of(EDSR)  # the baseline: 16 x 64
    if (feats, blocks) != (base["n_feats"], base["n_resblocks"]):
        raise Miss(f"EDSR with {blocks} blocks x {feats} channels; lightsr registers EDSR-baseline (16 x 64)")
    return [("edsr_baseline", _edsr_tail_scale(s, "tail.0.", feats), {}, {"n_feats": feats, "n_resblocks": blocks})]
