"""Windows: padding to a multiple, partition/reverse, relative positions, shifted-window masks.

Shapes: feature maps are (B, C, H, W) for padding and (B, H, W, C) for partitioning; a window
``(wh, ww)`` holds ``N = wh * ww`` tokens.
"""
from __future__ import annotations

import functools
from functools import lru_cache

import torch
from torch import Tensor


def _pair(w: int | tuple[int, int]) -> tuple[int, int]:
    return (w, w) if isinstance(w, int) else (int(w[0]), int(w[1]))


def mirror_pad(x: Tensor, pad_h: int, pad_w: int, mode: str = "reflect") -> Tensor:
    """Pad (B, C, H, W) at the bottom/right by ``pad_h``/``pad_w`` pixels, for any pad size.

    ``reflect`` mirrors without repeating the edge (``F.pad`` reflect, as SwinIR/HiT), applied
    repeatedly when the pad exceeds the image (F.pad alone refuses that). ``symmetric`` mirrors with
    the edge repeated (MambaIRv2's ``cat([x, flip(x)])``).
    """
    if mode not in ("reflect", "symmetric"):
        raise ValueError(f"unknown pad mode {mode!r}")
    for dim, pad in ((2, pad_h), (3, pad_w)):
        while pad > 0:
            size = x.shape[dim]
            if mode == "symmetric":
                step = min(pad, size)
                x = torch.cat([x, x.flip(dim).narrow(dim, 0, step)], dim)
            elif size == 1:
                step = pad
                x = torch.cat([x] + [x] * step, dim)
            else:  # F.pad's reflect, written as a flipped slice: its gradient is a slice-add, which
                # the compiler fuses (reflection_pad2d_backward was ~15 % of a compiled C2D training step)
                step = min(pad, size - 1)
                x = torch.cat([x, x.narrow(dim, size - 1 - step, step).flip(dim)], dim)
            pad -= step
    return x


def pad_to_multiple(x: Tensor, multiple: int | tuple[int, int], mode: str = "reflect") -> Tensor:
    """Pad (B, C, H, W) bottom/right so H and W become multiples of ``multiple``."""
    mh, mw = _pair(multiple)
    h, w = x.shape[-2:]
    return mirror_pad(x, (-h) % mh, (-w) % mw, mode)


def window_partition(x: Tensor, window: int | tuple[int, int]) -> Tensor:
    """(B, H, W, C) -> (B * nW, wh * ww, C); H, W must be multiples of the window."""
    wh, ww = _pair(window)
    b, h, w, c = x.shape
    x = x.view(b, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, c)


def window_reverse(windows: Tensor, window: int | tuple[int, int], h: int, w: int) -> Tensor:
    """(B * nW, wh * ww, C) (or (B * nW, wh, ww, C)) -> (B, H, W, C)."""
    wh, ww = _pair(window)
    c = windows.shape[-1]
    b = windows.numel() // (h * w * c)
    x = windows.reshape(b, h // wh, w // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


def tensor_cache(maxsize: int):
    """``lru_cache`` for functions that build index / mask tensors shared by every model instance:
    they are always built outside inference mode, so a table first made under ``torch.inference_mode``
    (evaluation, the upscaler) can still be used where autograd or tracing runs (training, ONNX export)."""
    def deco(fn):
        cached = lru_cache(maxsize=maxsize)(fn)

        @functools.wraps(fn)
        def wrapper(*args):
            with torch.inference_mode(False):
                return cached(*args)

        wrapper.cache_clear = cached.cache_clear
        return wrapper
    return deco


@tensor_cache(maxsize=64)
def relative_position_index(wh: int, ww: int) -> Tensor:
    """Swin's (N, N) index into a ((2wh-1)(2ww-1), heads) relative-position bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # (N, N, 2)
    return (rel[..., 0] + wh - 1) * (2 * ww - 1) + (rel[..., 1] + ww - 1)


@tensor_cache(maxsize=64)
def shifted_window_regions(h: int, w: int, window: tuple[int, int], shift: tuple[int, int]) -> Tensor:
    """(nW, N) region label of every token after a cyclic shift (Swin's ``img_mask`` partitioned);
    two tokens may attend to each other iff their labels are equal. Used by SRFormer's PSA mask,
    whose queries and keys live on different grids."""
    wh, ww = window
    sh, sw = shift
    img = torch.zeros(1, h, w, 1)
    cnt = 0
    rows = [slice(a, b) for a, b in ((0, h - wh), (h - wh, h - sh), (h - sh, h)) if b > a]
    cols = [slice(a, b) for a, b in ((0, w - ww), (w - ww, w - sw), (w - sw, w)) if b > a]
    for hs in rows:  # empty regions skipped (one window across): ONNX export cannot trace them
        for ws in cols:
            img[:, hs, ws, :] = cnt
            cnt += 1
    return window_partition(img, window).squeeze(-1)


@tensor_cache(maxsize=64)
def shifted_window_mask(h: int, w: int, window: tuple[int, int], shift: tuple[int, int]) -> Tensor:
    """(nW, N, N) additive mask (0 / -100) for a cyclic shift, as Swin/SwinIR build it."""
    win = shifted_window_regions(h, w, window, shift)  # (nW, N)
    mask = win[:, None, :] - win[:, :, None]
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
