"""Convolutional attention blocks shared by the efficient CNN models (IMDN, RLFN, HASN, RDB-ESA).

Each block exists once here; attribute names follow the official code so checkpoints load strictly.

* :func:`conv_layer` -- "same"-padded convolution (the ``conv_layer`` helper of IMDN/RFDN/RLFN/HASN).
* :class:`ChannelAttention` -- RCAN channel attention (Zhang et al. 2018, eq. 5-7: global average
  pooling -> 1x1 squeeze -> ReLU -> 1x1 excite -> sigmoid -> rescale); with ``contrast=True`` it is
  IMDN's contrast-aware CCA (Hui et al. 2019, eq. 6: the pooled statistic is mean + standard deviation).
* :class:`CAB` -- HAT's channel attention block (conv3x3 -> GELU -> conv3x3 -> channel attention),
  HASN's "CAB" (Cao et al., Fig. 3b).
* :class:`ESA` -- enhanced spatial attention (Liu et al. RFANet 2020), in the reduced form RLFN and
  HASN use (no ``conv_max``/``conv3_``): a strided conv + 7x7/3 max-pool give a large receptive
  field cheaply, bilinear upsampling brings the map back, and a sigmoid mask rescales the input.
* :class:`DepthwiseConv2d` -- ``nn.Conv2d`` with one filter per channel (same keys), whose weight
  gradient under ``torch.compile`` is a reduction the compiler fuses (see the class).
* :class:`DepthwiseConv` -- a depthwise kxk conv (HASN's "DWConv", official keys ``<name>.conv.*``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .window import mirror_pad

# ESA's stride-2 3x3 conv followed by a 7x7/3 max-pool needs H, W >= 15
ESA_MIN_SIZE = 15


def conv_layer(in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, groups: int = 1,
               bias: bool = True) -> nn.Conv2d:
    """Conv2d with padding (k-1)//2 (the official ``conv_layer`` of IMDN/RLFN/HASN)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=bias)


def spatial_std(x: torch.Tensor) -> torch.Tensor:
    """Per-channel population standard deviation over H, W (IMDN's ``stdv_channels``), (B, C, 1, 1)."""
    mean = x.mean((2, 3), keepdim=True)
    return (x - mean).pow(2).mean((2, 3), keepdim=True).sqrt()


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention.

    RCAN CALayer: ``x * sigmoid(W_U relu(W_D z))`` with ``z = mean_{H,W}(x)`` (RCAN eqs. 5-7).
    ``contrast=True``: IMDN's CCA layer, ``z = mean + std`` over H, W (IMDN eq. 6).

    ``keys="conv_du"`` is the RCAN/IMDN layout (``conv_du.0``, ``conv_du.2``); ``keys="attention"``
    is BasicSR's ``ChannelAttention`` layout used by HAT/HASN, where the pooling sits in the same
    Sequential (``attention.1``, ``attention.3``). Both compute the same function.
    """

    def __init__(self, channels: int, reduction: int = 16, contrast: bool = False, keys: str = "conv_du"):
        super().__init__()
        if keys not in ("conv_du", "attention"):
            raise ValueError(f"keys must be 'conv_du' or 'attention', not {keys!r}")
        if contrast and keys != "conv_du":
            raise ValueError("the contrast-aware variant uses the conv_du layout")
        self.contrast = contrast
        self.keys = keys
        squeeze = channels // reduction
        excite = [nn.Conv2d(channels, squeeze, 1), nn.ReLU(inplace=True), nn.Conv2d(squeeze, channels, 1),
                  nn.Sigmoid()]
        if keys == "conv_du":
            self.conv_du = nn.Sequential(*excite)
        else:
            self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), *excite)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.keys == "attention":
            return x * self.attention(x)
        z = x.mean((2, 3), keepdim=True)
        if self.contrast:
            z = z + spatial_std(x)
        return x * self.conv_du(z)


class CAB(nn.Module):
    """Channel attention block (HAT; HASN Fig. 3b): conv3x3 (C -> C/3) -> GELU -> conv3x3 -> CA.

    No residual inside; keys ``cab.0``, ``cab.2``, ``cab.3.attention.{1,3}`` as the official code.
    """

    def __init__(self, channels: int, compress_ratio: int = 3, squeeze_factor: int = 30):
        super().__init__()
        mid = channels // compress_ratio
        self.cab = nn.Sequential(nn.Conv2d(channels, mid, 3, 1, 1), nn.GELU(), nn.Conv2d(mid, channels, 3, 1, 1),
                                 ChannelAttention(channels, squeeze_factor, keys="attention"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cab(x)


def bilinear_matrix(n_out: int, n_in: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(n_out, n_in) weights of 1-D linear interpolation as ``F.interpolate(mode="bilinear",
    align_corners=False)`` computes them for a given output size: source ``(i + 0.5) n_in / n_out - 0.5``
    clamped at 0, the two neighbours weighted by distance."""
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    w1 = src - i0
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m[torch.arange(n_out), i0] += 1 - w1
    m[torch.arange(n_out), i1] += w1
    return m.to(device=device, dtype=dtype)


def upsample_bilinear(x: torch.Tensor, size) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)``. In a compiled training step
    (``lightsr train --compile``) it is computed as the separable product ``A_h x A_w^T`` in fp32: the
    same weights (equal within float rounding), but its gradient is two small matrix products instead
    of the compiler's scatter-add for ``upsample_bilinear2d_backward`` (~7 % of a compiled HASN step;
    HASN 29.8 -> 32.4 patches/s). Eager, the native kernel is the faster one (HASN bf16 22.4 vs 18.6)."""
    if not (torch.is_grad_enabled() and x.requires_grad and torch.compiler.is_compiling()):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    (h, w), (hi, wi) = size, x.shape[-2:]
    ah = bilinear_matrix(h, hi, x.device, torch.float32)
    aw = bilinear_matrix(w, wi, x.device, torch.float32)
    with torch.autocast(x.device.type, enabled=False):  # fp32 weights and sums, as F.interpolate's
        return (ah @ x.float() @ aw.transpose(0, 1)).to(x.dtype)


class ESA(nn.Module):
    """Enhanced spatial attention, RLFN/HASN form (``esa_channels`` f, usually 16).

    ``c1 = conv1(x)`` (1x1, C -> f); ``c3 = conv3(maxpool7/3(conv2(c1)))`` (3x3 stride 2 pad 0, then
    3x3); ``m = sigmoid(conv4(up_bilinear(c3) + conv_f(c1)))``; output ``x * m``.
    """

    def __init__(self, esa_channels: int, channels: int):
        super().__init__()
        f = esa_channels
        self.conv1 = nn.Conv2d(channels, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = self.conv1(x)
        low = self.conv2(c1)
        low = F.max_pool2d(low, kernel_size=7, stride=3)
        low = self.conv3(low)
        low = upsample_bilinear(low, x.shape[-2:])
        mask = torch.sigmoid(self.conv4(low + self.conv_f(c1)))
        return x * mask


class _DepthwiseGrad(torch.autograd.Function):
    """y = depthwise_conv(x, w) + b with a faster weight gradient on CPU,

        dL/dw[c, i, j] = sum_{n, h, w} x_pad[n, c, h + i, w + j] * g[n, c, h, w].

    oneDNN's depthwise backward-weights runs far below its forward speed, worst in bf16 (one thread,
    channels_last, 16 x C x 48 x 48; ms):

    ====================================  ==========  ===========  ===========  ==========
    weight gradient                       oneDNN bf16  oneDNN fp32  taps, eager  taps, compiled
    ====================================  ==========  ===========  ===========  ==========
    7x7, C = 52 (HASN)                        71          22            101          13
    5x5, C = 120 (SRFormer's ConvFFN)        195          34            108          12
    ====================================  ==========  ===========  ===========  ==========

    Compiled (``taps=True``: ``lightsr train --compile``), the weight gradient is the k^2 reductions
    above, one per tap and image (H x W terms each, then summed over images), vectorised over C, which
    the compiler fuses with fp32 accumulation. Reducing over (N, H, W) at once took 22 / 18 ms: above
    4,096 terms the compiler switches to cascade summation; one unfolded reduction took 31 / 47 ms; a
    pre-padded input (plain loads instead of masked ones) gained nothing in a training step. Eager
    under bf16 autocast (``taps=False``), it is oneDNN's fp32 kernel on fp32 copies of x and g. In
    both, the input gradient (a transposed convolution) runs as oneDNN's forward depthwise kernel on
    the flipped taps, 2.3x its backward-data kernel."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding, taps):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias, ctx.taps = padding, bias is not None, taps
        return F.conv2d(x, weight, bias, padding=padding, groups=weight.shape[0])

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        (ph, pw), (kh, kw), c = ctx.padding, weight.shape[-2:], weight.shape[0]
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:  # transposed conv = forward conv on the flipped taps (7x7: 3.1 vs 7.2 ms)
            gx = F.conv2d(g, weight.flip(-2, -1), padding=(kh - 1 - ph, kw - 1 - pw), groups=c)
        if ctx.needs_input_grad[1] and ctx.taps:
            xp, gf, (h, w) = F.pad(x, (pw, pw, ph, ph)).float(), g.float(), g.shape[-2:]
            # one reduction per tap and image, then over images: reductions of H x W terms, short
            # enough that the compiler's cascade summation (for > 4096 terms) stays off (1.7x faster)
            gw = torch.stack([(xp[:, :, i:i + h, j:j + w] * gf).sum((2, 3))
                              for i in range(kh) for j in range(kw)], 2).sum(0)
            gw = gw.view_as(weight).to(weight.dtype)
        elif ctx.needs_input_grad[1]:
            gw = torch.ops.aten.convolution_backward(g.float(), x.float(), weight.float(), None, [1, 1], [ph, pw],
                                                     [1, 1], False, [0, 0], c, [False, True, False])[1]
            gw = gw.to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.float().sum((2, 3)).sum(0).to(weight.dtype)
        return gx, gw, gb, None, None


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(channels, channels, k, padding=k // 2, groups=channels)``: same parameters, keys and
    forward. In a CPU training step with a kernel larger than 3x3, traced by ``torch.compile`` or
    under bf16 autocast, the weight gradient goes through :class:`_DepthwiseGrad`; every other call
    (inference, fp32 eager, 3x3, where oneDNN is fastest) is nn.Conv2d's."""

    def __init__(self, channels: int, kernel_size: int, padding: int | None = None, bias: bool = True):
        super().__init__(channels, channels, kernel_size, 1, kernel_size // 2 if padding is None else padding,
                         groups=channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compiling = torch.compiler.is_compiling()
        bf16 = x.device.type == "cpu" and torch.is_autocast_enabled("cpu") \
            and torch.get_autocast_dtype("cpu") == torch.bfloat16
        if not (torch.is_grad_enabled() and self.weight.requires_grad and (compiling or bf16)) \
                or max(self.kernel_size) <= 3:
            return super().forward(x)
        w, b = self.weight, self.bias
        if torch.is_autocast_enabled(x.device.type):  # cast here: the function's backward sees one dtype
            dt = torch.get_autocast_dtype(x.device.type)
            x, w, b = x.to(dt), w.to(dt), None if b is None else b.to(dt)
        return _DepthwiseGrad.apply(x, w, b, self.padding, compiling)


class DepthwiseConv(nn.Module):
    """Depthwise kxk convolution with bias; official key ``conv`` (HASN's ``ConvBN(with_bn=False)``)."""

    def __init__(self, channels: int, kernel_size: int = 7):
        super().__init__()
        self.conv = DepthwiseConv2d(channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PointwiseConv(nn.Module):
    """1x1 convolution ("fully connected layer" of HASN); official key ``conv``."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def pad_min_size(x: torch.Tensor, size: int = ESA_MIN_SIZE) -> torch.Tensor:
    """Mirror-pad H and W (bottom/right) up to ``size``; models crop the output back afterwards."""
    h, w = x.shape[-2:]
    if h >= size and w >= size:
        return x
    return mirror_pad(x, max(0, size - h), max(0, size - w))
