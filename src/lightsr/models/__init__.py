"""Architectures, one file each; see :mod:`lightsr.models.registry` for the conventions."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .registry import create_model, get_entry, list_models, pick_device, register_model

__all__ = ["build_model", "create_model", "get_entry", "list_models", "register_model", "pick_device"]


def build_model(name: str, scale: float | None = None, weights: str | None = None,
                options: dict[str, Any] | None = None, device: str | torch.device | None = "cpu") -> nn.Module:
    """A registered model with ``weights`` loaded strictly (checked against the checkpoint's detected
    architecture and scale), in eval mode, on ``device``; no ``weights``: its random initialisation.
    The module of :func:`lightsr.models.loading.build`; commands use the front door
    :func:`lightsr.models.resolve.resolve`, which also finds shipped and published weights."""
    from .loading import build

    return build(name, weights, scale, options, device).module
