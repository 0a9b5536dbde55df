"""Feed-forward networks of the token models; both take ``(tokens (B, HW, C), size (h, w))``.

* :class:`Mlp` — Linear -> GELU -> Linear (SwinIR, HiT-SIR, HiT-SNG; keys ``fc1``, ``fc2``).
* :class:`ConvFFN` — SRFormer's / HiT-SRF's convolutional FFN (keys ``fc1``,
  ``dwconv.depthwise_conv.0``, ``fc2``): ``fc2(h + GELU(DWConv5x5(h)))`` with ``h = GELU(fc1(x))``.
"""
from __future__ import annotations

from torch import Tensor, nn

from .conv import DepthwiseConv2d


class Mlp(nn.Module):
    """Linear(C -> hidden) -> GELU -> Linear(hidden -> C); ``size`` is accepted and ignored."""

    def __init__(self, dim: int, hidden: int, out_dim: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DWConv(nn.Module):
    """Depth-wise Conv kxk + GELU on tokens (key ``depthwise_conv.0``)."""

    def __init__(self, hidden: int, kernel_size: int = 5):
        super().__init__()
        self.depthwise_conv = nn.Sequential(
            DepthwiseConv2d(hidden, kernel_size), nn.GELU())

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        b, _, c = x.shape
        y = self.depthwise_conv(x.transpose(1, 2).reshape(b, c, size[0], size[1]))
        return y.flatten(2).transpose(1, 2)


class ConvFFN(nn.Module):
    """SRFormer ConvFFN: h = GELU(fc1(x)); h = h + DWConv5x5(h) (with GELU); fc2(h)."""

    def __init__(self, dim: int, hidden: int, out_dim: int | None = None, kernel_size: int = 5):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.dwconv = DWConv(hidden, kernel_size)
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        h = self.act(self.fc1(x))
        return self.fc2(h + self.dwconv(h, size))


def make_ffn(kind: str, dim: int, hidden: int) -> nn.Module:
    """``"mlp"`` -> :class:`Mlp`, ``"conv"`` -> :class:`ConvFFN`."""
    if kind == "mlp":
        return Mlp(dim, hidden)
    if kind == "conv":
        return ConvFFN(dim, hidden)
    raise ValueError(f"unknown FFN kind {kind!r} (mlp or conv)")
