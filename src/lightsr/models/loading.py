"""Checkpoints to models: the :class:`Descriptor` of a checkpoint or a named model, and one resolver.

``detect(state_dict) -> Descriptor`` and ``describe(path) -> Descriptor`` say which registered
architecture, scale and options a checkpoint is for, read from its tensor names and shapes only (the
detectors and the rules are in :mod:`lightsr.models.detect`); the input traits (window multiple,
minimum size, exact tiling) come from the model's registration (:class:`lightsr.models.registry.Traits`).

``build(name, weights, scale, options) -> Descriptor`` builds the model for a registered name, a
checkpoint, or both, loads the weights strictly and hands the module over in ``descriptor.module``;
the front door every command uses, which also finds the default model and shipped or published weights,
is :func:`lightsr.models.resolve.resolve`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..checkpoint import check_state_dict, read_metadata, read_state_dict
from ..errors import LightSRError
from . import detect as detection
from .detect import PREFER
from .registry import create_model, get_entry, pick_device

__all__ = ["Descriptor", "detect", "describe", "describe_module", "build", "forward_at", "is_path",
           "read_any_state_dict", "PREFER"]


@dataclass
class Descriptor:
    """What a checkpoint (or a named model) is: enough to build it, run it and tile it.

    ``options`` are the builder keyword arguments that differ from the defaults (``create_model(model,
    scale, **options)`` rebuilds it); ``details`` the hyper-parameters read from the shapes."""

    model: str
    scale: int | tuple[int, ...] | None  # a tuple: one network with several heads (CARN-M); None: continuous
    options: dict = field(default_factory=dict)
    params: int = 0
    family: str = ""
    details: dict = field(default_factory=dict)
    window_multiple: int = 1
    min_size: int = 1
    tiling_exact: bool = False
    bf16: bool = True  # bf16 costs at most 0.02 dB (registry flag); fp32 always works
    source: str | None = None  # the weights file
    detected: bool = True  # read from the checkpoint's keys and shapes (False: named by the caller)
    # where the weights came from: "file" (given), "shipped", "published" (fetched), None (random init)
    origin: str | None = None
    kind: str = "clean"  # which shipped weights: "clean" (bicubic-trained) or "photo" (lightsr.photo)
    widths: tuple = ()  # AnySR: the width-sliced sub-networks' widths (any-resource inference); else empty
    module: nn.Module | None = field(default=None, repr=False, compare=False)  # the built model, eval mode

    def run(self, x: torch.Tensor, scale: float | None = None) -> torch.Tensor:
        """The model on ``x`` (B, 3, h, w), any h and w (the model pads to its window multiple and
        minimum size inside and crops back): at ``scale`` for a continuous model, its own otherwise."""
        return forward_at(self.module, scale)(x)

    @property
    def continuous(self) -> bool:
        return self.scale is None

    @property
    def multi_scale(self) -> bool:
        return isinstance(self.scale, tuple)

    def run_scale(self, scale: float | None = None) -> float | None:
        """The scale to run at: ``scale`` checked against the checkpoint's, or the checkpoint's own."""
        if self.continuous:
            return scale
        have = self.scale if isinstance(self.scale, tuple) else (self.scale,)
        if scale is None:
            if len(have) > 1:
                raise LightSRError(f"{self.source or self.model} is one {self.model} network with "
                                   f"{', '.join(f'x{s}' for s in have)} heads; pass --scale")
            return have[0]
        if float(scale) not in have:
            raise LightSRError(f"{self.source or self.model} is a {self.model} checkpoint for "
                               f"{', '.join(f'x{s}' for s in have)}, not x{scale:g}")
        return int(scale)

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "module"}
        out["scale"] = list(self.scale) if isinstance(self.scale, tuple) else self.scale
        out["continuous"] = self.continuous
        return out

    def summary(self) -> str:
        scale = ("any (continuous)" if self.continuous else
                 ", ".join(f"x{s}" for s in self.scale) if isinstance(self.scale, tuple) else f"x{self.scale}")
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items()) or "(defaults)"
        lines = [f"model:        {self.model}" + (f"  ({self.family})" if self.family else ""),
                 f"scale:        {scale}",
                 f"options:      {opts}",
                 f"shapes:       " + (", ".join(f"{k}={v}" for k, v in self.details.items()) or "-"),
                 f"parameters:   {self.params:,}",
                 f"input:        any size" + (f"; padded inside to a multiple of {self.window_multiple}"
                                                  if self.window_multiple > 1 else "")
                 + (f"; padded inside to at least {self.min_size} px" if self.min_size > 1 else ""),
                 "tiling:       " + ("exact (local CNN)" if self.tiling_exact
                                     else "approximate (global or windowed context)"),
                 "precision:    " + ("fp32, bf16 (within 0.02 dB)" if self.bf16
                                     else "fp32 (bf16 costs more than 0.02 dB)"),
                 f"weights:      {self.source or '-'}" + ("  (architecture read from keys and shapes)"
                                                         if self.detected and self.source else "")]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------


def read_any_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """The flat ``{name: tensor}`` dict of any supported checkpoint layout and its lightsr metadata.

    :func:`lightsr.checkpoint.read_state_dict` does the reading (``torch.load(weights_only=True)`` or
    safetensors, so no pickled code runs): tensors at the top level or under ``params_ema`` (BasicSR's
    EMA weights, preferred as its test scripts do), ``params``, ``state_dict``, ``model``, ``net``,
    ``generator``, LIIF's ``model`` -> ``sd``; a ``module.`` prefix dropped."""
    sd = read_state_dict(path)
    try:
        meta = read_metadata(path)
    except Exception:  # noqa: BLE001  (metadata is only a tie-break)
        meta = {}
    return sd, meta


def detect(state_dict: Mapping[str, Any], *, source: str | None = None, hint: str | None = None) -> Descriptor:
    """The :class:`Descriptor` of a state dict, from its keys and tensor shapes only
    (:func:`lightsr.models.detect.detect`).

    ``state_dict``: ``{name: tensor}`` (any device, meta included) or ``{name: shape}``. ``hint``: a model
    name (lightsr's own metadata) used only to choose between candidates that fit exactly. Raises
    :class:`LightSRError` with one line when no registered architecture fits, or more than one does."""
    found = detection.detect(state_dict, source=source, hint=hint)
    return _descriptor(found.model, found.scale, found.options, found.params, found.details, source, detected=True)


def _descriptor(name: str, scale, opts: dict, params: int, details: dict, source: str | None,
                detected: bool) -> Descriptor:
    entry = get_entry(name)
    traits = entry.input_traits(opts)  # from the model's registration (registry.Traits)
    return Descriptor(model=entry.name, scale=scale, options=dict(opts), params=int(params), family=entry.family,
                      details=dict(details), window_multiple=traits.window_multiple, min_size=traits.min_size,
                      tiling_exact=traits.tiling_exact,
                      bf16=bool(getattr(entry, "bf16", True)), source=source, detected=detected)


def describe(path: str | os.PathLike) -> Descriptor:
    """:func:`detect` on a checkpoint file (lightsr's metadata, if any, only breaks exact ties)."""
    sd, meta = read_any_state_dict(path)
    hint = meta.get("model") if isinstance(meta.get("model"), str) else None
    return detect(sd, source=str(path), hint=hint)


# ---------------------------------------------------------------------------------------------
# the resolver
# ---------------------------------------------------------------------------------------------

_CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


def is_path(spec) -> bool:
    """Whether ``spec`` names a checkpoint file (a Path, a checkpoint suffix, a file, a path separator)
    rather than a registered model."""
    if isinstance(spec, Path):
        return True
    return Path(spec).suffix.lower() in _CHECKPOINT_SUFFIXES or Path(spec).is_file() or os.sep in str(spec)


def forward_at(model: nn.Module, scale: float | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The one way to run a module at a scale (the registry's conventions): ``model(x, scale=s)`` for a
    continuous (arbitrary-scale) model, ``model(x)`` for a fixed-scale one (its scale is built in)."""
    if getattr(model, "continuous", False):
        return lambda x: model(x, scale=scale)
    return model


def describe_module(module: nn.Module) -> Descriptor:
    """The :class:`Descriptor` of a module that is not from the registry but follows its conventions
    (``module.scale``; ``module.continuous`` for an arbitrary-scale one): cautious traits, bf16 allowed."""
    continuous = bool(getattr(module, "continuous", False))
    scale = None if continuous else getattr(module, "scale", None)
    if not continuous and not isinstance(scale, (int, float)):
        raise LightSRError(f"model {type(module).__name__} has no integer .scale attribute")
    return Descriptor(model=type(module).__name__, scale=scale, params=sum(p.numel() for p in module.parameters()),
                      detected=False, module=module)


def build(name: str | None, weights: str | os.PathLike | None = None, scale: float | None = None,
          options: dict | None = None, device: str | torch.device | None = "cpu") -> Descriptor:
    """The model ``name`` (or, with ``name`` None, the one ``weights`` is for) built with ``options``, its
    ``weights`` loaded strictly, in eval mode on ``device``: a :class:`Descriptor` with ``module`` set.

    With a checkpoint and no name, the architecture, scale and weight-shaping options are read from
    its keys and shapes (:func:`detect`); a name given with a checkpoint is checked against it.
    ``scale``: required for a multi-scale checkpoint (CARN-M); for a continuous model it is only the
    default forward scale. ``options``: builder options (``--opt``), on top of the detected ones.
    No weights: the random initialisation (``descriptor.origin`` None). The front door that also
    finds shipped and published weights is :func:`lightsr.models.resolve.resolve`."""
    options = dict(options or {})
    if name is None and weights is None:
        raise LightSRError("name a model or a checkpoint to load")
    name = None if name is None else get_entry(str(name)).name
    sd, desc = None, None
    if weights is not None:
        sd, meta = read_any_state_dict(weights)
        hint = name or (meta.get("model") if isinstance(meta.get("model"), str) else None)
        try:
            desc = detect(sd, source=str(weights), hint=hint)
        except LightSRError:
            if name is None:
                raise
            desc = None  # a named model: its strict load below says what does not fit
        if desc is not None and name is not None and desc.model != name:
            raise LightSRError(f"{weights} holds {desc.model} weights, not {name}; leave out the model name "
                               f"to load it as {desc.model}")
        if desc is not None:
            name = desc.model
            run = desc.run_scale(scale)
            desc.options = {**desc.options, **options}
            options = desc.options
            scale = run
    entry = get_entry(name)
    model = create_model(name, scale, **options)
    if sd is not None:
        what = f"{entry.name}" + (f" x{model.scale:g}" if entry.scales is not None else "")
        model.load_state_dict(check_state_dict(model, sd, source=f"checkpoint {weights}", what=what), strict=False)
    params = sum(p.numel() for p in model.parameters())
    if desc is None:
        desc = _descriptor(entry.name, None if entry.scales is None else model.scale, options, params, {},
                           None if weights is None else str(weights), detected=False)
    desc.params, desc.origin = params, None if weights is None else "file"
    if desc.multi_scale:  # one head of a multi-head checkpoint was built: the descriptor is of that model
        desc.scale = model.scale
    desc.widths = tuple(getattr(model, "widths", None) or ())
    desc.module = model.eval().to(pick_device(device))
    return desc
