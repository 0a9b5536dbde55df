"""HiT-SR (Zhang et al., ECCV 2024): HiT-SIR, HiT-SRF and HiT-SNG, exact to ``XiangZ-0/HiT-SR``
``basicsr/archs/hit_{sir,srf,sng}_arch.py`` (C = 60, 4 RHTB x 6 HTB, 6 heads, base window 8,
hierarchical windows [4, 8, 16, 32, 48, 64] in every group, mlp_ratio 2, post-norm, no shift,
pixelshuffledirect, no global padding).

The three differ only in the HTB:
* HiT-SIR — SCC + Linear-GELU-Linear FFN (SwinIR-HiT; 791,540 params at x4).
* HiT-SRF — SCC + ConvFFN (SRFormer-HiT; 866,420 at x4).
* HiT-SNG — SCC whose window partition adds an N-Gram context (SwinIR-NG-HiT; 1,032,060 at x4);
  layers pad to multiples of 2x their window.

Keys: ``layers.{i}.residual_group.blocks.{j}.{norm1,correlation.{qv,proj,spatial_linear,pos},
norm2,mlp}``; SNG adds ``correlation.ngram_window_partition.ngram_context.{unigram_embed,
ngram_attn,merge}``. The reference checkpoint ``hit_srf_x4.pth`` loads strictly.

Differences from the official code, none changing the outputs beyond float rounding (checked against
a transcription of the official SCC in tests/test_transformers.py, and by the reference checkpoint's
per-image PSNR): the position bias is built by a box filter + an (N, b^2) gather and cached in eval
(the official rebuilds an (N, N) gather, 16.7M entries for ws = 64, every forward); S-SC, having no
softmax, is evaluated as Q (V'^T V' / d) + P V' instead of (Q V'^T / d + P) V' (fewer MACs, see
results/transformers.md); per-layer padding uses a repeated reflection, so inputs smaller than the
official code accepts work too.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.attention import SCC, WindowAttention
from ..layers.ffn import make_ffn
from ..layers.skeleton import (BlockStack, DropPath, LightweightSR, drop_path_rates, init_transformer_weights,
                               tokens_to_map)
from ..layers.window import pad_to_multiple
from .registry import Published, Traits, register_model

HIER_WINDOW_RATIOS = (0.5, 1, 2, 4, 6, 8)


class NGramContext(nn.Module):
    """HiT-SNG's N-Gram context (from NGswin, Choi et al. 2023), ngram = 2.

    Every window's channel pairs are embedded into one "unigram" per window and per pair
    (``unigram_embed``: Conv(2 -> 1, kernel = stride = window)); the unigram map is reflect-padded
    forwards (bottom/right) and backwards (top/left) by ngram - 1 windows; a 2x2 sliding-window MSA
    (``ngram_attn``, C/2 channels) runs over it and its 4 outputs are averaged; the two directions
    are concatenated and merged by a Conv1x1 (``merge``). Returns (B, nH, nW, C).
    """

    def __init__(self, dim: int, window: tuple[int, int], ngram: int, heads: int):
        super().__init__()
        self.dim, self.window, self.ngram = dim, window, ngram
        self.unigram_embed = nn.Conv2d(2, 1, kernel_size=window, stride=window)
        self.ngram_attn = WindowAttention(dim // 2, (ngram, ngram), heads)
        self.merge = nn.Conv2d(dim, dim, 1)

    def sliding_window_attention(self, unigram: Tensor) -> Tensor:
        """(B, c, nh + n - 1, nw + n - 1) -> mean of MSA over every n x n neighbourhood: (B, c, nh, nw)."""
        b, c, hp, wp = unigram.shape
        n = self.ngram
        nh, nw = hp - n + 1, wp - n + 1
        tokens = torch.stack([unigram[:, :, i:i + nh, j:j + nw] for i in range(n) for j in range(n)], -1)
        tokens = tokens.permute(0, 2, 3, 4, 1).reshape(b * nh * nw, n * n, c)
        context = self.ngram_attn(tokens).mean(1)  # AvgPool(n) of the n x n outputs
        return context.view(b, nh, nw, c).permute(0, 3, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, d = x.shape
        p = self.ngram - 1
        pairs = x.permute(0, 3, 1, 2).reshape(b * d // 2, 2, h, w)
        unigram = self.unigram_embed(pairs).view(b, d // 2, h // self.window[0], w // self.window[1])
        forward = self.sliding_window_attention(F.pad(unigram, (0, p, 0, p), mode="reflect"))
        backward = self.sliding_window_attention(F.pad(unigram, (p, 0, p, 0), mode="reflect"))
        return self.merge(torch.cat([forward, backward], 1)).permute(0, 2, 3, 1)


class NGramWindowPartition(nn.Module):
    """Window partition that adds each window's N-Gram context to all its tokens: (B, H, W, C) ->
    (B*nW, N, C)."""

    def __init__(self, dim: int, window: tuple[int, int], ngram: int, heads: int):
        super().__init__()
        self.window = window
        self.ngram_context = NGramContext(dim, window, ngram, heads)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, c = x.shape
        (wh, ww), nh, nw = self.window, h // self.window[0], w // self.window[1]
        context = self.ngram_context(x)  # (B, nh, nw, C)
        windows = x.view(b, nh, wh, nw, ww, c) + context[:, :, None, :, None, :]
        return windows.permute(0, 1, 3, 2, 4, 5).reshape(-1, wh * ww, c)


class NGramSCC(SCC):
    """HiT-SNG's SCC: head dim ceil(C / (2 heads)), N-Gram context injected at partition time."""

    def __init__(self, dim: int, window: tuple[int, int], heads: int, base: int = 8, ngram: int = 2):
        super().__init__(dim, window, heads, base, attn_dim=2 * heads * math.ceil(dim / (2 * heads)))
        self.ngram_window_partition = NGramWindowPartition(self.attn_dim, self.window, ngram, heads)

    def partition(self, qv: Tensor) -> Tensor:
        return self.ngram_window_partition(qv)


class HierarchicalTransformerBlock(nn.Module):
    """HTB (post-norm; HiT paper sec. 3.1)::

        y = crop(SCC(pad(x)))                 # pad to a multiple of (pad_factor x) the window
        x = x + DropPath(LN1(y))
        x = x + DropPath(LN2(FFN(x)))
    """

    def __init__(self, dim: int, heads: int, window: int, base: int = 8, mlp_ratio: float = 2.0,
                 ffn: str = "mlp", ngram: bool = False, drop_path: float = 0.0):
        super().__init__()
        self.window = (window, window)
        self.pad_factor = 2 if ngram else 1
        self.norm1 = nn.LayerNorm(dim)
        self.correlation = (NGramSCC(dim, self.window, heads, base) if ngram
                            else SCC(dim, self.window, heads, base))
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = make_ffn(ffn, dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        (h, w), (b, _, c) = size, x.shape
        m = pad_to_multiple(tokens_to_map(x, size), self.window[0] * self.pad_factor)
        y = self.correlation(m)[:, :h, :w].reshape(b, h * w, c)
        x = x + self.drop_path(self.norm1(y))
        return x + self.drop_path(self.norm2(self.mlp(x, size)))


class HiT(LightweightSR):
    """HiT-SIR (``ffn="mlp"``), HiT-SRF (``ffn="conv"``) or HiT-SNG (``ngram=True``)."""

    def __init__(self, scale: int = 4, ffn: str = "mlp", ngram: bool = False, dim: int = 60,
                 depths: tuple[int, ...] = (6, 6, 6, 6), heads: int = 6, base: int = 8,
                 window_ratios: tuple[float, ...] = HIER_WINDOW_RATIOS, mlp_ratio: float = 2.0,
                 drop_path_rate: float = 0.0):
        windows = [int(base * r) for r in window_ratios]
        groups = [BlockStack([HierarchicalTransformerBlock(dim, heads, windows[j], base, mlp_ratio,
                                                           ffn, ngram, dp)
                              for j, dp in enumerate(rates)])
                  for rates in drop_path_rates(drop_path_rate, depths)]
        super().__init__(groups, dim, scale, pad_multiple=1)  # HiT pads per layer, not globally
        init_transformer_weights(self)


@register_model("hit_sir", paper="HiT-SR (Zhang et al., ECCV 2024): HiT-SIR", family="transformer",
                traits=Traits(window_multiple=64))  # per-layer padding to the largest hierarchical window
def hit_sir(scale: int = 4, drop_path_rate: float = 0.0) -> nn.Module:
    """HiT-SIR: SwinIR-light with SCC and hierarchical windows 4..64 (792K params at x4)."""
    return HiT(scale, ffn="mlp", drop_path_rate=drop_path_rate)


@register_model("hit_srf", paper="HiT-SR (Zhang et al., ECCV 2024): HiT-SRF", family="transformer", published={
    4: Published(  # NTIRE 2025 ESR, team54
        "https://github.com/Amazingren/NTIRE2025_ESR/raw/b69fb668c0362deb696eecbfdebfaa5c2fcdfcb4/"
        "model_zoo/team54_HITSR.pth", "dffb47c5a7e1e28755cde32d9fa4c19f14e965d6c63491da39419bf3699ec456", "MIT",
        {"Set5": (32.5691, 0.9000), "Set14": (28.8702, 0.7881), "BSD100": (27.7533, 0.7435)})},
    traits=Traits(window_multiple=64))  # per-layer padding to the largest hierarchical window
def hit_srf(scale: int = 4, drop_path_rate: float = 0.0) -> nn.Module:
    """HiT-SRF: SRFormer-light's ConvFFN with SCC and hierarchical windows (866K params at x4)."""
    return HiT(scale, ffn="conv", drop_path_rate=drop_path_rate)


@register_model("hit_sng", paper="HiT-SR (Zhang et al., ECCV 2024): HiT-SNG", family="transformer",
                traits=Traits(window_multiple=128))  # N-Gram layers pad to twice their window
def hit_sng(scale: int = 4, drop_path_rate: float = 0.0) -> nn.Module:
    """HiT-SNG: SwinIR-NG with SCC + N-Gram context and hierarchical windows (1032K at x4)."""
    return HiT(scale, ffn="mlp", ngram=True, drop_path_rate=drop_path_rate)
