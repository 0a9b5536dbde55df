"""Run a model fast: precision, memory format and compilation decided once (``Runner``).

Every consumer that runs a model on images (the upscaler, ``evaluate``, ``profile``'s latency) calls
a :class:`Runner` instead of the module: ``Runner(model, device, precision="auto")(x, scale)`` takes a
float32 (B, 3, h, w) batch and returns float32, whatever ran inside:

* precision: :func:`lightsr.precision.choose` (``auto`` = bf16 where native and the model's
  registry entry allows it), applied with autocast, so weights stay float32 and reductions, softmax
  and normalisation statistics stay in float32;
* memory format: channels_last for convolutional models on CPU (oneDNN's fast kernels; bf16 has
  no fast path without it) and for reduced precision on CUDA;
* ``compile=True``: ``torch.compile`` of the forward with inductor's freezing; any failure at compile or first run (no C++
  compiler, an unsupported op) prints one line and the runner continues eagerly.
"""
from __future__ import annotations

import sys
from typing import Callable

import torch
from torch import nn

from . import precision as P
from .models.loading import Descriptor, describe_module


def ensemble_x8(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """x8 geometric self-ensemble: mean of ``T^-1(fn(T(x)))`` over the 4 rotations x 2 flips."""
    out = None
    for k in range(4):
        for flip in (False, True):
            t = torch.rot90(x, k, dims=(-2, -1))
            t = t.flip(-1) if flip else t
            y = fn(t)
            y = y.flip(-1) if flip else y
            y = torch.rot90(y, -k, dims=(-2, -1))
            out = y if out is None else out + y
    return out / 8


class Runner:
    """A model (a :class:`~lightsr.models.loading.Descriptor` from ``resolve``, or a module following the
    registry's conventions) in eval mode on ``device`` with a chosen precision; call ``runner(x, scale=None)``.
    (:func:`lightsr.backends.make_runner` picks between this and OpenVINO.)"""

    backend = "torch"

    def __init__(self, model: nn.Module | Descriptor, device: torch.device | str = "cpu", precision: str = "fp32",
                 compile: bool = False, channels_last: bool | None = None):
        desc = model if isinstance(model, Descriptor) else describe_module(model)
        self.device = torch.device(device)
        self.model = desc.module.eval().to(self.device)
        self.continuous = desc.continuous
        # auto: bf16 only where the model's registry entry says it costs at most 0.02 dB (desc.bf16)
        self.precision = P.choose(precision, self.device, desc.bf16)
        if channels_last is None:
            self.channels_last = P.prepare(self.model, self.device, self.precision)
        else:
            self.channels_last = bool(channels_last)
            if self.channels_last:
                P.to_channels_last(self.model)
        self.compiled = None
        if compile:
            self.compiled = self._compile()

    def _compile(self):
        try:
            # freezing: weights folded as constants and pre-packed for oneDNN (inference only, which
            # a Runner is): 1.3x over eager bf16 on the CNNs of results/runtimes.md
            return torch.compile(self.model, dynamic=None, options={"freezing": True})
        except Exception as exc:  # noqa: BLE001 - any failure means: run eagerly
            _note_fallback(exc)
            return None

    def __call__(self, x: torch.Tensor, scale: float | None = None) -> torch.Tensor:
        inside = torch.is_inference_mode_enabled()
        with torch.inference_mode():
            x = P.to_format(x.to(self.device, torch.float32), self.channels_last)
            with P.autocast(self.device, self.precision):
                y = self._run(x, scale).float()
        # a normal tensor for callers outside inference mode (they clamp and accumulate in place)
        return y if inside else y.clone()

    def _run(self, x: torch.Tensor, scale: float | None) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self._call(self.compiled, x, scale)
            except Exception as exc:  # noqa: BLE001 - compilation happens at the first call
                _note_fallback(exc)
                self.compiled = None
        return self._call(self.model, x, scale)

    def _call(self, fn, x: torch.Tensor, scale: float | None) -> torch.Tensor:
        """A continuous model takes the scale with every call; a fixed-scale one has it built in."""
        return fn(x, scale=scale) if self.continuous else fn(x)


def _note_fallback(exc: Exception) -> None:
    msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    print(f"lightsr: torch.compile unavailable ({type(exc).__name__}: {msg}); running eagerly",
          file=sys.stderr)
