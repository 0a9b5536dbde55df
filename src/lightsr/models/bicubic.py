"""Bicubic interpolation as a model: MATLAB ``imresize`` up-scaling, any scale (the baseline row of
every SR table). No parameters; continuous (``forward(x, scale=s)``), output ``round(h s) x round(w s)``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..resize import imresize
from .registry import Traits, register_model


class Bicubic(nn.Module):
    continuous = True

    def __init__(self, scale: float = 4):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor, scale: float | tuple[float, float] | None = None) -> torch.Tensor:
        s = self.scale if scale is None else scale
        sh, sw = (s, s) if not isinstance(s, (tuple, list)) else s
        h, w = x.shape[-2:]
        size = (int(round(h * float(sh))), int(round(w * float(sw))))
        # float64 inside so the 8-bit rounding of the output matches a double-precision reference
        dt = torch.float64 if x.device.type in ("cpu", "cuda") else x.dtype  # (no float64 on mps)
        return imresize(x.to(dt), output_size=size).to(x.dtype)


@register_model("bicubic", scales=None, paper="MATLAB imresize (bicubic, a = -0.5)", family="interpolation",
                traits=Traits(tiling_exact=True))  # no weights; a 4x4 kernel
def bicubic(scale: float = 4) -> Bicubic:
    """MATLAB-compatible bicubic up-scaling (no parameters, any scale)."""
    return Bicubic(4 if scale is None else scale)
