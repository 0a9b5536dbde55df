"""MATLAB-compatible bicubic ``imresize`` for numpy arrays and torch tensors.

This is MATLAB's ``imresize(A, scale)`` / ``imresize(A, [rows cols])`` with the default ``'bicubic'``
method and ``'Antialiasing', true``, written once:

* kernel: Keys' cubic with a = -0.5 (MATLAB ``cubic``), support 4;
* downscaling (scale < 1) widens the kernel by 1/scale and scales it by ``scale`` (antialiasing);
* output pixel ``x`` (1-based) samples input coordinate ``u = x/scale + 0.5 (1 - 1/scale)``;
  taps ``floor(u - width/2) + (0 .. ceil(width)+1)``, weights normalised to sum 1;
* out-of-range taps index the image mirrored *symmetrically* (``[1..n, n..1]``, repeated);
* an output size alone sets ``scale = out/in`` per axis; a scale alone sets ``out = ceil(in * scale)``;
* the axis with the smaller scale is resized first (height first on ties);
* integer input (uint8, uint16) is computed in double and rounded (half away from zero) and clipped
  after *each* axis, as MATLAB's ``imresizemex`` does; the result has the input's dtype.

Each axis becomes a small ``(out, taps)`` table of indices and float64 weights
(:func:`contributions`), applied as ``taps`` gathers + multiply-adds along that axis, so the cost is
``O(out x taps)`` per line and the torch path is differentiable and runs on any device. numpy input
goes through the same torch code (in float64) and comes back as numpy.
"""
from __future__ import annotations

import math
from functools import lru_cache
import numpy as np
import torch

from .errors import LightSRError

__all__ = ["imresize", "imresize_rows", "cubic", "contributions", "weight_matrix"]


def cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (Keys, a = -0.5)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


@lru_cache(maxsize=256)
def contributions(in_len: int, out_len: int, scale: float, antialias: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``contributions``: ``(indices (out, taps) int64 0-based, weights (out, taps) float64)``."""
    width = 4.0
    if scale < 1 and antialias:
        kernel = lambda x: scale * cubic(scale * x)  # noqa: E731
        width = width / scale
    else:
        kernel = cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based
    w = kernel(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    # symmetric padding of out-of-range indices: aux = [1..n, n..1]
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(w != 0, axis=0)  # MATLAB drops all-zero tap columns
    idx, w = np.ascontiguousarray(idx[:, keep]), np.ascontiguousarray(w[:, keep])
    idx.setflags(write=False)
    w.setflags(write=False)
    return idx, w


@lru_cache(maxsize=256)
def _tables(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[torch.Tensor, torch.Tensor]:
    idx, w = contributions(in_len, out_len, scale, antialias)
    return torch.from_numpy(idx.copy()), torch.from_numpy(w.copy())


def weight_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """The dense ``(out, in)`` resampling matrix of one axis (for inspection and tests)."""
    idx, w = contributions(in_len, out_len, float(scale), antialias)
    m = np.zeros((out_len, in_len))
    np.add.at(m, (np.repeat(np.arange(out_len), idx.shape[1]), idx.ravel()), w.ravel())
    return m


def _two(v) -> list:
    return [v, v] if np.ndim(v) == 0 else list(np.asarray(v).ravel())


def _resolve(in_hw: tuple[int, int], scale, output_size) -> tuple[tuple[float, float], tuple[int, int]]:
    if scale is None and output_size is None:
        raise LightSRError("imresize needs a scale or an output size")
    if output_size is not None:
        vals = _two(output_size)
        if len(vals) != 2 or not all(float(v).is_integer() and v >= 1 for v in vals):
            raise LightSRError(f"imresize output size must be two positive integers, got {output_size}")
        out = (int(vals[0]), int(vals[1]))
    if scale is not None:
        vals = _two(scale)
        if len(vals) != 2 or not all(math.isfinite(float(v)) and float(v) > 0 for v in vals):
            raise LightSRError(f"imresize scale must be positive, got {scale}")
        sc = (float(vals[0]), float(vals[1]))
        if output_size is None:
            out = (int(math.ceil(in_hw[0] * sc[0])), int(math.ceil(in_hw[1] * sc[1])))
    else:
        sc = (out[0] / in_hw[0], out[1] / in_hw[1])
    return sc, out


def _resize_axis(x: torch.Tensor, dim: int, idx: torch.Tensor, w: torch.Tensor,
                 limits: tuple[float, float] | None) -> torch.Tensor:
    """Weighted gather along ``dim``: ``out[i] = sum_t w[i, t] x[idx[i, t]]`` (one pass per tap)."""
    x = x.movedim(dim, 0).contiguous()  # gathering whole rows of the leading axis is fast
    index = idx.to(x.device)
    weight = w.to(device=x.device, dtype=x.dtype).view(*w.shape, *([1] * (x.ndim - 1)))
    out = x.index_select(0, index[:, 0]) * weight[:, 0]
    for t in range(1, idx.shape[1]):
        out = out + x.index_select(0, index[:, t]) * weight[:, t]
    if limits is not None:  # integer data: MATLAB clips and rounds half away from zero after each axis
        out = out.clamp(*limits)
        out = torch.sign(out) * torch.floor(out.abs() + 0.5)
    return out.movedim(0, dim)


def _resize_tensor(x: torch.Tensor, scale, output_size, antialias: bool,
                   limits: tuple[float, float] | None = None) -> torch.Tensor:
    """``x`` float (..., H, W) -> resized (..., H', W')."""
    h, w = x.shape[-2:]
    (sh, sw), (oh, ow) = _resolve((h, w), scale, output_size)
    order = (-2, -1) if sh <= sw else (-1, -2)  # smaller scale first, as MATLAB
    for dim in order:
        n_in, n_out, s = (h, oh, sh) if dim == -2 else (w, ow, sw)
        idx, wt = _tables(n_in, n_out, float(s), antialias)
        x = _resize_axis(x, x.ndim + dim, idx, wt, limits)
    return x


def imresize(img, scale: float | tuple[float, float] | None = None,
             output_size: int | tuple[int, int] | None = None, *, antialias: bool = True):
    """MATLAB ``imresize(img, scale, 'bicubic')`` (or to ``output_size`` = (rows, cols)).

    * numpy ``(H, W)`` or ``(H, W, C)``: float in -> same float dtype out (computed in float64);
      uint8 / uint16 in -> same dtype out, rounded and clipped per axis (MATLAB semantics).
    * torch ``(C, H, W)`` or ``(B, C, H, W)`` (also ``(H, W)``): computed in the tensor's float dtype
      on its device, differentiable; integer tensors behave like numpy integers.

    ``scale`` may be a float or a (rows, cols) pair, any positive value (x1.5, 1/3.7 ...). With both
    ``scale`` and ``output_size`` the kernel uses ``scale`` and the size is ``output_size``.
    """
    if isinstance(img, torch.Tensor):
        if img.ndim not in (2, 3, 4) or img.numel() == 0:
            raise LightSRError(f"imresize expects a (C, H, W) or (B, C, H, W) tensor, got shape {tuple(img.shape)}")
        if img.is_floating_point():
            return _resize_tensor(img, scale, output_size, antialias)
        info = (0, 1) if img.dtype == torch.bool else (torch.iinfo(img.dtype).min, torch.iinfo(img.dtype).max)
        out = _resize_tensor(img.double(), scale, output_size, antialias, (float(info[0]), float(info[1])))
        return out.to(img.dtype)

    arr = np.asarray(img)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise LightSRError(f"imresize expects an (H, W) or (H, W, C) array, got shape {arr.shape}")
    integer = np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_
    limits = None
    if integer:
        info = np.iinfo(arr.dtype) if arr.dtype != np.bool_ else None
        limits = (float(info.min), float(info.max)) if info is not None else (0.0, 1.0)
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))
    t = t.unsqueeze(0) if arr.ndim == 2 else t.permute(2, 0, 1)  # (C, H, W)
    out = _resize_tensor(t, scale, output_size, antialias, limits)
    out = out[0] if arr.ndim == 2 else out.permute(1, 2, 0)
    res = np.ascontiguousarray(out.numpy())
    if integer or np.issubdtype(arr.dtype, np.floating):  # MATLAB: single in -> single out
        return res.astype(arr.dtype)
    return res


def imresize_rows(bands, in_hw: tuple[int, int], scale: float, output_size: tuple[int, int], *,
                  antialias: bool = True, chunk: int = 32):
    """:func:`imresize` of a float ``(B, C, H, W)`` image that arrives as row bands, yielding output
    row bands as soon as their input rows are in, with the whole-image call's exact arithmetic.

    ``bands``: an iterable of ``(y0, y1, rows)`` covering input rows ``0 .. H`` in order, ``rows`` of
    shape ``(B, C, y1 - y0, W)``. Yields ``(o0, o1, out)``, ``out`` of shape ``(B, C, o1 - o0, W')``,
    at most ``chunk`` output rows each. Each output row takes its taps (:func:`contributions`) from
    the bands still held, and a band is let go once no later output row reads it, so memory holds
    about one input band plus a chunk, never the whole image; the taps, weights and their order are
    the whole-image ones, so the result is the same to the last bit.
    """
    (sh, sw), (oh, ow) = _resolve(tuple(in_hw), scale, output_size)
    idx, wt = _tables(in_hw[0], oh, float(sh), antialias)
    widx, wwt = _tables(in_hw[1], ow, float(sw), antialias)
    height_first = sh <= sw  # MATLAB's order; rows are independent along the width either way
    lo_row, hi_row = idx.min(dim=1).values, idx.max(dim=1).values + 1
    # the first input row any remaining output row reads: bands ending above it are let go
    keep_from = torch.flip(torch.cummin(torch.flip(lo_row, (0,)), 0).values, (0,))
    held: list[tuple[int, int, torch.Tensor]] = []
    done = 0
    for y0, y1, rows in bands:
        if not height_first:
            rows = _resize_axis(rows, rows.ndim - 1, widx, wwt, None)
        held.append((y0, y1, rows))
        del rows
        while done < oh and int(hi_row[done]) <= y1:
            end = done + 1
            while end < min(done + chunk, oh) and int(hi_row[end]) <= y1:
                end += 1
            r0, r1 = int(lo_row[done:end].min()), int(hi_row[done:end].max())
            parts = [t[..., max(r0, a) - a:min(r1, b) - a, :] for a, b, t in held if a < r1 and b > r0]
            src = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-2)
            out = _resize_axis(src, src.ndim - 2, idx[done:end] - r0, wt[done:end], None)
            del src, parts
            if height_first:
                out = _resize_axis(out, out.ndim - 1, widx, wwt, None)
            yield done, end, out
            done = end
        if done < oh:  # keep only rows a later output row reads (a copy of them: the band itself goes)
            k = int(keep_from[done])
            held = [(a, b, t) if a >= k else (k, b, t[..., k - a:, :].clone()) for a, b, t in held if b > k]
    if done < oh:
        raise LightSRError(f"imresize_rows: the bands ended before input row {int(hi_row[done])} "
                           f"of {in_hw[0]}")
