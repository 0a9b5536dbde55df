"""A small model registry: names -> typed builder functions.

Every architecture file in ``lightsr/models`` registers its builders with :func:`register_model`.
Model files are discovered automatically (every module in this package is imported on first use),
so adding a model means adding one file.

Conventions every registered model follows
------------------------------------------
* ``forward(x)`` takes RGB in [0, 1], shape (B, 3, h, w), any h and w (models pad internally and
  crop back), and returns (B, 3, s*h, s*w), not clamped.
* ``model.scale`` is the integer up-scaling factor of fixed-scale models.
* Continuous-scale (arbitrary-scale) models set ``model.continuous = True`` and take
  ``forward(x, scale=s)`` where ``s`` is a float or an (s_h, s_w) pair; the output is
  (round(h*s_h), round(w*s_w)). Their builders are registered with ``scales=None``; a builder that
  has a ``scale`` parameter receives it as the default scale used when forward is given none.
* State-dict keys follow the official code, so official checkpoints load strictly.
* Every fixed-scale registration states its input :class:`Traits` (``traits=``); registering one
  without them raises. Continuous models default to ``Traits()`` (their implicit heads take
  coordinates relative to the whole image, so tiling is approximate).
* Every model file registers a detector (``lightsr.models.detect.detector``) that recovers its models
  from their own state dicts (tests/test_detect.py checks each registered model).
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import LightSRError


@dataclass(frozen=True)
class Published:
    """An official checkpoint lightsr fetches by name (:mod:`lightsr.hub`): a raw URL at a full commit
    hash, the sha256 of that file, the licence of the repository it comes from, and the figures it
    reproduces here (``{"Set5": (Y-PSNR, SSIM), ...}``, standard protocol; empty when none is measured)."""

    url: str
    sha256: str
    licence: str
    figures: dict[str, tuple[float, float]] = field(default_factory=dict)
    note: str = ""  # how the figures were obtained, when it matters (routing, no official target ...)


@dataclass(frozen=True)
class Traits:
    """How a model treats its input: what the descriptor (:class:`lightsr.models.loading.Descriptor`)
    reports and what tiling and padding rely on.

    * ``window_multiple``: the model pads its input to this multiple inside (so tiles that are
      multiples avoid the padding);
    * ``min_size``: smaller inputs are padded inside (ESA's strided conv + 7x7 pooling);
    * ``tiling_exact``: a purely local CNN, whose tiles with enough context padding reproduce the
      whole-image output; channel attention, ESA's pooling, window attention, state-space scans and
      implicit heads (their coordinates are relative to the whole image) make tiling approximate.
    """

    window_multiple: int = 1
    min_size: int = 1
    tiling_exact: bool = False


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    scales: tuple[float, ...] | None  # None: continuous (any scale)
    paper: str = ""
    family: str = ""
    # scale -> file name under lightsr/weights/ (weights trained by this project and shipped)
    pretrained: dict[int, str] = field(default_factory=dict)
    # bf16 autocast costs at most 0.02 dB on Set5 and Set14 (measured by benchmarks/fast_path.py
    # where a checkpoint exists): ``precision="auto"`` may pick bf16 on native hardware
    bf16: bool = True
    # scale -> official checkpoint downloadable by name (lightsr.hub); shipped weights come first
    published: dict[int, Published] = field(default_factory=dict)
    # scale -> file name under lightsr/weights/ of the *photo* weights: trained on blurred, noisy,
    # JPEG-compressed LR (recipe ``photo``), used for compressed input (lightsr.photo)
    photo: dict[int, str] = field(default_factory=dict)
    # input traits: a Traits, or a callable options -> Traits (C2D: its largest window); input_traits()
    traits: Traits | Callable[[dict], Traits] | None = None  # None: not stated (cautious Traits())
    # warm start from a related network's weights (lightsr.checkpoint.warm_start, ``train --init``):
    # ``key_filter`` maps its names onto this model's (timm's checkpoint_filter_fn; AnySR from its
    # original), ``fresh`` names the parameters it adds, which keep their initialisation
    key_filter: Callable[[dict], dict] | None = None
    fresh: tuple[str, ...] = ()

    def input_traits(self, options: dict | None = None) -> Traits:
        """The :class:`Traits` of this model built with ``options`` (builder keyword arguments)."""
        if self.traits is None:
            return Traits()
        return self.traits if isinstance(self.traits, Traits) else self.traits(dict(options or {}))

    def shipped_weights(self, scale: float | None, kind: str = "clean") -> Path | None:
        """Path of the weights shipped for ``scale``, or None. ``kind``: ``"clean"`` (trained on
        bicubic LR, the benchmark protocol) or ``"photo"`` (trained on compressed, degraded LR)."""
        table = {"clean": self.pretrained, "photo": self.photo}[kind]
        name = table.get(int(scale)) if scale is not None and float(scale) == int(scale) else None
        path = WEIGHTS_DIR / name if name else None
        return path if path is not None and path.is_file() else None

    @property
    def module(self) -> str:
        return self.builder.__module__.rsplit(".", 1)[-1]

    @property
    def doc(self) -> str:
        return (self.builder.__doc__ or "").strip().splitlines()[0] if self.builder.__doc__ else ""


WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"  # weights shipped in the package

_REGISTRY: dict[str, ModelEntry] = {}
_DISCOVERED = False


def register_model(
    name: str,
    *,
    scales: tuple[float, ...] | None = (2, 3, 4),
    paper: str = "",
    family: str = "",
    pretrained: dict[int, str] | None = None,
    bf16: bool = True,
    published: dict[int, Published] | None = None,
    photo: dict[int, str] | None = None,
    traits: Traits | Callable[[dict], Traits] | None = None,
    key_filter: Callable[[dict], dict] | None = None,
    fresh: tuple[str, ...] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``builder(scale=..., **options) -> nn.Module`` under ``name``.

    ``traits``: the model's input :class:`Traits` (or ``options -> Traits``); ``Traits()`` for a
    continuous one (``scales=None``) and, cautiously, for a fixed-scale model that does not state them. ``key_filter``,
    ``fresh``: how the model warm-starts from a related network (:class:`ModelEntry`)."""
    if traits is None and scales is None:
        traits = Traits()  # continuous: implicit heads read whole-image coordinates, tiling approximate
    # a fixed-scale model without traits (a user's own) runs with the cautious Traits(); every lightsr
    # model states its own (tests/test_registry.py fails otherwise)
    if traits is not None and not (isinstance(traits, Traits) or callable(traits)):
        raise ValueError(f"model {name!r}: traits must be a Traits or a callable options -> Traits")

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError(f"model name {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, builder, scales, paper, family, dict(pretrained or {}), bf16,
                                     dict(published or {}), dict(photo or {}), traits, key_filter, tuple(fresh))
        return builder

    return deco


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    pkg = importlib.import_module("lightsr.models")
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "registry" and not info.name.startswith("_"):
            importlib.import_module(f"lightsr.models.{info.name}")


def get_entry(name: str) -> ModelEntry:
    _discover()
    key = name.lower().replace("-", "_")
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `lightsr list-models` lists them"
        raise LightSRError(f"unknown model {name!r}{hint}")
    return _REGISTRY[key]


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, optionally filtered by a substring."""
    _discover()
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or pattern.lower() in n]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> cuda when available, else cpu; a clear error for an unavailable device."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise LightSRError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LightSRError(f"device {device} requested but no CUDA GPU is available")
    return dev


def create_model(name: str, scale: float | None = None, **options: Any) -> nn.Module:
    """Build a registered model. ``scale`` defaults to 4 (or the entry's only scale)."""
    entry = get_entry(name)
    if entry.scales is not None:
        if scale is None:
            scale = 4 if 4 in entry.scales else entry.scales[-1]
        if float(scale) != int(scale) or int(scale) not in entry.scales:
            allowed = ", ".join(f"x{s:g}" for s in entry.scales)
            raise LightSRError(f"model {entry.name} supports scales {allowed}, not x{scale:g}")
        scale = int(scale)
    elif "scale" not in inspect.signature(entry.builder).parameters:
        scale = None  # a continuous builder without a default scale: the scale is a forward argument
    try:
        if scale is None:
            return entry.builder(**options)
        return entry.builder(scale=scale, **options)
    except TypeError as exc:  # an unknown option
        raise LightSRError(f"model {entry.name}: {exc}") from None
