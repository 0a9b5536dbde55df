"""The user front end: ``lightsr.load(...)`` / ``lightsr.upscale(...)``, the default model, and the
checks ``lightsr upscale`` makes before any model loads (output scale, device).

* :func:`load` returns a :class:`lightsr.upscaler.Upscaler` (the tiling engine): call it on a numpy
  array, a PIL image or a float tensor in [0, 1]; you get the same kind back.
* Weights: a registered name uses the weights shipped for it (``pretrained`` in the registry, files in
  ``lightsr/weights/``), else its published official checkpoint (``published``: downloaded into the cache,
  verified and converted by :mod:`lightsr.hub`), unless ``weights=`` is given; checkpoints are read
  without executing pickled code.
* Folders of files: :func:`lightsr.batch.upscale_files`.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from .errors import LightSRError
from .layers.coords import norm_scale
from .upscaler import Upscaler

SAMPLE = Path(__file__).resolve().parent / "assets" / "sample.png"  # `lightsr upscale --sample` (assets/SAMPLE.md)


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


def _run_outscale(desc, scale, outscale):
    """The output scale to run: a continuous model's ``scale`` (``outscale`` is its older spelling,
    the two must agree); a fixed-scale model keeps ``outscale``."""
    if not desc.continuous or scale is None:
        return outscale
    if outscale is not None and norm_scale(outscale) != scale:
        raise LightSRError(f"--scale and --outscale differ for continuous-scale model {desc.model}; give --scale only")
    return scale


def load(name_or_path: str | os.PathLike | None = None, scale: int | None = None, device: str | None = None,
         weights: str | os.PathLike | None = None, *, precision: str = "auto", compile: bool = False,
         tile: int | None = None, tile_pad: int = 16,
         self_ensemble: bool = False, max_memory: float | None = None, options: dict | None = None,
         progress: bool = False, outscale: float | None = None, kind: str = "clean",
         backend: str = "auto", job: float | None = None) -> Upscaler:
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
    ``backend``: ``"auto"`` (OpenVINO where it was measured faster and is installed, else PyTorch;
    PyTorch under ``max_memory``, whose budget is measured on PyTorch), ``"torch"`` or ``"openvino"``
    (:mod:`lightsr.backends`). ``job``: the work ahead in input megapixels, counted by
    :func:`lightsr.backends.job_mpx` (``lightsr upscale FOLDER`` passes it); ``auto`` runs OpenVINO for
    a model whose setup only a large job repays (RLFN-S) when the job is that large (None: one image).
    ``kind``: which shipped weights a name (or the default model) uses: ``"clean"`` (trained on
    bicubic LR: clean, lossless input) or ``"photo"`` (trained on blurred, noisy, JPEG-compressed LR:
    photos as phones and the web save them; :mod:`lightsr.photo`).
    Raises :class:`LightSRError` with one line for anything missing or mismatched. The returned
    upscaler's ``descriptor`` says what was loaded (:class:`lightsr.models.loading.Descriptor`), its
    ``kind`` which weights.
    """
    from .models import pick_device
    from .models.resolve import resolve
    from .backends import choose_backend
    from .precision import choose as choose_precision

    check_outscale(outscale)
    check_device(device)
    dev = pick_device(device)
    choose_precision(precision, dev)  # an unknown precision or fp16 on a CPU fails before loading
    scale = norm_scale(scale)
    desc = resolve(name_or_path, weights, scale, options, kind=kind, outscale=outscale)
    if max_memory is not None:  # the budget is measured on PyTorch's calls (lightsr.memory): auto runs PyTorch
        if (backend or "auto").lower() == "openvino":
            raise LightSRError("--max-memory budgets PyTorch's memory (measured on its tiles); the openvino backend "
                               "has no budget: drop one of the two (or use --tile N with openvino)")
        backend = "torch"
    choose_backend(backend, desc, dev, precision)  # an impossible backend fails with one line, before any image
    up = Upscaler(desc, dev, precision, tile=tile, tile_pad=tile_pad, self_ensemble=self_ensemble,
                  max_memory=max_memory, progress=progress, outscale=_run_outscale(desc, scale, outscale),
                  compile=compile, backend=backend, job=job)
    return up


def upscale(image, model: str | os.PathLike | Upscaler | None = None, *, scale: int | None = None,
            outscale: float | None = None, device: str | None = None, weights: str | None = None, **kw):
    """One-shot: ``lightsr.upscale(img, "imdn", weights="imdn_x4.pth")``; same kind of image back.

    For many images build the upscaler once with :func:`load` and call it.
    """
    up = model if isinstance(model, Upscaler) else load(model, scale=scale, device=device, weights=weights,
                                                        outscale=outscale, **kw)
    return up(image, outscale=outscale)
