"""The one front door: ``resolve(spec, weights, scale, options, kind=...) -> Descriptor``.

Every command and library function that needs a model (upscale, eval, compare, profile, lam, export,
train) gets it here, as a :class:`~lightsr.models.loading.Descriptor` whose ``module`` is the built
model and whose fields say how to run and tile it. What ``spec`` may be:

* ``None``: the default model for the scale (:func:`default_model`: RLFN-S, chosen by measurement,
  where it ships weights; the study notes' RDB-ESA where it does not), with its shipped weights;
* ``NAME``: a registered model with its shipped weights (``kind="photo"``: its photo weights), else
  its published official checkpoint (fetched into the cache, verified and converted by
  :mod:`lightsr.hub`), or ``weights`` when given;
* ``PATH`` (or ``weights`` alone): a checkpoint of any supported architecture, official layouts
  included, read from its keys and shapes (:func:`lightsr.models.loading.detect`);
* ``NAME=PATH``: a registered model with that checkpoint (checked against it).

``pretrained=False`` builds a named model with its random initialisation (``lightsr eval
--random-weights``, FLOP counts, training); otherwise a model that needs weights and has none is one
line (:class:`MissingWeights`). A fixed-scale model refuses a fractional or asymmetric ``scale``.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import LightSRError
from ..layers.coords import norm_scale
from .loading import Descriptor, build, is_path
from .registry import WEIGHTS_DIR, ModelEntry, get_entry

__all__ = ["resolve", "default_model", "weight_scales", "MissingWeights", "DEFAULT_MODELS",
           "DEFAULT_MODEL", "DEFAULT_SCALE", "KINDS"]

# The default upscaler: per scale, the first of these that ships weights for it (results/training.md
# chose RLFN-S by measurement; the study-notes RDB-ESA covers the scales RLFN-S is not trained for yet).
DEFAULT_MODELS = ("rlfn_s", "rdb_esa")
DEFAULT_MODEL = DEFAULT_MODELS[0]
DEFAULT_SCALE = 4  # without --scale (upscale, eval): x4
KINDS = ("clean", "photo")  # bicubic-trained weights; weights for compressed photos (lightsr.photo)


class MissingWeights(LightSRError):
    """A model that needs weights has neither shipped nor published ones (nor a file given)."""

    def __init__(self, name: str, scale: int | None, default: bool = False):
        self.name, self.scale, self.default = name, scale, default
        what = f"{name} x{scale}" if scale else name
        lead = f"the default model {what}" if default else f"model {what}"
        super().__init__(f"{lead} has no shipped or published weights (shipped ones under {WEIGHTS_DIR}); pass "
                         f"a checkpoint trained for {what} with --weights PATH (Python: weights=PATH), or pick a "
                         f"model and scale that has weights (`lightsr weights list`)")


def default_model(scale: int | None = None, kind: str = "clean") -> str:
    """The default model for ``scale`` (None: x4): the first of :data:`DEFAULT_MODELS` with shipped weights."""
    s = DEFAULT_SCALE if scale is None else scale
    for name in DEFAULT_MODELS:
        if get_entry(name).shipped_weights(s, kind) is not None:
            return name
    return DEFAULT_MODEL


def weight_scales(entry: ModelEntry, kind: str = "clean", published: bool = True) -> list[int]:
    """The scales a name has weights at: shipped ones if any, else (``published``) published ones;
    photo weights: shipped ones only."""
    if kind == "photo":
        return sorted(entry.photo)
    return sorted(entry.pretrained or (entry.published if published else None) or {})


def fixed_scale_error(name: str, scale) -> LightSRError:
    """A fractional or asymmetric ``--scale`` asked of a fixed-scale model: the one-line way out."""
    if isinstance(scale, tuple):
        return LightSRError(f"{name} is a fixed-scale model: an asymmetric scale ({scale[0]:g}x{scale[1]:g}) "
                            "needs a continuous-scale model (e.g. anysr_srno_edsr, srno_edsr)")
    return LightSRError(f"{name} is a fixed-scale model: --scale {scale:g} needs a continuous-scale model; "
                        f"use --outscale {scale:g} (its native scale, then bicubic)")


def _split(spec) -> tuple[str | None, str | os.PathLike | None]:
    """``spec`` -> (registered name or None, checkpoint path or None)."""
    if spec is None:
        return None, None
    if isinstance(spec, str) and "=" in spec and not Path(spec).exists():
        name, path = spec.split("=", 1)
        if not name or not path:
            raise LightSRError(f"{spec!r}: write NAME=PATH (a registered model and its checkpoint)")
        return name, path
    if is_path(spec):
        return None, spec
    return str(spec), None


def resolve(spec: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
            scale: float | tuple | None = None, options: dict | None = None, *, kind: str = "clean",
            pretrained: bool = True, outscale: float | None = None,
            device: str | torch.device | None = "cpu") -> Descriptor:
    """The model a user names, built, with its weights, in eval mode on ``device`` (module docstring).

    ``scale``: the native scale (default: the checkpoint's, else 4; with ``outscale`` and no scale,
    the smallest scale with weights that reaches ``outscale``); a continuous model runs at it, whatever
    it is. ``options``: builder options on top of what the checkpoint says. ``kind``: ``"clean"`` or
    ``"photo"`` shipped weights. Raises :class:`LightSRError` with one line for anything missing or
    mismatched (:class:`MissingWeights` when a model has no weights)."""
    if kind not in KINDS:
        raise LightSRError(f"kind {kind!r}: use 'clean' (bicubic-trained weights) or 'photo' (for compressed photos)")
    name, path = _split(spec)
    if path is not None and weights is not None:
        raise LightSRError("pass either a checkpoint path or a model name with weights=, not both")
    weights = path if path is not None else weights
    if weights is not None and not Path(weights).is_file():
        raise LightSRError(f"{'weights file' if path is None else 'checkpoint'} not found: {weights}")
    if kind == "photo" and weights is not None:
        raise LightSRError("kind='photo' picks a model's shipped photo weights; a checkpoint file is used as it is")
    scale = norm_scale(scale)
    any_scale = scale is not None and (isinstance(scale, tuple) or float(scale) != int(scale))  # continuous only
    origin = "file" if weights is not None else None
    if name is not None or weights is None:  # a registered name, or the default model
        default = name is None
        if default and scale is None and outscale is not None:
            scale = next((s for s in (2, 3, 4) if s >= outscale - 1e-9 and
                          get_entry(default_model(s, kind)).shipped_weights(s, kind) is not None), None)
        try:
            entry = get_entry(default_model(None if any_scale else scale, kind) if default else name)
        except LightSRError:
            if default:
                raise MissingWeights(DEFAULT_MODEL, scale or DEFAULT_SCALE, True) from None
            raise
        have = weight_scales(entry, kind, published=not default)
        if scale is None and entry.scales is not None and outscale is not None and weights is None and have:
            fits = [s for s in have if s >= outscale - 1e-9]  # the smallest native scale reaching outscale
            scale = int(fits[0] if fits else have[-1])
        if any_scale and entry.scales is not None:
            raise fixed_scale_error(entry.name, scale)
        if scale is not None and entry.scales is not None and (float(scale) != int(scale) or int(scale) not in entry.scales):
            allowed = ", ".join(f"x{v:g}" for v in entry.scales)
            raise LightSRError(f"model {entry.name} supports scales {allowed}, not x{scale:g}")
        if weights is None and pretrained and entry.family != "interpolation":
            weights, scale, origin = _weights_of(entry, scale, kind, have, published=not default)
        name = entry.name
    desc = build(name, weights, None if any_scale else scale, options, device)
    if any_scale and not desc.continuous:
        raise fixed_scale_error(desc.model, scale)
    desc.origin, desc.kind = origin, kind
    return desc


def _weights_of(entry: ModelEntry, scale, kind: str, have: list[int], published: bool):
    """(weights path, scale, origin) for a name without a file: shipped, else published (fetched)."""
    from ..hub import weights_for

    fixed = entry.scales is not None
    # a fixed-scale model's weights for its scale; a continuous model's (one file for every scale) at x4
    native = int(scale) if fixed and scale is not None else (DEFAULT_SCALE if (DEFAULT_SCALE in have or not have)
                                                            else max(have))
    path = weights_for(entry.name, native, published_too=published, kind=kind)
    if path is None and kind == "photo":
        photo = ", ".join(f"x{s}" for s in sorted(entry.photo)) or "none"
        raise LightSRError(f"{entry.name} x{native} has no photo weights (photo weights: {photo}); "
                           "kind 'clean' (--kind clean) uses its bicubic-trained weights")
    if path is None:
        raise MissingWeights(entry.name, native if fixed else None, not published)
    origin = "published" if entry.shipped_weights(native, kind) is None else "shipped"
    return path, (native if fixed else scale), origin
