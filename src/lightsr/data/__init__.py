"""Data: benchmark (LR, HR) pairs (:mod:`.benchmark`) and training patches (:mod:`.patches`)."""
from __future__ import annotations

from .benchmark import BenchmarkFolder, Pair, list_images

__all__ = ["BenchmarkFolder", "Pair", "list_images"]
