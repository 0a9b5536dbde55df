"""Which architecture a checkpoint is for, read from its tensor names and shapes.

``detect(state_dict)`` never looks at file names (lightsr's own metadata only breaks an exact tie,
see below): one small detector per architecture family, registered with :func:`detector` in the
family's own model file, recognises the family by a few distinctive keys and reads the scale and the
hyper-parameters from tensor shapes:

* the scale from the up-sampler: a pixel-shuffle conv with ``3 s^2`` output channels (IMDN, RLFN-S,
  HASN, RDB-ESA and the transformer skeleton), EDSR's ``log2 s`` convs of ``4C`` (``9C`` for x3),
  RDN's ``UPNet``; CARN-M carries x2, x3 and x4 heads, so its scale is ``[2, 3, 4]``; arbitrary-scale
  models (an ``encoder.*`` with an implicit head and no up-sampler) have scale ``None``;
* widths and depths from the first conv's output channels and from how many blocks are numbered;
* HASN's ablation ``block`` (``cb``: no LayerNorm; ``spab``: SPAN's block) and ``esa``/``cab`` from
  which keys exist;
* C2D options that change the weights from the layers' shapes: ``hie`` (the HiET MLP takes C + 2
  inputs), ``mlp``, ``norm`` (a pre-norm layer has ``norm1``), ``attention``, ``skips``/``unet``
  (fusions per block), ``blocks``, ``dim``, ``mlp_ratio``; implicit-head widths; AnySR's ``ase`` and
  ``lam``.

Every guess is then *verified*: the registered builder is run on the meta device with the guessed
scale and options and its state-dict names and shapes must equal the checkpoint's exactly (the same
check :func:`lightsr.checkpoint.check_state_dict` makes when loading). So a detector can only be
wrong by refusing, never by returning a model that does not fit.

When nothing fits, the error is one line naming the closest registered architectures (by how many
key families they share with the checkpoint) and why each did not fit.

Ambiguity rule: an AnySR-RDN model built with ``ase=None`` has exactly the keys and shapes of its base
model (AnySR only slices the same tensors), so a checkpoint of either fits both; the base model
wins (:data:`PREFER`), and the AnySR variant has to be named (``--model anysr_liif_rdn --opt
ase=none``). Any other exact tie is refused. Options that do not change the weights (C2D window
sizes for a given number of layers, AnySR widths / mode, MambaIRv2 routing, EDSR's ``rgb_range``, HASN's
``act``/``fusion``/``block_residual``) cannot
be read from a checkpoint: the builder's defaults are reported; pass others with ``--opt``.

A detector is ``fn(shapes: Shapes) -> list[Guess]``, a guess ``(model name, scale, options that differ
from the builder's defaults, details read from the shapes)``; it raises :class:`Miss` with a reason
when its family's keys are there but the shapes are not a registered model's, and returns ``[]`` when
the checkpoint is not its family after all. :func:`detect` returns a :class:`Detection`;
:func:`lightsr.models.loading.detect` turns it into a :class:`~lightsr.models.loading.Descriptor`.
This module imports no model file: the model files import it, and :func:`detect` has the registry
import every model file before it runs the detectors.
"""
from __future__ import annotations

import inspect
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..checkpoint import check_state_dict, is_derived
from ..errors import LightSRError
from .registry import create_model, get_entry, list_models

__all__ = ["Detection", "Detector", "Guess", "Miss", "PREFER", "Shapes", "build_shapes", "builder_defaults",
           "defaults_of", "detect", "detector", "detectors", "nondefault", "one_step", "pixel_shuffle_scale"]

# (winner, loser): both fit the same keys and shapes exactly; the winner is reported (module docstring)
PREFER: tuple[tuple[str, str], ...] = tuple(
    (f"{h}_rdn", f"anysr_{h}_rdn") for h in ("liif", "metasr", "srno", "arbsr")) + (
    ("swinir_c2d", "swinir_c2d_small"),)  # its windows are not in the weights: named or by metadata


# ---------------------------------------------------------------------------------------------
# shape helpers for the detectors
# ---------------------------------------------------------------------------------------------


class Miss(Exception):
    """A detector's reason for not matching (becomes part of the one-line error)."""


class Shapes:
    """A state dict's names and shapes (``{name: tensor}`` or ``{name: shape}``), read by detectors."""

    def __init__(self, sd: Mapping[str, Any]):
        self.shapes = {k: tuple(v.shape) if hasattr(v, "shape") else tuple(v) for k, v in sd.items()}

    def __contains__(self, key: str) -> bool:
        return key in self.shapes

    def shape(self, key: str) -> tuple[int, ...]:
        if key not in self.shapes:
            raise Miss(f"no {key}")
        return self.shapes[key]

    def out(self, key: str) -> int:
        return self.shape(key)[0]

    def inp(self, key: str) -> int:
        s = self.shape(key)
        if len(s) < 2:
            raise Miss(f"{key} is not a weight matrix")
        return s[1]

    def stepped(self, pattern: str, step: int = 2) -> int:
        """How many of ``pattern.format(0)``, ``(step)``, ``(2 step)`` ... exist, in a row (Sequential
        indices with an activation or a PixelShuffle between the weighted layers)."""
        n = 0
        while pattern.format(n * step) in self.shapes:
            n += 1
        return n

    def count(self, pattern: str) -> int:
        """How many of ``pattern.format(0)``, ``pattern.format(1)``, ... (or from 1) exist, in a row."""
        start = 0 if pattern.format(0) in self.shapes else 1
        n = 0
        while pattern.format(start + n) in self.shapes:
            n += 1
        return n


def pixel_shuffle_scale(out_channels: int, per: int = 3) -> int:
    """The scale ``s`` of a pixel-shuffle conv with ``per * s^2`` output channels (else a :class:`Miss`)."""
    s = math.isqrt(max(out_channels // per, 0))
    if s < 2 or per * s * s != out_channels:
        raise Miss(f"up-sampler conv has {out_channels} output channels, not {per} x s^2")
    return s


def nondefault(values: dict, defaults: dict) -> dict:
    """The entries of ``values`` that differ from ``defaults`` (a key missing from defaults differs)."""
    return {k: v for k, v in values.items() if defaults.get(k, object()) != v}


def defaults_of(fn: Callable) -> dict:
    """The keyword defaults of a callable (a class: of its ``__init__``)."""
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def builder_defaults(name: str) -> dict:
    """The keyword defaults of a registered model's builder."""
    return defaults_of(get_entry(name).builder)


Guess = tuple[str, "int | tuple[int, ...] | None", dict, dict]  # name, scale, options, details


def one_step(name: str, s: Shapes, details: dict) -> list[Guess]:
    """The guess for a CNN with a pixel-shuffle head (``upsampler.0``): the scale from its output
    channels; options = the details that differ from the builder's defaults."""
    return [(name, pixel_shuffle_scale(s.out("upsampler.0.weight")), nondefault(details, builder_defaults(name)),
             details)]


@dataclass(frozen=True)
class Detector:
    label: str
    signature: tuple[str, ...]  # keys that identify the family (all present = it is this family)
    infer: Callable[[Shapes], list[Guess]]


_DETECTORS: list[Detector] = []


def detector(label: str, *signature: str):
    """Decorator registering ``fn(shapes) -> list[Guess]``, tried on every state dict holding all of
    ``signature``; ``label`` names the family in the error when it raises :class:`Miss`."""
    def deco(fn: Callable[[Shapes], list[Guess]]):
        _DETECTORS.append(Detector(label, signature, fn))
        return fn
    return deco


def detectors() -> tuple[Detector, ...]:
    """The registered detectors, in registration order (every model file imported first)."""
    list_models()
    return tuple(_DETECTORS)


# ---------------------------------------------------------------------------------------------
# verification
# ---------------------------------------------------------------------------------------------


def _key(opts: dict) -> str:
    """Options as a hashable cache key (JSON; tuples come back as lists, which every builder takes)."""
    return json.dumps(opts, sort_keys=True)


@lru_cache(maxsize=256)
def _meta_build(name: str, scale, opts_key: str = "{}") -> tuple[tuple[tuple[str, tuple[int, ...]], ...], int]:
    """(state-dict names and shapes, parameter count) of a registered model built on the meta device."""
    build_scale = max(scale) if isinstance(scale, tuple) else scale
    opts = json.loads(opts_key)
    with torch.device("meta"):
        model = create_model(name, build_scale, **opts)
    shapes = tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())
    return shapes, sum(p.numel() for p in model.parameters())


def build_shapes(name: str, scale=None, options: dict | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """The state-dict names and shapes of a registered model built on the meta device (cached, the
    build verification uses)."""
    return list(_meta_build(name, scale, _key(dict(options or {})))[0])


class _MetaModel(nn.Module):
    """Stands in for a model in :func:`check_state_dict`: only ``state_dict()`` (shapes) is read."""

    def __init__(self, shapes):
        super().__init__()
        self._shapes = shapes

    def state_dict(self, *a, **k):  # type: ignore[override]
        return {n: torch.empty(s, device="meta") for n, s in self._shapes}


def _verify(guess: Guess, sd: Mapping[str, Any]) -> int:
    """Parameter count of the guessed model if ``sd`` fits it exactly; else a :class:`Miss`."""
    name, scale, opts, _ = guess
    try:
        shapes, params = _meta_build(name, scale, _key(opts))
    except LightSRError as exc:
        raise Miss(str(exc)) from None
    try:
        check_state_dict(_MetaModel(shapes), sd, source="the checkpoint", what=name)
    except LightSRError as exc:
        raise Miss(str(exc).split(": ", 1)[-1]) from None
    return params


# ---------------------------------------------------------------------------------------------
# the closest architectures, for the error
# ---------------------------------------------------------------------------------------------


def _pattern(key: str) -> str:
    return re.sub(r"\.\d+(?=\.|$)", ".#", key)


def _relevant(keys) -> set[str]:
    return {_pattern(k) for k in keys if not is_derived(k)}


@lru_cache(maxsize=1)
def _registry_patterns() -> dict[str, set[str]]:
    out = {}
    for name in list_models():
        entry = get_entry(name)
        try:
            shapes, _ = _meta_build(name, 4 if entry.scales else None)
        except Exception:  # noqa: BLE001
            continue
        if shapes:
            out[name] = _relevant(k for k, _ in shapes)
    return out


def _short_list(items: list[str], n: int = 2) -> str:
    return ", ".join(sorted(items)[:n]) + (f" (+{len(items) - n})" if len(items) > n else "")


def _closest(sd: Mapping[str, Any], reasons: dict[str, str], limit: int = 3) -> str:
    have = _relevant(sd)
    ranked = []
    for name, pats in _registry_patterns().items():
        shared = len(have & pats)
        if shared or name in reasons:
            ranked.append((name in reasons, shared / len(have | pats), name, pats))
    ranked.sort(key=lambda r: (not r[0], -r[1], r[2]))  # a detector's own reason first
    parts = []
    for _, _, name, pats in ranked[:limit]:
        why = reasons.get(name)
        if why is None:
            missing, extra = sorted(pats - have), sorted(have - pats)
            bits = ([f"missing {len(missing)} key families ({_short_list(missing)})"] if missing else []) + \
                   ([f"{len(extra)} unexpected ({_short_list(extra)})"] if extra else [])
            why = "; ".join(bits) or "same key families, other shapes"
        parts.append(f"{name}: {why}")
    return " | ".join(parts) if parts else "it shares no key family with any registered model"


# ---------------------------------------------------------------------------------------------
# detection
# ---------------------------------------------------------------------------------------------


@dataclass
class Detection:
    """What :func:`detect` found: the registered model, its scale (a tuple: one network with several
    heads; None: continuous), the options that differ from its builder's defaults, the details read
    from the shapes and the parameter count."""

    model: str
    scale: int | tuple[int, ...] | None
    options: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    params: int = 0


def _preferred(fits: list[tuple[Guess, int]]) -> list[tuple[Guess, int]]:
    names = {g[0] for g, _ in fits}
    losers = {lose for win, lose in PREFER if win in names and lose in names}
    return [f for f in fits if f[0][0] not in losers]


def _opts_text(opts: dict) -> str:
    return f" ({', '.join(f'{k}={v!r}' for k, v in opts.items())})" if opts else ""


def detect(state_dict: Mapping[str, Any], *, source: str | None = None, hint: str | None = None) -> Detection:
    """The architecture, scale and options a state dict is for, from its keys and tensor shapes only.

    ``state_dict``: ``{name: tensor}`` (any device, meta included) or ``{name: shape}``. ``hint``: a model
    name (lightsr's own metadata) used only to choose between candidates that fit exactly. Raises
    :class:`LightSRError` with one line when no registered architecture fits, or more than one does."""
    what = source or "the state dict"
    if not state_dict:
        raise LightSRError(f"{what} holds no tensors")
    s = Shapes(state_dict)
    shapes_sd = {k: torch.empty(v, device="meta") for k, v in s.shapes.items()}
    fits: list[tuple[Guess, int]] = []
    reasons: dict[str, str] = {}
    for det in detectors():  # every model file imported, so every family's detector registered
        present = [k for k in det.signature if k in s]
        if len(present) < len(det.signature):
            continue
        try:
            guesses = det.infer(s)
        except Miss as exc:
            reasons[det.label] = str(exc)
            continue
        for guess in guesses:
            try:
                fits.append((guess, _verify(guess, shapes_sd)))
            except Miss as exc:
                reasons.setdefault(guess[0], str(exc))
    if len(fits) > 1 and hint:
        fits = [f for f in fits if f[0][0] == hint] or fits
    fits = _preferred(fits)
    if len(fits) > 1:
        names = ", ".join(f"{g[0]}{_opts_text(g[2])}" for g, _ in fits)
        raise LightSRError(f"{what} is ambiguous: its keys and shapes fit {names} exactly; name the model "
                           f"(--model NAME)")
    if not fits:
        registered = set(_registry_patterns())
        family_only = {k: v for k, v in reasons.items() if k not in registered}
        lead = "; ".join(f"{k}: {v}" for k, v in family_only.items())
        closest = _closest(state_dict, {k: v for k, v in reasons.items() if k in registered})
        raise LightSRError(f"cannot tell which architecture {what} is for"
                           + (f" ({lead})" if lead else "") + f"; closest: {closest}")
    (name, scale, opts, details), params = fits[0]
    return Detection(name, scale, dict(opts), dict(details), int(params))
