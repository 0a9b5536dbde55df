"""Width-sliced ("slimmable") convolution (AnySR ``USConv2d``; Yu et al., slimmable networks).

One full weight tensor; at run time the layer uses ``weight[:out_used, :in_used]`` (the first
filters, AnySR section 3.2: Theta_{F_t} = Theta_F[1:|Theta_{F_t}|]):

* ``slim_in``:  in_used = the channel count of the input actually received;
* ``slim_out``: out_used = ``out_groups * floor(out_channels / out_groups * width)`` (AnySR's
  ``int(C*w)``; RDN's fc2 uses out_groups = 2: ``2 * int(G*w)``), or an explicit ``out_used``.

Sub-networks therefore share weights and add no parameters.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def slim_channels(channels: int, width: float, groups: int = 1) -> int:
    """floor(channels * width) channels (in multiples of ``groups``), at least ``groups``."""
    return max(groups, groups * int(channels // groups * width + 1e-9))


class SlimConv2d(nn.Conv2d):
    """nn.Conv2d (same keys) whose first ``in_used``/``out_used`` channels run at ``self.width``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, slim_in: bool = False,
                 slim_out: bool = False, out_groups: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.slim_in, self.slim_out, self.out_groups = slim_in, slim_out, out_groups
        self.width = 1.0

    def out_used(self, width: float | None = None) -> int:
        w = self.width if width is None else width
        return slim_channels(self.out_channels, w, self.out_groups) if self.slim_out else self.out_channels

    def forward(self, x: Tensor, out_used: int | None = None) -> Tensor:  # type: ignore[override]
        cin = x.shape[1] if self.slim_in else self.in_channels
        if cin > self.in_channels or (not self.slim_in and x.shape[1] != self.in_channels):
            raise ValueError(f"SlimConv2d got {x.shape[1]} input channels, holds {self.in_channels}")
        cout = self.out_used() if out_used is None else out_used
        bias = self.bias[:cout] if self.bias is not None else None
        self.last_used = (cin, cout)  # read by the AnySR training step (which entries were used)
        return F.conv2d(x, self.weight[:cout, :cin], bias, self.stride, self.padding)

    def active_mask(self):
        """Boolean masks (weight, bias) of the entries the last forward used."""
        import torch

        in_used, out_used = self.last_used
        wm = torch.zeros_like(self.weight, dtype=torch.bool)
        wm[:out_used, :in_used] = True
        bm = None
        if self.bias is not None:
            bm = torch.zeros_like(self.bias, dtype=torch.bool)
            bm[:out_used] = True
        return wm, bm

    def extra_repr(self) -> str:
        return super().extra_repr() + f", slim_in={self.slim_in}, slim_out={self.slim_out}"
