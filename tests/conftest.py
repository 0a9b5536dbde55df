"""Shared fixtures: paths to ../shared (data, reference weights) and small deterministic inputs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BENCHMARK = SHARED / "data" / "benchmark"
TRAIN_DATA = SHARED / "data" / "train"
REFERENCE = SHARED / "weights" / "reference"

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def need(path: Path) -> Path:
    """Skip (with the reason) when a ../shared file a test reads is absent."""
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture
def set5() -> Path:
    return need(BENCHMARK / "Set5")


@pytest.fixture
def reference() -> Path:
    return need(REFERENCE)
