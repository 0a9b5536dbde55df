"""Attention forms shared by the transformer models.

* :func:`window_attention` — softmax attention inside windows with an additive bias/mask (Swin).
* :class:`WindowAttention` — Swin/SwinIR's module (keys ``qkv``, ``proj``,
  ``relative_position_bias_table``), reused by MambaIRv2 (its qkv projection lives outside).
* :func:`channel_self_correlation` — the C-SC branch of HiT's SCC, which C2D-ISR calls CSC
  (seed 000 eq. 5): ``F = ((Q^T V / N) V^T)^T``, linear in the window size, no softmax.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .window import relative_position_index


def window_attention(q: Tensor, k: Tensor, v: Tensor, scale: float,
                     bias: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
    """softmax(q k^T * scale + bias + mask) v for windowed tokens.

    q, k, v: (B * nW, heads, N, d); bias: (heads, N, N); mask: (nW, N, N) shifted-window mask.
    Returns (B * nW, heads, N, d).
    """
    add = None
    if bias is not None:
        add = bias.unsqueeze(0)
    if mask is not None:
        nw = mask.shape[0]
        bnw, heads, n, d = q.shape
        q, k, v = (t.view(bnw // nw, nw, heads, n, -1) for t in (q, k, v))
        m = mask.unsqueeze(1).unsqueeze(0)  # (1, nW, 1, N, N)
        add = m if add is None else add.unsqueeze(0) + m
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=add.to(q.dtype), scale=scale)
        return out.view(bnw, heads, n, -1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=None if add is None else add.to(q.dtype),
                                          scale=scale)


def channel_self_correlation(q: Tensor, v: Tensor) -> Tensor:
    """CSC (seed 000 eq. 5; HiT's C-SC): ``((Q^T V / N) V^T)^T`` per window.

    q, v: (..., N, c) -> (..., N, c). N is the number of tokens in the (padded) window.
    """
    n = q.shape[-2]
    a = q.transpose(-2, -1) @ v / n  # (..., c, c)
    return v @ a.transpose(-2, -1)


class WindowAttention(nn.Module):
    """Window multi-head self-attention with a learned relative-position bias (Swin, SwinIR).

    ``qkv=False`` leaves the q/k/v projection to the caller (MambaIRv2 keeps it outside as
    ``wqkv``); ``forward`` then takes the projected (B * nW, N, 3C) tensor.
    """

    def __init__(self, dim: int, window: int | tuple[int, int], heads: int, qkv_bias: bool = True,
                 qkv: bool = True):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.window = (window, window) if isinstance(window, int) else tuple(window)
        self.scale = (dim // heads) ** -0.5
        wh, ww = self.window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias) if qkv else None
        self.proj = nn.Linear(dim, dim)

    def relative_bias(self) -> Tensor:
        n = self.window[0] * self.window[1]
        idx = relative_position_index(*self.window).to(self.relative_position_bias_table.device)
        return self.relative_position_bias_table[idx.view(-1)].view(n, n, -1).permute(2, 0, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        bnw, n, _ = x.shape
        qkv = self.qkv(x) if self.qkv is not None else x
        q, k, v = qkv.view(bnw, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = window_attention(q, k, v, self.scale, self.relative_bias(), mask)
        return self.proj(out.transpose(1, 2).reshape(bnw, n, -1))
