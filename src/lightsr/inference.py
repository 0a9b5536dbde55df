"""Run a model fast: precision, memory format and compilation decided once (``Runner``).

Every consumer that runs a model on images (the upscaler, ``evaluate``, ``profile``'s latency) calls
a :class:`Runner` instead of the module: ``Runner(model, device, precision="auto")(x, scale)`` takes a
float32 (B, 3, h, w) batch and returns float32, whatever ran inside:

* precision: :func:`lightsr.precision.resolve` (``auto`` = bf16 where native and the model's
  registry entry allows it), applied with autocast, so weights stay float32 and reductions, softmax
  and normalisation statistics stay in float32;
* memory format: channels_last for convolutional models on CPU (oneDNN's fast kernels; bf16 has
  no fast path without it) and for reduced precision on CUDA;
* ``compile=True``: ``torch.compile`` of the forward; any failure at compile or first run (no C++
  compiler, an unsupported op) prints one line and the runner continues eagerly.
"""
from __future__ import annotations

import sys
from typing import Callable

import torch
from torch import nn

from . import precision as P


def bf16_allowed(model: nn.Module) -> bool:
    """The registry's verdict on the model's measured bf16 cost (True for unregistered modules)."""
    name = getattr(model, "registry_name", None)
    if not name:
        return True
    from .models import get_entry

    try:
        return bool(get_entry(name).bf16)
    except Exception:  # noqa: BLE001 - an unknown name: no verdict
        return True


def forward_at(model: nn.Module, scale: float | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The one way to run a model at a scale: ``model(x, scale=s)`` for a continuous (arbitrary-scale)
    model, ``model(x)`` for a fixed-scale one (its scale is built in)."""
    if getattr(model, "continuous", False):
        return lambda x: model(x, scale=scale)
    return model


class Runner:
    """``model`` in eval mode on ``device`` with a resolved precision; call ``runner(x, scale=None)``."""

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu", precision: str = "fp32",
                 compile: bool = False, channels_last: bool | None = None):
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.precision = P.resolve(precision, self.device, bf16_allowed(model))
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
            return torch.compile(self.model, dynamic=None)
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
                return forward_at(self.compiled, scale)(x) if self.continuous else self.compiled(x)
            except Exception as exc:  # noqa: BLE001 - compilation happens at the first call
                _note_fallback(exc)
                self.compiled = None
        return forward_at(self.model, scale)(x)

    @property
    def continuous(self) -> bool:
        return bool(getattr(self.model, "continuous", False))


def _note_fallback(exc: Exception) -> None:
    msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    print(f"lightsr: torch.compile unavailable ({type(exc).__name__}: {msg}); running eagerly",
          file=sys.stderr)
