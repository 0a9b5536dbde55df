"""Shared fixtures: paths to ../shared (data, reference weights) and small deterministic inputs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BENCHMARK = SHARED / "data" / "benchmark"
TRAIN_DATA = SHARED / "data" / "train"
REFERENCE = SHARED / "weights" / "reference"

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

# No test reaches the network: published weights (lightsr.hub) are fetched from a mirror on a port
# nothing listens on, unless a test points them at its own local server (tests/test_hub.py).
os.environ["LIGHTSR_WEIGHTS_URL_BASE"] = "http://127.0.0.1:9/offline-in-tests"


MISSING_SHARED = "missing shared data"  # how every skip/failure below starts (counted in the summary)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def need(path: Path) -> Path:
    """``path`` when it exists. When a ../shared file a test reads is absent: skip with one line that
    says what is missing and where to put it; under ``CI=true`` fail instead (CI must run everything)."""
    if not path.exists():
        msg = (f"{MISSING_SHARED}: {path} not found; place the shared folder beside the repository "
               f"(expected at {SHARED}, with data/ and weights/ inside)")
        if in_ci():
            pytest.fail(msg + " [CI=true: tests that need it fail instead of skipping]", pytrace=False)
        pytest.skip(msg)
    return path


def reference_images(model: str, scale: int, set_name: str, every: int = 1) -> dict[str, tuple[float, float]]:
    """The official code's per-image figures (weights/reference/per_image.csv), ``{file: (psnr_y,
    ssim_y)}``; ``every=k`` keeps every k-th image in name order (a fixed sample of a large set)."""
    import csv

    with open(need(REFERENCE / "per_image.csv")) as f:
        rows = {r["image"]: (float(r["psnr_y"]), float(r["ssim_y"])) for r in csv.DictReader(f)
                if r["model"] == model and r["scale"] == str(scale) and r["set"] == set_name}
    assert rows, (model, scale, set_name)
    return {k: rows[k] for k in sorted(rows)[::every]}


def pytest_terminal_summary(terminalreporter):
    """One line for all the tests skipped because ../shared is absent (a fresh clone)."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if MISSING_SHARED in str(getattr(r, "longrepr", ""))]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} tests skipped: {MISSING_SHARED} - place the shared folder "
                                    f"beside the repository (expected at {SHARED}); under CI=true they fail")


def need_module(name: str):
    """``import name``, or skip with one line saying which extra installs it; under ``CI=true``
    fail instead (.ci/run installs every extra the suite uses)."""
    try:
        return __import__(name)
    except ImportError:
        msg = f"optional package {name} is not installed (pip install -e '.[test,onnx,openvino]')"
        if in_ci():
            pytest.fail(msg + " [CI=true: tests that need it fail instead of skipping]", pytrace=False)
        pytest.skip(msg, allow_module_level=True)


@pytest.fixture
def set5() -> Path:
    return need(BENCHMARK / "Set5")


@pytest.fixture
def reference() -> Path:
    return need(REFERENCE)
