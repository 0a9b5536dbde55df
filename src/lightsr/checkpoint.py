"""Reading and writing weights, safely and strictly.

* ``.pth``/``.pt`` files are read with ``torch.load(weights_only=True)``: no pickled code runs.
* ``.safetensors`` files are read with safetensors.
* Official checkpoints keep their tensors at the top level or under ``params_ema`` / ``params`` /
  ``state_dict`` / ``model``, sometimes with a ``module.`` (DataParallel) prefix; all are accepted.
* Loading is strict: a missing, unexpected or mis-shaped tensor is a :class:`LightSRError` that
  lists what differs, so a checkpoint of another architecture or scale is caught, never half-loaded.
* Buffers the official code saves but that are derived from the architecture (relative-position
  indices, shifted-window masks) are dropped before the check.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from .errors import LightSRError
from .files import atomic_write, json_text

_NESTED_KEYS = ("params_ema", "params", "state_dict", "model", "net", "generator")
# suffixes of buffers recomputed from the architecture; official checkpoints may carry them
DERIVED_BUFFERS = ("relative_position_index", "relative_position_index_SA", "attn_mask",
                   "relative_coords_table", "position_index")


def read_state_dict(path: str | os.PathLike, key: str | None = None) -> dict[str, torch.Tensor]:
    """Read a flat ``{name: tensor}`` dict from a .pth/.pt/.ckpt or .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise LightSRError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise LightSRError(f"checkpoint is empty (0 bytes): {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Mapping = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle with code in it
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise LightSRError(f"cannot read checkpoint {path}: {reason}") from None
    if not isinstance(sd, Mapping):
        raise LightSRError(f"checkpoint {path} holds a {type(sd).__name__}, not a state dict")
    if key is not None:
        if key not in sd:
            raise LightSRError(f"checkpoint {path} has no entry {key!r} (it has {', '.join(map(str, sd))})")
        sd = sd[key]
    else:
        for k in _NESTED_KEYS:
            if k in sd and isinstance(sd[k], Mapping):
                sd = sd[k]
                break
        if isinstance(sd.get("sd"), Mapping):  # LIIF / SRNO: {"model": {"name", "args", "sd": {...}}}
            sd = sd["sd"]
    tensors = {str(k): v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise LightSRError(f"checkpoint {path} contains no tensors")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def _short(names: list[str], n: int = 4) -> str:
    more = f" (+{len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def is_derived(key: str) -> bool:
    """A buffer recomputed from the architecture (:data:`DERIVED_BUFFERS`): never required, never saved."""
    return key.rsplit(".", 1)[-1] in DERIVED_BUFFERS


@dataclass
class Fit:
    """How a state dict fits a model (:func:`fit_state_dict`): ``tensors`` load as they are; the rest
    are lists of names (``shapes``: "name (checkpoint shape) vs (model shape)"); ``free_*``: the
    same for names under the prefixes allowed to differ."""

    tensors: dict
    missing: list
    unexpected: list
    shapes: list
    free_missing: list
    free_unexpected: list

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.shapes)


def fit_state_dict(model: nn.Module, sd: Mapping[str, torch.Tensor], free: Sequence[str] = ()) -> Fit:
    """The one state-dict fit check: which tensors of ``sd`` load into ``model`` (same name and shape),
    which of the model's are missing, which of the checkpoint's are unexpected, which differ in shape.
    Derived buffers never misfit (a missing or mis-shaped one keeps the model's own; one the model
    does not have is ignored); names under a ``free`` prefix or pattern (a head allowed to differ) are reported apart, never as misfits."""
    own = model.state_dict()

    def is_free(k: str) -> bool:  # a module prefix ("upsample") or a pattern ("encoder.*.fc1")
        return any(fnmatchcase(k, p) or fnmatchcase(k, p + ".*") for p in free)

    sd = {k: v for k, v in sd.items() if k in own or not is_derived(k)}
    tensors, missing, shapes, free_missing = {}, [], [], []
    for k, v in own.items():
        if k in sd and tuple(sd[k].shape) == tuple(v.shape):
            tensors[k] = sd[k]
        elif is_derived(k):
            continue  # recomputed by the model: the checkpoint's copy (of another size) is not needed
        elif is_free(k):
            free_missing.append(k)
        elif k in sd:
            shapes.append(f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}")
        else:
            missing.append(k)
    extra = [k for k in sd if k not in own]
    return Fit(tensors, missing, [k for k in extra if not is_free(k)], shapes, free_missing,
               [k for k in extra if is_free(k)])


def check_state_dict(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str = "checkpoint",
                     what: str | None = None) -> dict:
    """Return ``sd`` filtered of derived buffers; raise a one-line error if it does not fit ``model``
    (``what``: how the error names the model, e.g. ``"rlfn_s x4"``; default its class name)."""
    f = fit_state_dict(model, sd)
    missing, unexpected, shapes = f.missing, f.unexpected, f.shapes
    if not f.exact:
        what = what or type(model).__name__
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_short(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_short(unexpected)})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape ({_short(shapes, 2)})")
        hint = ""
        if shapes and not missing and not unexpected:
            hint = "; was it trained for another scale or width?"
        elif missing and unexpected:
            hint = "; is it a checkpoint of another architecture?"
        raise LightSRError(f"{source} does not fit model {what}: " + "; ".join(parts) + hint)
    return f.tensors


def warm_start(model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor] | nn.Module, *,
               fresh: Sequence[str] = (), filter: Callable[[dict], dict] | None = None,
               what: str = "--init") -> dict:
    """The one warm start: ``model`` initialised from the trained weights of a related network (fine-tuning
    shipped weights, C2D's stage 2 from stage 1 (eq. 10), AnySR from its arbitrary-scale original).

    ``source``: a checkpoint file, a state dict or a module. ``filter(state_dict) -> state_dict`` maps the
    source's names onto the model's (dropping what has no place in it) before anything is compared.
    ``fresh``: module prefixes or patterns (``"upsample"``, ``"encoder.*.fc1"``) of the model's tensors
    that may be missing from the source or of another shape there: they keep their initialisation (a new
    head), and the source's tensors under them are dropped. Every other tensor must match by name and
    shape, or the warm start is refused in one line naming what differs. Returns ``{"loaded": n,
    "fresh": [names kept], "dropped": [source names not loaded]}``."""
    if isinstance(source, nn.Module):
        sd = dict(source.state_dict())
    elif isinstance(source, Mapping):
        sd = dict(source)
    else:
        sd = read_state_dict(source)
    given = sd
    if filter is not None:
        sd = filter(sd)
    fit = fit_state_dict(model, sd, free=fresh)
    if not fit.exact:
        parts = [f"{len(fit.missing + fit.shapes)} tensors missing or of another shape "
                 f"({_short(fit.missing + fit.shapes, 3)})"] if fit.missing or fit.shapes else []
        if fit.unexpected:
            parts.append(f"{len(fit.unexpected)} unexpected ({_short(fit.unexpected, 3)})")
        where = f" {source}" if isinstance(source, (str, os.PathLike)) else ""
        raise LightSRError(f"{what}{where} does not fit this model outside its head: " + "; ".join(parts))
    model.load_state_dict(fit.tensors, strict=False)
    kept = {id(v) for v in sd.values()}  # a filter renames (same tensor) or drops: what it dropped, by name
    dropped = [k for k, v in given.items() if id(v) not in kept] + fit.free_unexpected
    return {"loaded": len(fit.tensors), "fresh": fit.free_missing, "dropped": dropped}


def load_checkpoint(model: nn.Module, path: str | os.PathLike, key: str | None = None) -> nn.Module:
    """Load weights from ``path`` into ``model`` with strict checking; returns the model."""
    sd = read_state_dict(path, key)
    sd = check_state_dict(model, sd, source=f"checkpoint {path}")
    model.load_state_dict(sd, strict=False)  # strictness checked above, derived buffers excluded
    return model


def save_weights(state: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike,
                 metadata: Mapping[str, object] | None = None, overwrite: bool = False) -> Path:
    """Save a state dict as safetensors (metadata values stored as JSON strings)."""
    from safetensors.torch import save_file

    sd = state.state_dict() if isinstance(state, nn.Module) else state
    sd = {k: v.detach().contiguous().cpu() for k, v in sd.items() if not is_derived(k)}
    meta = {k: json_text(v, indent=None) for k, v in (metadata or {}).items()}
    return atomic_write(path, lambda tmp: save_file(sd, tmp, metadata=meta), overwrite=overwrite)


def read_metadata(path: str | os.PathLike) -> dict[str, object]:
    """Metadata stored by :func:`save_weights` (empty for other files)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    out = {}
    for k, v in meta.items():
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out
