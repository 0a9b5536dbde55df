"""Upscaling for users: ``lightsr.load(...)`` / ``lightsr.upscale(...)`` and ``lightsr upscale``.

* :func:`load` returns an :class:`Upscaler`: call it on a numpy array (H, W, C; uint8, uint16 or float
  in [0, 1]), a PIL image or a float tensor in [0, 1] ((C, H, W) or (B, C, H, W)); you get the same kind
  back. Gray images go through the model as RGB and come back gray; RGBA images have their alpha
  resized separately with MATLAB bicubic (:func:`lightsr.resize.imresize`).
* Any size in bounded memory: with ``tile=N`` the image is cut into N x N tiles, each run with
  ``tile_pad`` pixels of real context on every side and blended with its neighbours over a linear ramp
  ``2 * (tile_pad // 2)`` wide centred on the shared edge (the two ramps sum to 1). Output rows are
  finished band by band, so besides the output itself only one band of tiles is held in float.
  Tiling is chosen automatically on CUDA out-of-memory (tile 512, then halving) or from a
  ``max_memory`` budget.
* Any output scale: the model's native scale, then MATLAB bicubic for a fractional ``outscale``; a
  continuous model (``model.continuous``) is asked for the scale directly.
* Weights: a registered name uses the weights shipped for it (``pretrained`` in the registry, files in
  ``lightsr/weights/``), else its published official checkpoint (``published``: downloaded into the cache,
  verified and converted by :mod:`lightsr.hub`), unless ``weights=`` is given; checkpoints are read
  without executing pickled code.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import math
import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from .errors import LightSRError

# The default upscaler: per scale, the first of these that ships weights for it (results/training.md
# chose RLFN-S by measurement; the study-notes RDB-ESA covers the scales RLFN-S is not trained for yet).
DEFAULT_MODELS = ("rlfn_s", "rdb_esa")
DEFAULT_MODEL = DEFAULT_MODELS[0]
DEFAULT_SCALE = 4  # without --scale (upscale, eval): x4


def default_model(scale: int | None = None) -> str:
    """The default model for ``scale`` (None: x4): the first of DEFAULT_MODELS with shipped weights."""
    from .models import get_entry

    s = DEFAULT_SCALE if scale is None else scale
    for name in DEFAULT_MODELS:
        if get_entry(name).shipped_weights(s) is not None:
            return name
    return DEFAULT_MODEL
from .models.registry import WEIGHTS_DIR
from .imageio import READ_EXTENSIONS as READ_EXTS  # one list of image extensions, in imageio

MIN_SIDE = 16  # smaller inputs are edge-padded on every side to this size (and the centre cropped back):
# a model's zero padding then sits away from the image, so a 1x1 or flat image comes back flat
SAMPLE = Path(__file__).resolve().parent / "assets" / "sample.png"  # `lightsr upscale --sample` (assets/SAMPLE.md)


# ---------------------------------------------------------------------------------------------
# the upscaler
# ---------------------------------------------------------------------------------------------
class Upscaler:
    """A model plus how to run it (device, precision, tiling, ensemble). Call it on an image."""

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu", precision: str = "auto",
                 tile: int | None = None, tile_pad: int = 16, self_ensemble: bool = False,
                 max_memory: float | None = None, progress: bool = False, outscale: float | None = None,
                 compile: bool = False):
        from .inference import Runner

        self.device = torch.device(device)
        self.runner = Runner(model, self.device, precision, compile=compile)
        self.model = self.runner.model
        self.precision = self.runner.precision  # the one that runs: fp32, bf16 or fp16
        self.continuous = bool(getattr(model, "continuous", False))
        self.scale = getattr(model, "scale", None)
        if not self.continuous and not isinstance(self.scale, (int, float)):
            raise LightSRError(f"model {type(model).__name__} has no integer .scale attribute")
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
        self.kind = "clean"  # which weights (lightsr.load's kind): "clean" or "photo"
        self.descriptor = None  # what was loaded (lightsr.load sets it)
        self.outscale = _norm_scale(outscale)
        self._check_asymmetric(self.outscale)  # before any image
        self._bpp: float | None = None  # measured working memory per input pixel of a tile's model call
        self._fixed_bytes = 0.0  # memory the probe calls keep (thread arenas, kernels): in the budget
        self._shape_bytes = 0.0  # memory a call on a new tile shape keeps (oneDNN's cached primitives)

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
        outscale = _norm_scale(outscale)
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
        outscale = _norm_scale(outscale)
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

        from .imageio import _to_array

        from .imageio import to_uint8

        out = self.upscale_array(_to_array(im), outscale)
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
            tile = self._tile_for_budget(h, w, s, resized_hw=resized_hw, itemsize=x.element_size())
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
                _note(f"out of GPU memory on the whole image; tiling with --tile {tile}")
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
                _note(f"out of GPU memory; retrying with --tile {tile}")
        yield first
        del first  # held here, the first band would stay in memory to the end
        yield from bands  # streamed: one band of tiles in float at a time

    def _tiled(self, x: torch.Tensor, s: int, tile: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        h, w = x.shape[-2:]
        pad, b = self.tile_pad, min(self.tile_pad // 2, tile // 2)
        rows, cols = list(range(0, h, tile)), list(range(0, w, tile))
        bar = _bar(len(rows) * len(cols), "tiles", self.progress and len(rows) * len(cols) > 1)
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

    def _tile_for_budget(self, h: int, w: int, s: int | None = None, *, resized_hw: tuple[int, int] | None = None,
                         itemsize: int = 1) -> int | None:
        """Largest tile (multiple of 8) whose planned peak memory fits ``max_memory``; None when the
        whole image does. Raises :class:`LightSRError` (one line) when not even a 16-pixel tile does.

        ``max_memory`` bounds the growth of the whole process's resident memory (RSS) once the model
        is loaded. The plan (:meth:`_plan_bytes`) counts the input, the output, the float band of tiles,
        the model calls of tiles as measured by :meth:`_bytes_per_pixel` (x :data:`BUDGET_SAFETY`) and
        what the calls keep, and must stay under :data:`BUDGET_FILL` of the budget; so must the output
        beside the copy an image encoder makes of it (:data:`ENCODER_COPY`), as ``lightsr upscale``
        writes it. Under a budget, freed memory is handed back after every band (``_tiled``).
        ``s``: the native scale (default the model's); ``resized_hw``: the output size when the native
        bands are resized (``--outscale``); ``itemsize``: bytes per value of the input tensor (1: uint8
        pixels, 4: 16-bit or float), which is also the output's kind (uint8, uint16, float32).
        """
        s = int(s if s is not None else self.native_scale)
        if self._bpp is None:
            self._bpp = self._bytes_per_pixel(s=s)
        limit = BUDGET_FILL * self.max_memory
        whole = self._plan_bytes(h, w, s, None, resized_hw, itemsize)
        if whole <= limit:
            return None
        best = None
        for tile in range(16, max(h, w) + 8, 8):  # the plan grows with the tile
            if self._plan_bytes(h, w, s, tile, resized_hw, itemsize) > limit:
                break
            best = tile
        if best is None:
            need = self._plan_bytes(h, w, s, 16, resized_hw, itemsize) / BUDGET_FILL
            oh, ow = resized_hw or (h * s, w * s)
            raise LightSRError(f"--max-memory {_size(self.max_memory)} is too small for a {w}x{h} image at x{s}: "
                               f"its {ow}x{oh} output, an encoder's copy of it and the smallest tile need "
                               f"about {_size(need)}")
        return best

    def _plan_bytes(self, h: int, w: int, s: int, tile: int | None, resized_hw: tuple[int, int] | None,
                    itemsize: int) -> float:
        """Planned peak growth of process memory (bytes) upscaling an h x w image with ``tile`` (None:
        whole): the larger of the model phase and the writing phase.

        Model phase: the caller's image and its (3, h, w) copy (``itemsize`` each, an upper bound for
        the caller's), the output (``itemsize`` a value too), the band of tiles accumulated in float32
        (``(tile + 2 b) s`` rows of the native output width, plus the ``2 b s`` rows carried to the next
        band), the model calls on one tile's pixels (``_bpp``: measured per input pixel, with their
        input, float output and the previous tile's output still referenced), what each distinct tile
        shape keeps (``_shape_bytes``; up to 4 heights x 4 widths), and with ``--outscale`` a few rows
        of the resize. Writing phase: the image, the output, an encoder's copy of it and every shape's
        keep. Both add what the probe calls kept (``_fixed_bytes``).
        """
        oh, ow = resized_hw or (h * s, w * s)
        image = h * w * 3 * itemsize
        output = oh * ow * 3 * itemsize  # uint8 out of uint8; 16-bit (int32 here) and float: 4, an upper bound
        bpp = self._bpp * BUDGET_SAFETY
        resize = 12.0 * 64 * (w * s + ow) if resized_hw is not None else 0.0
        if tile is None or (tile >= h and tile >= w):
            model = bpp * h * w + resize + self._shape_bytes
        else:
            pad, b = self.tile_pad, min(self.tile_pad // 2, tile // 2)
            th, tw = min(tile + 2 * pad, h), min(tile + 2 * pad, w)
            band = 12.0 * s * w * s * (min(tile, h) + 4 * b)
            sides = lambda n: len({min(t + tile + pad, n) - max(t - pad, 0) for t in range(0, n, tile)})  # noqa: E731
            shapes = sides(h) * sides(w) * self._shape_bytes
            model = band + bpp * th * tw + shapes + resize
        writing = 2 * image + output * (1 + ENCODER_COPY) + self._shape_bytes * 16
        return self._fixed_bytes + max(2 * image + output + model, writing)

    def _tiles_like(self, x: torch.Tensor, s: float, k: int) -> None:
        """``k`` model calls on ``x`` in a row, each output held until the next call ends, as tiles run."""
        y = None
        for _ in range(k):
            y = self._forward(x, s, whole=False)
        del y

    def _bytes_per_pixel(self, n: int = 64, s: float | None = None) -> float:
        """Working memory of the model calls of tiles, per input pixel, measured at the precision and
        memory format the upscaler runs: one n x n call, then three 2n x 2n calls in a row.

        CPU on Linux: the real peak of the process's resident memory during the probes, as the kernel
        records it (``VmHWM``, reset to the current RSS just before each probe through
        ``/proc/self/clear_refs``, after freed heap is handed back). The calls are the ones tiles make
        (:meth:`_forward`: uint8 pixels made float, the channels_last and bf16 copies, oneDNN's scratch
        space, per-thread buffers, the float32 output and its copy), so whatever they touch counts;
        the three in a row, each output held until the next call ends as ``_tiled`` holds it, also
        catch the heap the allocator does not reuse from one call to the next (one call alone
        measures 800-1300 B/px for rlfn_s in bf16 here, three in a row 1200-1650). The cost per pixel
        is the larger of the 2n probe's peak per pixel and the slope between the two probes (a fixed
        part makes large tiles cheaper per pixel, never dearer). A 16 x 16 call runs first: what the
        calls keep once freed heap is handed back (thread arenas, oneDNN's kernels and primitives) goes
        to ``_fixed_bytes``, and the most one new shape kept to ``_shape_bytes`` (each tile shape gets
        its own primitives: ~0.85 MB for rlfn_s). Resetting the high-water mark also resets what
        ``getrusage`` reports as this process's peak so far.
        CUDA: peak bytes allocated on the GPU, plus the float32 input and two outputs the host holds.
        Elsewhere (no /proc: macOS, Windows): an estimate, 16 x the largest module output per pixel
        (rlfn_s in bf16 measures 12-17 x here).
        """
        s = float(s if s is not None else self.scale or 2)
        probe = lambda k: torch.randint(0, 256, (1, 3, k, k), dtype=torch.uint8)  # noqa: E731
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            self._forward(probe(n), s, whole=False)
            torch.cuda.synchronize(self.device)
            return max(torch.cuda.max_memory_allocated(self.device) - base, 1) / (n * n) + 12.0 * (1 + 2 * s * s)
        rss0 = _trimmed_rss()
        first = _peak_growth(lambda: self._forward(probe(16), s, whole=False))
        if rss0 is not None and first is not None:
            kept0 = _trimmed_rss()
            small = _peak_growth(lambda: self._forward(probe(n), s, whole=False))
            kept1 = _trimmed_rss()
            big = _peak_growth(lambda: self._tiles_like(probe(2 * n), s, 3))
            kept2 = _trimmed_rss()
            if None not in (small, big, kept0, kept1, kept2):
                self._fixed_bytes = float(max(kept2 - rss0, 0))
                self._shape_bytes = float(max(kept1 - kept0, kept2 - kept1, 0))
                p1, p2 = n * n, 4 * n * n
                return max(big / p2, (big - small) / (p2 - p1), 1.0)
        biggest = [0]

        def hook(_m, _i, out):
            if isinstance(out, torch.Tensor):
                biggest[0] = max(biggest[0], out.numel() * out.element_size())

        hooks = [m.register_forward_hook(hook) for m in self.model.modules() if not list(m.children())]
        try:
            self._forward(probe(n), s, whole=False)
        finally:
            for hk in hooks:
                hk.remove()
        return 16.0 * biggest[0] / (n * n)


# --max-memory: the plan of ``Upscaler._tile_for_budget`` (issue 29; benchmarks/peak_memory.py --max-memory)
BUDGET_SAFETY = 1.5  # x the measured working memory per pixel: tiles in a run cost up to ~1.4 x a probe
BUDGET_FILL = 0.8  # plan to this share of the budget: allocator slack, fragmentation between tiles
ENCODER_COPY = 4 / 3  # writing the output, Pillow holds it again, RGB as 4 bytes a pixel (measured: 1.37)


def _size(nbytes: float) -> str:
    """Bytes as --max-memory writes them: 1.5G, 640M."""
    for unit, mult in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if nbytes >= mult:
            return f"{nbytes / mult:.3g}{unit}"
    return f"{nbytes:.0f}B"


def _proc_status(key: str) -> int | None:
    """A ``/proc/self/status`` memory line in bytes (``VmRSS``, ``VmHWM``); None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS record of this process to its current RSS (Linux); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _trimmed_rss() -> int | None:
    """This process's resident memory (bytes) once freed heap is handed back; None without /proc."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    return _proc_status("VmRSS")


def _peak_growth(fn) -> int | None:
    """Peak growth of this process's resident memory while ``fn()`` runs, in bytes, as the kernel
    records it (Linux); None where the peak cannot be reset and read."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)  # freed heap back to the OS first: a call must not hide in pages kept from earlier work
    if not _reset_peak_rss():
        return None
    before = _proc_status("VmRSS")
    fn()
    peak = _proc_status("VmHWM")
    if before is None or peak is None:
        return None
    return max(peak - before, 0)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to do
        return None


TRIM_BYTES = 1 << 25  # below 32 MB of work freed, handing pages back costs more than it saves


def release_freed_memory(size: int) -> None:
    """Hand freed memory back to the OS (glibc's ``malloc_trim``; a no-op elsewhere) after work on
    ``size`` bytes, when that is at least :data:`TRIM_BYTES`.

    A tiled run frees a band of tiles at a time, but glibc keeps freed heap pages: without this a
    2000x1500 x4 run peaks about 150 MB higher (benchmarks/peak_memory.py). A call costs up to
    ~1.5 ms, hence the threshold (small images in a folder would pay it per image)."""
    trim = _malloc_trim() if size >= TRIM_BYTES else None
    if trim is not None:
        trim(0)


def _axes(scale) -> tuple[float, float]:
    """An output scale as (s_h, s_w): a number for both axes, or the pair of an asymmetric scale."""
    return (float(scale), float(scale)) if isinstance(scale, (int, float)) else (float(scale[0]), float(scale[1]))


def _norm_scale(scale):
    """None, a number, or (s_h, s_w) when the two differ (continuous-scale models); a pair of equal
    scales is that number."""
    if scale is None or isinstance(scale, (int, float)):
        return scale
    from .layers.coords import parse_scale

    sh, sw = parse_scale(scale)
    return (sh, sw) if sh != sw else (int(sh) if sh.is_integer() else sh)


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
    from .evaluate import self_ensemble

    return self_ensemble(lambda t: run(t).float(), x)


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


def _note(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"lightsr: {msg}", file=sys.stderr)


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass

    def set_postfix_str(self, *a, **k):
        pass


def _bar(total: int, unit: str, enabled: bool, leave: bool = False):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, leave=leave, file=sys.stderr, dynamic_ncols=True)


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
def check_outscale(outscale, flag: str = "--outscale") -> None:
    """One line for an output scale that is not a positive, finite number (before any model loads)."""
    if outscale is None:
        return
    try:
        value = float(outscale)
    except (TypeError, ValueError):
        raise LightSRError(f"{flag} {outscale!r}: give a positive number, e.g. 2 or 3.5") from None
    if not 0 < value < math.inf:
        raise LightSRError(f"{flag} {outscale!r}: the output scale must be a positive, finite number, e.g. 2 or 3.5")


def available_devices() -> list[str]:
    """The devices this machine has: cpu, cuda:N for each GPU, mps / xpu where present."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        found += [f"xpu:{i}" for i in range(xpu.device_count())]
    return found


def check_device(device) -> None:
    """One line naming the devices that exist, for a device this machine lacks (``mps`` on Linux,
    ``cuda:3`` with one GPU ...). A name torch does not know is left to :func:`pick_device`."""
    if device is None or isinstance(device, torch.device) and device.type == "cpu":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        return
    if dev.type == "cpu" or dev.type == "cuda" and not torch.cuda.is_available():
        return  # pick_device says "no CUDA GPU is available"
    have = available_devices()
    if dev.type == "cuda":
        ok = dev.index is None or dev.index < torch.cuda.device_count()
    elif dev.type == "mps":
        ok = "mps" in have
    elif dev.type == "xpu" and any(d.startswith("xpu") for d in have):
        ok = dev.index is None or f"xpu:{dev.index}" in have
    else:
        ok = False
    if not ok:
        raise LightSRError(f"device {device} is not available on this machine; it has: {', '.join(have)}")


def _precision_from_flags(precision: str | None, half: bool, bf16: bool) -> str:
    """``half=True`` / ``bf16=True`` are older spellings of ``precision="fp16"`` / ``"bf16"``."""
    asked = [p for p, on in (("fp16", half), ("bf16", bf16)) if on]
    if len(asked) > 1 or (asked and precision not in (None, "auto", asked[0])):
        raise LightSRError("choose one precision (--precision, --half or --bf16)")
    return asked[0] if asked else (precision or "auto")


def _weight_scales(entry, kind: str = "clean") -> list[int]:
    """The scales a name resolves to weights at: shipped ones if any, else published ones (photo
    weights: shipped ones only)."""
    if kind == "photo":
        return sorted(entry.photo)
    return sorted(entry.pretrained or getattr(entry, "published", None) or {})


def _shipped_weights(entry, scale: int | None, published: bool = True,
                     kind: str = "clean") -> tuple[int, Path | None]:
    """Scale and path of the weights for ``entry``: shipped (``lightsr/weights``) first, else (when
    ``published``: a model the user named) the published checkpoint from the cache, downloaded,
    verified and converted on first use (:func:`lightsr.hub.fetch`; offline: one line naming the URL
    and the cache path). Path None if neither."""
    from .hub import weights_for

    pre = _weight_scales(entry, kind) if published or kind != "clean" else sorted(entry.pretrained or {})
    if scale is None:
        scale = 4 if (4 in pre or not pre) else max(pre)
    return scale, weights_for(entry.name, scale, published_too=published, kind=kind)


def _missing_weights_error(name: str, scale: int | None, default: bool) -> LightSRError:
    what = f"{name} x{scale}" if scale else name
    lead = f"the default model {what}" if default else f"model {what}"
    return LightSRError(f"{lead} has no shipped or published weights (shipped ones under {WEIGHTS_DIR}); pass a "
                        f"checkpoint trained for {what} with --weights PATH (Python: weights=PATH), or pick a "
                        f"model and scale that has weights (`lightsr weights list`)")


def _fixed_scale_error(name: str, scale) -> LightSRError:
    """A fractional or asymmetric ``--scale`` asked of a fixed-scale model: the one-line way out."""
    if isinstance(scale, tuple):
        return LightSRError(f"{name} is a fixed-scale model: an asymmetric scale ({scale[0]:g}x{scale[1]:g}) "
                            "needs a continuous-scale model (e.g. anysr_srno_edsr, srno_edsr)")
    return LightSRError(f"{name} is a fixed-scale model: --scale {scale:g} needs a continuous-scale model; "
                        f"use --outscale {scale:g} (its native scale, then bicubic)")


def _continuous_outscale(model: nn.Module, name: str, scale, outscale, any_scale: bool):
    """The output scale to run: a continuous model's ``scale`` (``outscale`` is its older spelling,
    the two must agree); a fixed-scale model keeps ``outscale`` and refuses a fractional or
    asymmetric ``scale``."""
    if not getattr(model, "continuous", False):
        if any_scale:
            raise _fixed_scale_error(name, scale)
        return outscale
    if scale is None:
        return outscale
    if outscale is not None and _norm_scale(outscale) != scale:
        raise LightSRError(f"--scale and --outscale differ for continuous-scale model {name}; give --scale only")
    return scale


def _arch_from_file(path: Path) -> tuple[str, int | None, dict]:
    """(architecture, scale, options) of a checkpoint, read from its keys and shapes."""
    from .models.loading import describe

    d = describe(path)
    return d.model, d.scale if isinstance(d.scale, int) else None, dict(d.options)


def load(name_or_path: str | os.PathLike | None = None, scale: int | None = None, device: str | None = None,
         weights: str | os.PathLike | None = None, *, precision: str = "auto", compile: bool = False,
         half: bool = False, bf16: bool = False, tile: int | None = None, tile_pad: int = 16,
         self_ensemble: bool = False, max_memory: float | None = None, options: dict | None = None,
         progress: bool = False, outscale: float | None = None, kind: str = "clean") -> Upscaler:
    """A ready-to-use :class:`Upscaler`.

    ``name_or_path``: a registered model name (its shipped weights are used unless ``weights`` is
    given; without shipped ones, its published checkpoint, fetched into the cache by
    :func:`lightsr.hub.fetch`), a checkpoint file of any supported architecture (official layouts included: the
    architecture, scale and options are read from its keys and shapes), or ``None`` for the default
    model (or, with ``weights``, whatever the weights are). ``scale``: the model's native scale
    (default: the checkpoint's, else 4, or the one that fits ``outscale``); a continuous-scale model
    runs at it, whatever it is (2.5, or an (s_h, s_w) pair), and a fixed-scale model refuses a
    fractional or asymmetric one (``outscale`` is its native scale, then bicubic). ``precision``: ``"auto"``
    (bf16 where the device does it natively and the model tolerates it, else fp32), ``"fp32"``,
    ``"bf16"`` or ``"fp16"`` (CUDA); ``compile``: torch.compile (falls back to eager with one line).
    ``kind``: which shipped weights a name (or the default model) uses: ``"clean"`` (trained on
    bicubic LR: clean, lossless input) or ``"photo"`` (trained on blurred, noisy, JPEG-compressed LR:
    photos as phones and the web save them; :mod:`lightsr.photo`).
    Raises :class:`LightSRError` with one line for anything missing or mismatched. The returned
    upscaler's ``descriptor`` says what was loaded (:class:`lightsr.models.loading.Descriptor`), its
    ``kind`` which weights.
    """
    from .models import get_entry, pick_device
    from .models.loading import _is_path, resolve
    from .precision import resolve as resolve_precision

    options = dict(options or {})
    scale = _norm_scale(scale)
    any_scale = scale is not None and (isinstance(scale, tuple) or float(scale) != int(scale))  # continuous only
    check_outscale(outscale)
    check_device(device)
    dev = pick_device(device)
    precision = _precision_from_flags(precision, half, bf16)
    resolve_precision(precision, dev)  # an unknown precision or fp16 on a CPU fails before loading
    if weights is not None and not Path(weights).is_file():
        raise LightSRError(f"weights file not found: {weights}")
    if kind not in ("clean", "photo"):
        raise LightSRError(f"kind {kind!r}: use 'clean' (bicubic-trained weights) or 'photo' (for compressed photos)")
    if kind == "photo" and (weights is not None or name_or_path is not None and _is_path(name_or_path)):
        raise LightSRError("kind='photo' picks a model's shipped photo weights; a checkpoint file is used as it is")
    if name_or_path is not None and _is_path(name_or_path):
        if weights is not None:
            raise LightSRError("pass either a checkpoint path or a model name with weights=, not both")
        if not Path(name_or_path).is_file():
            raise LightSRError(f"checkpoint not found: {name_or_path}")
        spec: str | os.PathLike | None = name_or_path
    elif name_or_path is None and weights is not None:
        spec = None  # the weights say what they are
    else:  # a registered name (or the default model) with its shipped weights unless weights= is given
        default = name_or_path is None
        if default and scale is None and outscale is not None:
            scale = next((s for s in (2, 3, 4) if s >= outscale - 1e-9 and
                          get_entry(default_model(s)).shipped_weights(s, kind) is not None), None)
        try:
            entry = get_entry(default_model(None if any_scale else scale) if default else str(name_or_path))
        except LightSRError:
            if default:
                raise _missing_weights_error(DEFAULT_MODEL, scale or 4, True) from None
            raise
        if scale is None and entry.scales is not None and outscale is not None and weights is None and \
                _weight_scales(entry, kind):
            # the smallest native scale with shipped (else published) weights reaching outscale
            have = _weight_scales(entry, kind)
            fits = [s for s in have if s >= outscale - 1e-9]
            scale = int(fits[0] if fits else have[-1])
        if any_scale and entry.scales is not None:
            raise _fixed_scale_error(entry.name, scale)
        if scale is not None and entry.scales is not None and (float(scale) != int(scale) or int(scale) not in entry.scales):
            allowed = ", ".join(f"x{v:g}" for v in entry.scales)
            raise LightSRError(f"model {entry.name} supports scales {allowed}, not x{scale:g}")
        if weights is None:
            native, path = _shipped_weights(entry, None if scale is None or entry.scales is None else int(scale),
                                            published=not default, kind=kind)  # default model: shipped only
            if path is None and kind == "photo":
                have = ", ".join(f"x{s}" for s in sorted(entry.photo)) or "none"
                raise LightSRError(f"{entry.name} x{native} has no photo weights (photo weights: {have}); "
                                   "kind 'clean' (--kind clean) uses its bicubic-trained weights")
            if path is None:
                raise _missing_weights_error(entry.name, native if entry.scales is not None else None, default)
            weights = path
            scale = native if entry.scales is not None else scale  # a continuous model keeps the asked scale
        spec = entry.name
    model, desc = resolve(spec, weights=weights, scale=None if any_scale else scale, options=options,
                          device="cpu", shipped=False)
    outscale = _continuous_outscale(model, desc.model, scale, outscale, any_scale)
    up = Upscaler(model, dev, precision, tile=tile, tile_pad=tile_pad, self_ensemble=self_ensemble,
                  max_memory=max_memory, progress=progress, outscale=outscale, compile=compile)
    up.descriptor, up.kind = desc, kind
    return up


def upscale(image, model: str | os.PathLike | Upscaler | None = None, *, scale: int | None = None,
            outscale: float | None = None, device: str | None = None, weights: str | None = None, **kw):
    """One-shot: ``lightsr.upscale(img, "imdn", weights="imdn_x4.pth")``; same kind of image back.

    For many images build the upscaler once with :func:`load` and call it.
    """
    up = model if isinstance(model, Upscaler) else load(model, scale=scale, device=device, weights=weights,
                                                        outscale=outscale, **kw)
    return up(image, outscale=outscale)


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def parse_memory(text: str | None) -> float | None:
    """"4G", "512M", "1.5GB", "2" (GB) -> bytes."""
    if text is None:
        return None
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    try:
        if t and t[-1] in mult:
            value = float(t[:-1]) * mult[t[-1]]
        else:
            value = float(t) * 2**30
    except ValueError:
        raise LightSRError(f"--max-memory expects a size like 4G or 512M, got {text!r}") from None
    if not 0 < value < math.inf:  # nan and inf too: a budget no tile can be computed from
        raise LightSRError(f"--max-memory must be a positive, finite size, got {text!r}")
    return value


def collect_inputs(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """``[(file, path relative to its root)]`` for files, folders (recursive) and globs; plus errors."""
    found: list[tuple[Path, Path]] = []
    errors: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in READ_EXTS
                           and not f.name.startswith("."))
            if not files:
                errors.append(f"no images found in folder {p}")
            found += [(f, f.relative_to(p)) for f in files]
        elif p.is_file():
            found.append((p, Path(p.name)))
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                errors.append(f"no files match {item}")
            found += [(m, Path(m.name)) for m in files]
        else:
            errors.append(f"input not found: {item}")
    seen, unique = set(), []
    for f, rel in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((f, rel))
    return unique, errors


def output_path(src: Path, rel: Path, out: Path, single_file: bool, suffix: str, ext: str) -> Path:
    from .imageio import FORMATS

    if ext == "same":
        new_ext = src.suffix.lower() if src.suffix.lower() in FORMATS else ".png"
    else:
        new_ext = "." + ext.lower().lstrip(".")
    if single_file and out.suffix.lower() in FORMATS and not out.is_dir():
        return out
    return out / rel.parent / f"{rel.stem}{suffix}{new_ext}"


def _check_out_root(out: Path) -> None:
    """A clear line for an output location that cannot be written (before any work is done)."""
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            return
        probe = probe.parent
    if not probe.is_dir():
        raise LightSRError(f"cannot write under {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise LightSRError(f"output folder {probe} is not writable")


def _complete_image(path: Path) -> bool:
    """Whether Pillow decodes ``path`` to the end (an output cut off by a crash or a full disk is not)."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # an upscaled output may well pass Pillow's bomb guard
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:  # noqa: BLE001 - truncated, corrupt, not an image: not a finished output
        return False
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def upscale_files(up: Upscaler, inputs: list[str], output: str | os.PathLike, *, suffix: str = "",
                  ext: str = "same", overwrite: bool = False, quality: int = 95, png_level: int | None = None,
                  progress: bool = True, report=None, skip_existing: bool = False, choose=None):
    """Upscale image files, folders (recursively, keeping the tree) and globs into ``output``.

    ``output`` is a folder, or a file name when ``inputs`` is one file. ``ext``: ``"same"`` or an
    output format (png, jpg, webp, tif, bmp); ``suffix`` is added to each stem. Files are read,
    upscaled and written by :mod:`lightsr.pipeline` (decoding and encoding overlap the model);
    an existing output is never replaced unless ``overwrite``; with ``skip_existing`` one that is a
    complete image is skipped (``Stats.skipped``: resuming an interrupted folder) and an incomplete
    one is reported as failed and left alone. ``output`` ending in a path separator is always a
    folder. One bad file is reported through
    ``report`` (a one-argument callable, default: stderr) and skipped. Returns the
    :class:`~lightsr.pipeline.Stats`, ``failed`` counting inputs that were not found too. Problems
    with the whole request (no inputs, an unwritable folder, two inputs that would write one file)
    raise :class:`LightSRError` before any work; SIGTERM raises
    :class:`~lightsr.pipeline.Terminated` with only complete files left. ``choose``: a callable
    ``ImageData -> Upscaler`` picking the upscaler per file (:class:`lightsr.photo.ByInput`: photo
    weights for compressed input); default ``up`` for every file (all must share ``up``'s scale).
    """
    from .imageio import FORMATS, PNG_LEVEL, check_png_level, read, write_image
    from .pipeline import SKIP, Job, run as run_files, sigterm_as_exception

    report = report or (lambda msg: print(f"lightsr: error: {msg}", file=sys.stderr))
    ext = (ext or "same").lower().lstrip(".")
    if ext != "same" and "." + ext not in FORMATS:
        raise LightSRError(f"output format {ext!r}: use png, jpg, webp, tif, bmp or same")
    png_level = check_png_level(PNG_LEVEL if png_level is None else png_level)
    if not 1 <= quality <= 100:
        raise LightSRError(f"quality {quality}: use 1 to 100 (JPEG/WebP)")
    inputs = [str(i) for i in inputs]
    if not inputs:
        raise LightSRError("no input images: give image files, folders or globs")
    if overwrite and skip_existing:
        raise LightSRError("--overwrite and --skip-existing exclude each other: replace existing outputs, or keep them")
    files, errors = collect_inputs(inputs)
    out = Path(output)
    as_folder = str(output).endswith(tuple(sep for sep in (os.sep, os.altsep, "/") if sep))  # run.v2/
    single = len(inputs) == 1 and Path(inputs[0]).is_file() and not as_folder
    if single and out.suffix.lower() not in FORMATS and not out.is_dir() and out.suffix:
        raise LightSRError(f"output {out}: unknown image extension {out.suffix!r} "
                           f"(use {', '.join(sorted(set(FORMATS)))} or a folder)")
    _check_out_root(out if not (single and out.suffix) else out.parent)
    if not files:
        raise LightSRError("no input images" + (f" ({'; '.join(errors)})" if errors else ""))
    for e in errors:
        report(e)
    jobs = [Job(i, src, output_path(src, rel, out, single, suffix, ext)) for i, (src, rel) in enumerate(files)]
    seen: dict[Path, Path] = {}
    for job in jobs:  # x.png and x.jpg -> x.png twice: refuse before any work, whatever overwrite says
        key = job.dst.resolve()
        if key in seen:
            raise LightSRError(f"{seen[key]} and {job.src} would both be written to {job.dst}; "
                               "rename one of them or write them to separate folders")
        seen[key] = job.src
    if ext == "same":  # a format lightsr reads but does not write (GIF, PPM, TGA ...): said once
        changed: dict[str, int] = {}
        for job in jobs:
            named = single and job.dst == out  # -o x.png: the user chose the format
            if not named and job.src.suffix.lower() not in FORMATS and job.dst.suffix.lower() != job.src.suffix.lower():
                kind = job.src.suffix.lower().lstrip(".").upper() or "?"
                changed[kind] = changed.get(kind, 0) + 1
        for kind, n in changed.items():
            _note(f"note: {n} {kind} input{'s' if n != 1 else ''} will be written as PNG (lightsr does not "
                  f"write {kind}; --ext picks another format)")

    def load_one(job: Job):
        if job.dst.resolve() == job.src.resolve():
            raise LightSRError(f"output {job.dst} is the input file; choose another -o folder or a --suffix")
        if job.dst.exists() and not overwrite:
            if not skip_existing:
                raise LightSRError(f"{job.dst} exists; refusing to overwrite it (pass --overwrite to replace it, "
                                   "or --skip-existing to keep finished outputs and do the rest)")
            if job.dst.is_file() and _complete_image(job.dst):
                return SKIP
            raise LightSRError(f"{job.dst} exists but is not a complete image (cut off by an interrupted run?); "
                               "delete it or pass --overwrite to redo it")
        return read(job.src)

    def output_bytes(img) -> int:
        h, w, c = img.array.shape
        try:
            oh, ow = up.output_size(h, w, up.outscale)
        except Exception:  # noqa: BLE001 - only an estimate for the queue's memory bound
            return 0
        return oh * ow * c * img.array.itemsize

    def save(job: Job, img, result) -> float:
        write_image(job.dst, result, like=img, overwrite=overwrite, quality=quality, png_level=png_level)
        return result.shape[0] * result.shape[1] / 1e6

    bar = _bar(len(files), "img", progress and len(files) > 1, leave=True)
    try:
        with sigterm_as_exception():
            compute = (lambda img: up(img.array)) if choose is None else (lambda img: choose(img)(img.array))
            stats = run_files(jobs, load_one, compute, save, output_bytes, _note, bar)
    finally:
        bar.close()
    stats.failed += len(errors)
    return stats
