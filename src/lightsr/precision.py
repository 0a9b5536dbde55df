"""Numeric precision and memory format: which dtype a model runs in, decided once, at run time.

``precision`` is one of

* ``"fp32"``: float32 everywhere (exact reproduction; ``eval``'s default);
* ``"bf16"``: bfloat16 autocast (matmuls and convolutions in bf16, reductions and the loss in fp32);
* ``"fp16"``: float16 autocast, CUDA only;
* ``"auto"``: bf16 where the device does it natively *and* the model's measured bf16 cost is within
  0.02 dB on Set5 and Set14 (the registry's ``bf16`` flag, set from ``benchmarks/fast_path.py``);
  fp32 everywhere else.

"Natively" means: a CUDA GPU that reports bf16 support, or a CPU with AVX512-BF16 or AMX (oneDNN's
fast bf16 kernels). On other CPUs bf16 is emulated and slower than fp32. The environment variable
``LIGHTSR_NATIVE_BF16=0`` (or ``1``) overrides the CPU detection, for tests and for users who know
better.

On CPU, bf16 is fast only in channels_last memory format (oneDNN's blocked kernels); in contiguous
NCHW it falls back to slow reference kernels. :func:`prepare` therefore puts convolutional models in
channels_last whenever it helps: with bf16 always, and in fp32 too (about 1.5x on AVX-512 CPUs,
outputs within 1e-5).
"""
from __future__ import annotations

import contextlib
import os

import torch
from torch import nn

from .errors import LightSRError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Does ``device`` run bf16 matrix work natively (faster than fp32)?"""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    forced = os.environ.get("LIGHTSR_NATIVE_BF16")
    if forced is not None and forced.strip() != "":
        return forced.strip().lower() not in ("0", "false", "no", "off")
    if not torch.backends.mkldnn.is_available():
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def choose(precision: str | None, device: torch.device | str = "cpu", bf16_ok: bool = True) -> str:
    """``precision`` as asked -> the one that runs (``"fp32"``, ``"bf16"`` or ``"fp16"``).

    ``bf16_ok``: the model's measured bf16 cost is acceptable (only consulted by ``"auto"``)."""
    p = (precision or "auto").lower()
    if p not in PRECISIONS:
        raise LightSRError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if p == "fp16" and device.type != "cuda":
        raise LightSRError("precision fp16 needs a CUDA GPU; on this device use bf16 or fp32")
    if p == "auto":
        return "bf16" if bf16_ok and native_bf16(device) else "fp32"
    return p


def autocast(device: torch.device | str, precision: str):
    """The autocast context of a resolved precision (a no-op for fp32)."""
    device = torch.device(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def use_channels_last(model: nn.Module, device: torch.device | str, precision: str) -> bool:
    """channels_last on CPU for any model with 2-D convolutions; on CUDA only for reduced precision."""
    device = torch.device(device)
    if not has_conv(model):
        return False
    return device.type == "cpu" or precision != "fp32"


def prepare(model: nn.Module, device: torch.device | str, precision: str) -> bool:
    """Move ``model``'s parameters to its fast memory format in place; returns True for channels_last.

    Only 4-D tensors (2-D convolution weights) change format (:func:`to_channels_last`):
    ``Module.to(memory_format=...)`` refuses a model with 5-D weights (ArbSR's scale-aware filter
    banks), which keep theirs."""
    if not use_channels_last(model, device, precision):
        return False
    to_channels_last(model)
    return True


def to_channels_last(model: nn.Module) -> nn.Module:
    """Every 4-D parameter and buffer of ``model`` in channels_last, in place; others unchanged."""
    with torch.no_grad():
        for t in (*model.parameters(), *model.buffers()):
            if t.dim() == 4:
                t.data = t.data.contiguous(memory_format=torch.channels_last)
    return model


def to_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """An NCHW batch in the model's memory format."""
    if channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
