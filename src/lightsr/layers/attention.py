"""Attention forms shared by the transformer models.

* :func:`window_attention` — softmax attention inside windows with an additive bias/mask (Swin).
* :class:`WindowAttention` — Swin/SwinIR's module (keys ``qkv``, ``proj``,
  ``relative_position_bias_table``), reused by MambaIRv2 (its qkv projection lives outside).
* :func:`channel_self_correlation` — the C-SC branch of HiT's SCC, which C2D-ISR calls CSC
  (C2D-ISR eq. 5): ``F = ((Q^T V / N) V^T)^T``, linear in the window size, no softmax.
* :func:`cached_table` — eval-mode cache of input-independent tables (biases, masks).
* :class:`PermutedSelfAttention` — SRFormer's PSA (+ :func:`permuted_window_mask`).
* :class:`SCC` — HiT's spatial-channel correlation (DFE, S-SC with :class:`DynamicPosBias`, C-SC).
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .window import (relative_position_index, tensor_cache, shifted_window_regions, window_partition,
                     window_reverse)


def _register_cpu_sdpa_flops() -> None:
    """FlopCounterMode (lightsr profile) has no formula for the CPU flash kernel that SDPA picks
    on CPU, so window attention would count 0 MACs there: register 2 * B * Lq * Lk * (d + dv)."""
    from math import prod

    from torch.utils import flop_counter

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or op in flop_counter.flop_registry or not hasattr(flop_counter, "register_flop_formula"):
        return

    @flop_counter.register_flop_formula(op)
    def _flops(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
        return 2 * prod(q_shape[:-2]) * q_shape[-2] * k_shape[-2] * (q_shape[-1] + v_shape[-1])


_register_cpu_sdpa_flops()


def window_attention(q: Tensor, k: Tensor, v: Tensor, scale: float,
                     bias: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
    """softmax(q k^T * scale + bias + mask) v for windowed tokens.

    q, k, v: (B * nW, heads, N, d); bias: (heads, N, N); mask: (nW, N, N) shifted-window mask.
    Returns (B * nW, heads, N, d).
    """
    if mask is None:
        add = None if bias is None else bias.unsqueeze(0).to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=add, scale=scale)
    # Fold windows into the head axis, (B, nW * heads, N, d), so that bias + mask is one 4-D
    # (1, nW * heads, N, N) tensor: a 5-D mask sends SDPA to its slow math path (about 3x on CPU).
    nw = mask.shape[0]
    bnw, heads, n, _ = q.shape
    add = mask.unsqueeze(1) if bias is None else bias.unsqueeze(0) + mask.unsqueeze(1)  # (nW, heads|1, N, Nk)
    add = add.expand(nw, heads, n, k.shape[-2]).reshape(1, nw * heads, n, -1).to(q.dtype)
    q, k, v = (t.reshape(bnw // nw, nw * heads, t.shape[-2], -1) for t in (q, k, v))  # k, v may be shorter (PSA)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=add, scale=scale)
    return out.reshape(bnw, heads, n, -1)


def channel_self_correlation(q: Tensor, v: Tensor) -> Tensor:
    """CSC (C2D-ISR eq. 5; HiT's C-SC): ``((Q^T V / N) V^T)^T`` per window.

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
        table = self.relative_position_bias_table

        def build() -> Tensor:
            idx = relative_position_index(*self.window).to(table.device)
            return table[idx.view(-1)].view(n, n, -1).permute(2, 0, 1).contiguous()

        return cached_table(self, ("bias", table.device, table.dtype), build, [table])

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        bnw, n, _ = x.shape
        qkv = self.qkv(x) if self.qkv is not None else x
        q, k, v = qkv.view(bnw, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = window_attention(q, k, v, self.scale, self.relative_bias(), mask)
        return self.proj(out.transpose(1, 2).reshape(bnw, n, -1))


# ---------------------------------------------------------------------------------------------
# Input-independent tables cached in evaluation (relative-position biases, masks)
# ---------------------------------------------------------------------------------------------
def cached_table(module: nn.Module, key: tuple, build: Callable[[], Tensor],
                 params: Iterable[Tensor] = ()) -> Tensor:
    """``build()``, cached on ``module`` under ``key`` when no gradient can be needed.

    The cache is used only in eval mode with autograd off (``torch.no_grad`` / ``inference_mode``);
    in training (or with grad enabled) the table is rebuilt every call, since it depends on
    parameters. The stored entry also records the storage and in-place version of ``params``, so
    ``load_state_dict``, optimiser steps or ``.to()`` invalidate it. ``key`` should name everything
    else the table depends on (size, device, dtype). At most 8 entries per module are kept.
    """
    if module.training or torch.is_grad_enabled():
        return build()
    stamp = (torch.is_inference_mode_enabled(), tuple((p.data_ptr(), p._version) for p in params))
    store = module.__dict__.setdefault("_table_cache", {})
    hit = store.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    if len(store) >= 8:
        store.pop(next(iter(store)))
    value = build()
    store[key] = (stamp, value)
    return value


# ---------------------------------------------------------------------------------------------
# SRFormer: permuted self-attention (PSA)
# ---------------------------------------------------------------------------------------------
@tensor_cache(maxsize=16)
def permuted_relative_position_index(wh: int, ww: int) -> Tensor:
    """(wh*ww, wh*ww/4) index into a ((wh-1)(ww-1), heads) table: query pixel (i, j) of a
    (wh, ww) window vs key (p, q) of the (wh/2, ww/2) permuted grid uses the Swin index of
    ((i//2, j//2), (p, q)) (SRFormer's ``aligned_relative_position_index``)."""
    ph, pw = wh // 2, ww // 2
    idx = relative_position_index(ph, pw).view(ph, 1, pw, 1, ph * pw)
    return idx.expand(ph, 2, pw, 2, ph * pw).reshape(wh * ww, ph * pw)


@tensor_cache(maxsize=16)
def permuted_window_mask(h: int, w: int, window: tuple[int, int], shift: tuple[int, int]) -> Tensor:
    """(nW, N, N/4) additive mask (0 / -100) of PSA with a cyclic shift: the query regions on the
    (h, w) grid with ``window``/``shift`` vs the key regions on the (h/2, w/2) permuted grid
    with half window and half shift (SRFormer's ``calculate_mask``)."""
    (wh, ww), (sh, sw) = window, shift
    q = shifted_window_regions(h, w, (wh, ww), (sh, sw))
    k = shifted_window_regions(h // 2, w // 2, (wh // 2, ww // 2), (sh // 2, sw // 2))
    mask = q[:, :, None] - k[:, None, :]
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


class PermutedSelfAttention(nn.Module):
    """SRFormer's PSA (Zhou et al. 2023, eq. 2): keys and values are compressed to C/2 channels and
    every 2x2 group of pixels is folded into one token, so N queries attend to N/4 keys of width C.

    Keys: ``q`` (C -> C), ``kv`` (C -> C/2), ``proj``, ``relative_position_bias_table``
    ((2 wh/2 - 1)(2 ww/2 - 1), heads). ``forward(x (B*nW, N, C), mask (nW, N, N/4))``.
    """

    def __init__(self, dim: int, window: int | tuple[int, int], heads: int, qkv_bias: bool = True):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.window = (window, window) if isinstance(window, int) else tuple(window)
        self.permuted_window = (self.window[0] // 2, self.window[1] // 2)
        self.scale = (dim // heads) ** -0.5
        ph, pw = self.permuted_window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ph - 1) * (2 * pw - 1), heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.kv = nn.Linear(dim, dim // 2, bias=qkv_bias)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def relative_bias(self) -> Tensor:
        table = self.relative_position_bias_table

        def build() -> Tensor:
            idx = permuted_relative_position_index(*self.window).to(table.device)
            return table[idx].permute(2, 0, 1).contiguous()  # (heads, N, N/4)

        return cached_table(self, ("bias", table.device, table.dtype), build, [table])

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b, n, c = x.shape
        (ph, pw), heads = self.permuted_window, self.heads
        # permute: the (2 x 2) pixels of each key token and their C/4 channels become its C channels
        kv = self.kv(x).view(b, ph, 2, pw, 2, 2, c // 4).permute(0, 1, 3, 5, 2, 4, 6)
        k, v = kv.reshape(b, n // 4, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
        q = self.q(x).view(b, n, heads, c // heads).transpose(1, 2)
        out = window_attention(q, k, v, self.scale, self.relative_bias(), mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


# ---------------------------------------------------------------------------------------------
# HiT-SR: spatial-channel correlation (SCC) with dynamic position bias
# ---------------------------------------------------------------------------------------------
class DynamicPosBias(nn.Module):
    """HiT's dynamic relative-position bias (from CrossFormer, ``residual=False``): an MLP maps
    each integer offset (dh, dw) to one bias per head. Keys ``pos_proj``, ``pos1..3``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        pos_dim = dim // 4
        self.pos_proj = nn.Linear(2, pos_dim)
        self.pos1 = nn.Sequential(nn.LayerNorm(pos_dim), nn.ReLU(), nn.Linear(pos_dim, pos_dim))
        self.pos2 = nn.Sequential(nn.LayerNorm(pos_dim), nn.ReLU(), nn.Linear(pos_dim, pos_dim))
        self.pos3 = nn.Sequential(nn.LayerNorm(pos_dim), nn.ReLU(), nn.Linear(pos_dim, heads))

    def forward(self, offsets: Tensor) -> Tensor:
        return self.pos3(self.pos2(self.pos1(self.pos_proj(offsets))))


@tensor_cache(maxsize=32)
def aggregated_relative_index(window: tuple[int, int], base: tuple[int, int]) -> Tensor:
    """(wh*ww, bh*bw) index into the r x r box-averaged offset table (see :meth:`SCC.position_bias`).

    Query (qi, qj) vs aggregated key (bi, bj), which covers pixels (bi*rh + a, bj*rw + c), a < rh,
    c < rw: the offsets qi - ki + wh - 1 span [s, s + rh) with s = qi - bi*rh + wh - rh, so the
    mean over the key's pixels is entry s of the table averaged over rh x rw boxes.
    """
    (wh, ww), (bh, bw) = window, base
    rh, rw = wh // bh, ww // bw
    qi, qj = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
    bi, bj = torch.meshgrid(torch.arange(bh), torch.arange(bw), indexing="ij")
    si = qi.reshape(-1, 1) - rh * bi.reshape(1, -1) + wh - rh
    sj = qj.reshape(-1, 1) - rw * bj.reshape(1, -1) + ww - rw
    return si * (2 * ww - rw) + sj


class DFE(nn.Module):
    """HiT's dual feature extraction (the QV projection of SCC): ``conv(x) * linear(x)`` on the map,
    conv = Conv1x1 (C -> C/5) - LReLU - Conv3x3 - LReLU - Conv1x1 (C/5 -> out), linear = Conv1x1."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(dim, dim // 5, 1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(dim // 5, dim // 5, 3, 1, 1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(dim // 5, out_dim, 1))
        self.linear = nn.Conv2d(dim, out_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) * self.linear(x)


def spatial_self_correlation(q: Tensor, v: Tensor, bias: Tensor, scale: float) -> Tensor:
    """HiT's S-SC: ``Y = (Q V'^T / scale + P) V'`` (no softmax). q: (B', heads, N, d);
    v: aggregated values (B', heads, M, d); bias P: (heads, N, M). Returns (B', heads, N, d).

    With no softmax the product is linear, so it is evaluated as ``Q (V'^T V' / scale) + P V'``:
    the (N, M) correlation map is never formed, and P V' is one GEMM per head over all windows
    (about half the multiply-adds of the literal form; equal up to float rounding).
    """
    bnw, heads, n, d = q.shape
    m = v.shape[-2]
    y = q @ (v.transpose(-2, -1) @ v / scale)
    pv = torch.bmm(bias, v.permute(1, 2, 0, 3).reshape(heads, m, bnw * d))  # (heads, N, B' d)
    return y + pv.view(heads, n, bnw, d).permute(2, 0, 1, 3)


class SCC(nn.Module):
    """HiT's spatial-channel correlation (Zhang et al., ECCV 2024, sec. 3.2) in a ws x ws window.

    QV = DFE(x); per window Q, V = the two channel halves, each ``heads`` x d with
    d = attn_dim / (2 heads); S-SC (:func:`spatial_self_correlation`) attends from every pixel to
    b x b aggregated values V' = spatial_linear(V over r x r pixels), b = min(ws, base),
    r = ws / b, with the dynamic position bias averaged over each r x r key; C-SC
    (:func:`channel_self_correlation`) correlates the channels; out = proj([Y_s, Y_c]).

    Keys: ``qv`` (DFE), ``proj``, ``spatial_linear`` (Linear(r^2 -> 1)), ``pos`` (DynamicPosBias).
    ``forward(x (B, C, H, W))`` with H, W multiples of the window -> (B, H, W, C).
    """

    def __init__(self, dim: int, window: int | tuple[int, int], heads: int,
                 base: int | tuple[int, int] = 8, attn_dim: int | None = None):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.window = (window, window) if isinstance(window, int) else tuple(window)
        base = (base, base) if isinstance(base, int) else tuple(base)
        self.base = (min(self.window[0], base[0]), min(self.window[1], base[1]))
        self.attn_dim = attn_dim or dim
        self.scale = self.attn_dim // (2 * heads)  # divisor of S-SC: the head dim itself, not its root
        self.qv = DFE(dim, self.attn_dim)
        self.proj = nn.Linear(self.attn_dim, dim)
        ratio = (self.window[0] // self.base[0]) * (self.window[1] // self.base[1])
        self.spatial_linear = nn.Linear(ratio, 1)
        self.pos = DynamicPosBias(dim // 4, heads)

    def position_bias(self) -> Tensor:
        """P (heads, N, b^2): the dynamic bias of every (query pixel, key pixel) offset, averaged
        over the r x r pixels of each aggregated key. Computed as a box filter on the
        (2wh-1, 2ww-1) offset table and an (N, b^2) gather instead of the official (N, N) gather
        then mean (identical values, ~r^2 fewer elements); cached in eval."""
        (wh, ww), (bh, bw) = self.window, self.base
        params = list(self.pos.parameters())

        def build() -> Tensor:
            dev = params[0].device
            dh, dw = torch.meshgrid(torch.arange(1 - wh, wh, device=dev),
                                    torch.arange(1 - ww, ww, device=dev), indexing="ij")
            offsets = torch.stack([dh, dw], -1).reshape(-1, 2).to(params[0].dtype)
            table = self.pos(offsets).t().reshape(1, self.heads, 2 * wh - 1, 2 * ww - 1)
            rh, rw = wh // bh, ww // bw
            if rh * rw > 1:
                table = F.avg_pool2d(table, (rh, rw), stride=1)
            idx = aggregated_relative_index(self.window, self.base).to(dev)
            return table.reshape(self.heads, -1)[:, idx]  # (heads, N, b^2)

        return cached_table(self, ("pos", params[0].device, params[0].dtype), build, params)

    def aggregate(self, v: Tensor) -> Tensor:
        """V' = spatial_linear over each r x r patch: (B', heads, N, d) -> (B', heads, b^2, d)."""
        bnw, heads, _, d = v.shape
        (wh, ww), (bh, bw) = self.window, self.base
        v = v.view(bnw, heads, bh, wh // bh, bw, ww // bw, d).permute(0, 1, 2, 4, 6, 3, 5)
        return self.spatial_linear(v.reshape(bnw, heads, bh * bw, d, -1)).squeeze(-1)

    def partition(self, qv: Tensor) -> Tensor:
        """(B, H, W, C') -> (B*nW, N, C'); HiT-SNG overrides it to inject its N-gram context."""
        return window_partition(qv, self.window)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        windows = self.partition(self.qv(x).permute(0, 2, 3, 1))  # (B*nW, N, C')
        bnw, n, c = windows.shape
        q, v = windows.view(bnw, n, 2, self.heads, -1).permute(2, 0, 3, 1, 4)  # (B*nW, heads, N, d)
        y_s = spatial_self_correlation(q, self.aggregate(v), self.position_bias(), self.scale)
        y_s = y_s.transpose(1, 2).reshape(bnw, n, c // 2)
        y_c = channel_self_correlation(windows[..., :c // 2], windows[..., c // 2:])
        y = window_reverse(torch.cat([y_s, y_c], -1), self.window, h, w)
        return self.proj(y)
