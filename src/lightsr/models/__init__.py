"""Architectures, one file each; see :mod:`lightsr.models.registry` for the conventions."""
from .registry import create_model, get_entry, list_models, register_model

__all__ = ["create_model", "get_entry", "list_models", "register_model"]
