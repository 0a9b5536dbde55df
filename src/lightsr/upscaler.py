"""The tiling engine: :class:`Upscaler`, a model plus how to run it on images of any size.

* An :class:`Upscaler` (made by :func:`lightsr.load`, :mod:`lightsr.api`) is called on a numpy array
  (H, W, C; uint8, uint16 or float in [0, 1]), a PIL image or a float tensor in [0, 1] ((C, H, W) or
  (B, C, H, W)); you get the same kind back. Gray images go through the model as RGB and come back
  gray; RGBA images have their alpha resized separately with MATLAB bicubic (:func:`lightsr.resize.imresize`).
* Any size in bounded memory: with ``tile=N`` the image is cut into N x N tiles, each run with
  ``tile_pad`` pixels of real context on every side and blended with its neighbours over a linear ramp
  ``2 * (tile_pad // 2)`` wide centred on the shared edge (the two ramps sum to 1). Output rows are
  finished band by band, so besides the output itself only one band of tiles is held in float.
  Tiling is chosen automatically on CUDA out-of-memory (tile 512, then halving) or from a
  ``max_memory`` budget (:class:`lightsr.memory.TilePlanner`).
* Any output scale: the model's native scale, then MATLAB bicubic for a fractional ``outscale``; a
  continuous model (``model.continuous``) is asked for the scale directly.

Folders of files go through :mod:`lightsr.batch`, memory measurement lives in :mod:`lightsr.memory`.
"""
from __future__ import annotations

import math
import sys
import weakref
from typing import Iterator

import numpy as np
import torch
from torch import nn

from .errors import LightSRError
from .layers.coords import norm_scale
from .memory import TRIM_BYTES, TilePlanner, release_freed_memory
from .models.loading import Descriptor, describe_module

MIN_SIDE = 16  # smaller inputs are edge-padded on every side to this size (and the centre cropped back):
# a model's zero padding then sits away from the image, so a 1x1 or flat image comes back flat


# ---------------------------------------------------------------------------------------------
# the upscaler
# ---------------------------------------------------------------------------------------------
class Upscaler:
    """A model plus how to run it (device, precision, tiling, ensemble). Call it on an image."""

    def __init__(self, model: Descriptor | nn.Module, device: torch.device | str = "cpu", precision: str = "auto",
                 tile: int | None = None, tile_pad: int = 16, self_ensemble: bool = False,
                 max_memory: float | None = None, progress: bool = False, outscale: float | None = None,
                 compile: bool = False, backend: str | None = "auto", job: float | None = None):
        from .backends import make_runner

        # what was loaded (lightsr.models.resolve), or a module following the registry's conventions
        self.descriptor = model if isinstance(model, Descriptor) else describe_module(model)
        self.device = torch.device(device)
        self.runner = make_runner(self.descriptor, self.device, precision, compile=compile, backend=backend, job=job)
        self.backend = self.runner.backend  # the one that runs: "torch" or "openvino" (lightsr.backends)
        self.model = self.runner.model
        self.precision = self.runner.precision  # the one that runs: fp32, bf16 or fp16
        self.continuous = self.descriptor.continuous
        self.scale = self.descriptor.scale
        if tile is not None and tile < 8:
            raise LightSRError(f"tile size must be at least 8 pixels (got {tile})")
        if tile_pad < 0:
            raise LightSRError(f"tile padding must be >= 0 (got {tile_pad})")
        self.tile, self.tile_pad = tile, tile_pad
        self.self_ensemble = self_ensemble
        self.max_memory = max_memory  # bytes
        self.progress = progress
        # progress callback on_tile(done, total), for a caller that shows progress (the CLI, on a terminal):
        # (0, total) when an image's model work starts, then (k, total) after tile k (total 1: whole image)
        self.on_tile = None
        self.kind = self.descriptor.kind  # which weights: "clean" or "photo" (lightsr.photo)
        self.outscale = norm_scale(outscale)
        self._check_asymmetric(self.outscale)  # before any image
        # --max-memory: the tile size from the measured cost of this upscaler's tile calls (a weak
        # reference: no cycle keeps a dropped upscaler's model alive until the garbage collector runs)
        me = weakref.ref(self)
        self.planner = TilePlanner(lambda x, s: me()._forward(x, s, whole=False), self.model, self.device)

    # -- public ----------------------------------------------------------------------------------
    def __call__(self, image, outscale: float | None = None):
        """Upscale ``image`` (numpy, PIL or tensor); returns the same kind."""
        outscale = outscale if outscale is not None else self.outscale
        if isinstance(image, torch.Tensor):
            return self.upscale_tensor(image, outscale)
        from PIL import Image

        if isinstance(image, Image.Image):
            return self._upscale_pil(image, outscale)
        if isinstance(image, np.ndarray):
            return self.upscale_array(image, outscale)
        raise LightSRError(f"cannot upscale a {type(image).__name__}; pass a numpy array, PIL image or tensor")

    @property
    def native_scale(self) -> float:
        return float(self.scale) if self.scale is not None else 1.0

    def output_size(self, h: int, w: int, outscale: float | None = None) -> tuple[int, int]:
        sh, sw = _axes(outscale if outscale is not None else self.native_scale)
        return int(round(h * sh)), int(round(w * sw))

    def upscale_tensor(self, x: torch.Tensor, outscale: float | None = None) -> torch.Tensor:
        """Float tensor in [0, 1], (C, H, W) or (B, C, H, W), C = 1 or 3 -> upscaled, clamped to [0, 1]."""
        if x.ndim not in (3, 4) or x.shape[-3] not in (1, 3) or not x.is_floating_point():
            raise LightSRError(f"expected a float (C, H, W) or (B, C, H, W) tensor with C = 1 or 3, "
                               f"got {x.dtype} {tuple(x.shape)}")
        _check_values(x)
        outscale = norm_scale(outscale)
        squeeze = x.ndim == 3
        xb = x[None] if squeeze else x
        outs = []
        for img in xb:
            gray = img.shape[0] == 1
            img = img.expand(3, -1, -1) if gray else img
            y = self._rgb(img[None].float().cpu(), outscale)
            outs.append(y.mean(1, keepdim=True) if gray else y)
        out = torch.cat(outs).to(x.device, x.dtype)
        return out[0] if squeeze else out

    def upscale_array(self, arr: np.ndarray, outscale: float | None = None) -> np.ndarray:
        """(H, W[, C]) uint8 / uint16 / float [0, 1] numpy image -> upscaled, same dtype and channels."""
        arr = np.asarray(arr)
        outscale = norm_scale(outscale)
        squeeze = arr.ndim == 2
        if squeeze:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise LightSRError(f"expected an (H, W, C) image with C in 1..4, got shape {arr.shape}")
        if arr.dtype == np.uint8 or arr.dtype == np.uint16:
            peak = float(np.iinfo(arr.dtype).max)
        elif np.issubdtype(arr.dtype, np.floating):
            peak = 1.0
        else:
            raise LightSRError(f"unsupported image dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
        if peak == 1.0:
            _check_values(torch.from_numpy(np.ascontiguousarray(arr)))
        c = arr.shape[2]
        color = arr[..., :1].repeat(3, axis=2) if c <= 2 else arr[..., :3]
        alpha = arr[..., c - 1] if c in (2, 4) else None
        # integer pixels stay integer here; each tile is made float as it runs (``_forward``)
        x = torch.from_numpy(np.ascontiguousarray(color.transpose(2, 0, 1), dtype=np.float32
                                                  if peak == 1.0 else np.int32 if peak > 255 else np.uint8))[None]
        oh, ow = self._out_hw(x.shape[-2], x.shape[-1], outscale)
        out = np.empty((oh, ow, 3), dtype=arr.dtype)
        for y0, y1, band in self._bands(x, outscale):
            # cast into the output rows in place (no full-size temporary)
            torch.from_numpy(out[y0:y1]).permute(2, 0, 1).copy_(_from_float(band[0], arr.dtype, peak))
            del band
        del x
        release_freed_memory(out.nbytes)  # before the encoder copies the result
        if c <= 2:  # gray in, gray out: the mean of the three output channels
            m = out.astype(np.float64).mean(axis=2, keepdims=True)
            out = (m if peak == 1.0 else m.round()).astype(arr.dtype)
        if alpha is not None:
            out = np.concatenate([out, _resize_alpha(alpha, (oh, ow))[..., None]], axis=2)
        return out[..., 0] if squeeze else out

    # -- internals ------------------------------------------------------------------------------
    def _upscale_pil(self, im, outscale):
        from PIL import Image

        from .imageio import to_array, to_uint8

        out = self.upscale_array(to_array(im), outscale)
        if out.shape[2] == 1:  # L, or I;16 for 16-bit gray
            return Image.fromarray(out[..., 0])
        return Image.fromarray(to_uint8(out))  # Pillow has no 16-bit colour mode

    def _out_hw(self, h: int, w: int, outscale: float | None) -> tuple[int, int]:
        if outscale is None:
            if self.continuous:
                raise LightSRError("a continuous-scale model needs an output scale (--scale, or --outscale)")
            return h * int(self.scale), w * int(self.scale)
        if not all(v > 0 and math.isfinite(v) for v in _axes(outscale)):
            raise LightSRError(f"output scale must be positive, got {outscale}")
        self._check_asymmetric(outscale)
        return self.output_size(h, w, outscale)

    def _check_asymmetric(self, outscale) -> None:
        """An (s_h, s_w) scale runs only on a continuous model, and not through the x8 ensemble."""
        if isinstance(outscale, tuple) and (not self.continuous or self.self_ensemble):
            raise LightSRError(f"an asymmetric scale ({outscale[0]:g}x{outscale[1]:g}) needs a continuous-scale model "
                               "and no self-ensemble (its rotations swap the axes)")

    def _rgb(self, x: torch.Tensor, outscale: float | None) -> torch.Tensor:
        oh, ow = self._out_hw(x.shape[-2], x.shape[-1], outscale)
        out = torch.empty(1, 3, oh, ow)
        for y0, y1, band in self._bands(x, outscale):
            out[:, :, y0:y1] = band.clamp_(0, 1)
        return out

    def _bands(self, x: torch.Tensor, outscale: float | None) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Yield finished output row bands ``(y0, y1, (1, 3, y1-y0, W_out) float32)`` of image ``x``."""
        h, w = x.shape[-2:]
        if self.continuous:
            s = outscale if isinstance(outscale, tuple) else float(outscale)
            if self.tile is None or isinstance(s, tuple) or s != int(s):  # a fractional grid's tiles do not align
                yield 0, self._out_hw(h, w, outscale)[0], self._forward(x, s)
                return
            native = s
        else:
            native = float(self.scale)
        s_int = int(native)
        resize = outscale is not None and not self.continuous and abs(outscale - native) > 1e-9
        if resize:  # native model scale, then MATLAB bicubic to the requested size, band by band
            from .resize import imresize_rows

            yield from imresize_rows(_clamped(self._native_bands(x, s_int, self._out_hw(h, w, outscale))),
                                     (h * s_int, w * s_int), outscale / native, self._out_hw(h, w, outscale))
            return
        yield from self._native_bands(x, s_int)

    def _native_bands(self, x: torch.Tensor, s: int,
                      resized_hw: tuple[int, int] | None = None) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Native-scale bands of ``x``; ``resized_hw``: the output size when the bands are resized
        (``--outscale``), for the memory budget."""
        h, w = x.shape[-2:]
        tile = self.tile
        if tile is None and self.max_memory is not None:
            tile = self.planner.tile_for_budget(self.max_memory, h, w, s, pad=self.tile_pad, resized_hw=resized_hw,
                                                itemsize=x.element_size())
        if tile is not None:
            tile = self._window_tile(tile)
        if tile is None or (tile >= h and tile >= w):
            try:
                self._tick(0, 1)
                y = self._forward(x, s)
                self._tick(1, 1)
                yield 0, h * s, y
                return
            except torch.OutOfMemoryError:
                if self.device.type != "cuda":
                    raise
                torch.cuda.empty_cache()
                tile = 512
                note(f"out of GPU memory on the whole image; tiling with --tile {tile}")
        while True:
            bands = self._tiled(x, s, tile)
            try:  # the first tile row probes the tile size: a retry never follows a partial yield
                first = next(bands)
                break
            except torch.OutOfMemoryError:
                if self.device.type != "cuda" or tile <= 32:
                    raise
                torch.cuda.empty_cache()
                tile //= 2
                note(f"out of GPU memory; retrying with --tile {tile}")
        yield first
        del first  # held here, the first band would stay in memory to the end
        yield from bands  # streamed: one band of tiles in float at a time

    def _window_tile(self, tile: int) -> int:
        """``tile`` rounded down so that a tile with its context on both sides, ``tile + 2 tile_pad``, is a
        multiple of the model's window (``descriptor.window_multiple``): the model then pads no tile
        inside (windowed attention pads to whole windows). Rounded down only: a tile too small for one
        window with its context (under 8 pixels once rounded) stays as asked."""
        m = self.descriptor.window_multiple
        fitted = (tile + 2 * self.tile_pad) // m * m - 2 * self.tile_pad
        return fitted if m > 1 and fitted >= 8 else tile

    def _tiled(self, x: torch.Tensor, s: int, tile: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        h, w = x.shape[-2:]
        pad, b = self.tile_pad, min(self.tile_pad // 2, tile // 2)
        rows, cols = list(range(0, h, tile)), list(range(0, w, tile))
        bar = progress_bar(len(rows) * len(cols), "tiles", self.progress and len(rows) * len(cols) > 1)
        done, total = 0, len(rows) * len(cols)
        self._tick(0, total)
        ow = w * s
        band_lo, carry = 0, None  # carry: rows from band_lo on that the previous tile row began
        for r, ty in enumerate(rows):
            ty1 = min(ty + tile, h)
            # output rows this tile row writes (core +- b, clipped); rows < next_lo are then final
            lo, hi = max(ty - b, 0) * s, min(ty1 + b, h) * s
            acc = torch.zeros(1, 3, hi - band_lo, ow)  # the one band of tiles held in float
            if carry is not None:
                acc[:, :, : carry.shape[2]] = carry
                carry = None
            wy = _ramp(h, ty, ty1, b, s)[lo:hi]
            for tx in cols:
                tx1 = min(tx + tile, w)
                cy0, cy1, cx0, cx1 = max(ty - pad, 0), min(ty1 + pad, h), max(tx - pad, 0), min(tx1 + pad, w)
                y = self._forward(x[:, :, cy0:cy1, cx0:cx1], s, whole=False)
                oy0, ox0 = max(ty - b, 0), max(tx - b, 0)
                oy1, ox1 = min(ty1 + b, h), min(tx1 + b, w)
                part = y[:, :, (oy0 - cy0) * s:(oy1 - cy0) * s, (ox0 - cx0) * s:(ox1 - cx0) * s]
                wx = _ramp(w, tx, tx1, b, s)[ox0 * s:ox1 * s]
                acc[:, :, lo - band_lo:hi - band_lo, ox0 * s:ox1 * s].addcmul_(part, wy[:, None] * wx[None, :])
                bar.update(1)
                done += 1
                self._tick(done, total)
            del y, part  # not alive during the next tile row's first call
            next_lo = max(rows[r + 1] - b, 0) * s if r + 1 < len(rows) else h * s
            carry = acc[:, :, next_lo - band_lo:].clone()  # the overlap rows only (2 b s of them)
            # a view, no copy: its rows are final, and the next band is a new tensor
            yield band_lo, next_lo, acc[:, :, : next_lo - band_lo]
            freed = acc.nbytes if self.max_memory is None else max(acc.nbytes, TRIM_BYTES)  # a budget: always
            del acc
            release_freed_memory(freed)  # the band and its tiles' buffers, before the next band
            band_lo = next_lo
        bar.close()

    def _tick(self, done: int, total: int) -> None:
        if self.on_tile is not None:
            self.on_tile(done, total)

    @torch.no_grad()
    def _forward(self, x: torch.Tensor, s: float, whole: bool = True) -> torch.Tensor:
        """One model call on a (1, 3, h, w) CPU tensor (float32 in [0, 1], or uint8 / int32 16-bit
        pixels, made float here) -> float32 CPU output (s*h, s*w).
        ``whole``: ``x`` is the whole image (a tile is never padded: its context is real pixels)."""
        if not x.is_floating_point():  # uint8 / 16-bit pixels of upscale_array
            x = x.float().div_(255.0 if x.dtype == torch.uint8 else 65535.0)
        h, w = x.shape[-2:]
        ph, pw = (max(MIN_SIDE - h, 0), max(MIN_SIDE - w, 0)) if whole else (0, 0)
        top, left = ph // 2, pw // 2
        if ph or pw:  # a 1x1 or 2x3 image: edge-pad on every side, run, crop the centre
            x = torch.nn.functional.pad(x, (left, pw - left, top, ph - top), mode="replicate")
        xd = x.to(self.device)
        run = lambda t: self.runner(t, scale=s)  # noqa: E731
        if self.self_ensemble:
            y = _self_ensemble(run, xd)
        else:
            y = run(xd)
        y = y.float().cpu()
        if ph or pw:
            sh, sw = _axes(s)
            y0, x0 = int(round(top * sh)), int(round(left * sw))
            y = y[:, :, y0:y0 + int(round(h * sh)), x0:x0 + int(round(w * sw))]
        return y


def _axes(scale) -> tuple[float, float]:
    """An output scale as (s_h, s_w): a number for both axes, or the pair of an asymmetric scale."""
    return (float(scale), float(scale)) if isinstance(scale, (int, float)) else (float(scale[0]), float(scale[1]))


def _clamped(bands: Iterator[tuple[int, int, torch.Tensor]]) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Bands clamped to [0, 1] in place, none held once the consumer asks for the next."""
    for y0, y1, band in bands:
        yield y0, y1, band.clamp_(0, 1)
        del band


def _check_values(x: torch.Tensor) -> None:
    """Float images: non-empty, finite, in [0, 1] (a 0-255 float image is the usual slip)."""
    if x.numel() == 0:
        raise LightSRError(f"empty image (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        return
    if not bool(torch.isfinite(x).all()):
        raise LightSRError("the image contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        hint = " (an 8-bit image as float? divide by 255)" if hi <= 255 + 1e-3 else ""
        raise LightSRError(f"float images must be in [0, 1]; this one spans [{lo:g}, {hi:g}]{hint}")


def _ramp(length: int, a: int, b: int, half: int, s: int) -> torch.Tensor:
    """Blend weights over the output pixels of axis ``length*s`` for a tile whose core is [a, b).

    1 inside the core, rising linearly across [a - half, a + half] (when a > 0) and falling across
    [b - half, b + half] (when b < length); 0 outside. A neighbour's ramp over the same zone is
    1 minus this one, so overlapping tiles sum to exactly 1.
    """
    u = (torch.arange(length * s, dtype=torch.float32) + 0.5) / s  # pixel centres in input units
    wgt = ((u >= a) & (u < b)).float() if half == 0 else torch.ones_like(u)
    if half > 0:
        if a > 0:
            wgt = wgt * ((u - (a - half)) / (2 * half)).clamp(0, 1)
        else:
            wgt = wgt * (u < b + half).float()
        if b < length:
            wgt = wgt * (((b + half) - u) / (2 * half)).clamp(0, 1)
    return wgt


def _self_ensemble(run, x: torch.Tensor) -> torch.Tensor:
    """x8 geometric self-ensemble (the evaluation pipeline's), accumulated in float32."""
    from .inference import ensemble_x8

    return ensemble_x8(lambda t: run(t).float(), x)


def _from_float(band: torch.Tensor, dtype, peak: float) -> torch.Tensor:
    """A finished float band -> the output dtype, in place where it can (a band is never read again)."""
    band = band.clamp_(0, 1)
    if np.issubdtype(dtype, np.floating):
        return band
    return band.mul_(peak).round_()  # integral values: the cast into uint8 / uint16 is exact


def _resize_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if alpha.min() == alpha.max():  # opaque (or uniform): nothing to interpolate
        return np.full(size, alpha.flat[0], dtype=alpha.dtype)
    from .resize import imresize

    return imresize(alpha, output_size=size)


def note(msg: str) -> None:
    """One ``lightsr: ...`` line on stderr that keeps progress bars intact."""
    from tqdm import tqdm

    tqdm.write(f"lightsr: {msg}", file=sys.stderr)


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass

    def set_postfix_str(self, *a, **k):
        pass


def progress_bar(total: int, unit: str, enabled: bool, leave: bool = False):
    """A tqdm bar on stderr, or one that does nothing when not ``enabled``."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, leave=leave, file=sys.stderr, dynamic_ncols=True)


