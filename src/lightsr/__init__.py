"""lightsr: efficient single-image super-resolution.

Public API (imported lazily so that ``import lightsr`` stays light)::

    lightsr.create_model(name, scale=4, **options)   # a registered architecture
    lightsr.list_models()
    lightsr.load_checkpoint(model, path)             # strict, no pickled code
    lightsr.load(name_or_path, scale=..., device=...) # a ready-to-use upscaler
    lightsr.upscale(image, ...)
    lightsr.upscale_files(up, ["photos/"], "out/")   # folders and files, as `lightsr upscale` does
    lightsr.imresize(img, scale)                     # MATLAB-compatible bicubic
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "create_model": "lightsr.models.registry",
    "list_models": "lightsr.models.registry",
    "register_model": "lightsr.models.registry",
    "load_checkpoint": "lightsr.checkpoint",
    "save_weights": "lightsr.checkpoint",
    "imresize": "lightsr.resize",
    "load": "lightsr.api",
    "upscale": "lightsr.api",
    "upscale_files": "lightsr.batch",
    "LightSRError": "lightsr.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lightsr' has no attribute {name!r}")
