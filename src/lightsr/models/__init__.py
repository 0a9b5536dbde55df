"""Architectures, one file each; see :mod:`lightsr.models.registry` for the conventions."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .registry import create_model, get_entry, list_models, register_model

__all__ = ["build_model", "create_model", "get_entry", "list_models", "register_model", "pick_device"]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> cuda when available, else cpu; a clear error for an unavailable device."""
    from ..errors import LightSRError

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LightSRError(f"device {device} requested but no CUDA GPU is available")
    return dev


def build_model(name: str, scale: float | None = None, weights: str | None = None,
                options: dict[str, Any] | None = None, device: str | torch.device | None = "cpu") -> nn.Module:
    """create_model + strict load_checkpoint + eval mode + device: what eval/profile/upscale need."""
    from ..checkpoint import load_checkpoint

    model = create_model(name, scale=scale, **(options or {}))
    model.registry_name = get_entry(name).name
    if weights:
        load_checkpoint(model, weights)
    return model.eval().to(pick_device(device))
