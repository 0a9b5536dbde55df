"""Where lightsr keeps what it makes once and reuses: ``$LIGHTSR_CACHE`` (default ``~/.cache/lightsr``),
one folder per kind: ``benchmark`` (the LR of benchmark images), ``train`` (the LR of training
images), ``weights`` (published checkpoints, verified and converted), ``openvino`` (models converted
for the OpenVINO backend, by weights). Deleting any of them is safe."""
from __future__ import annotations

import os
from pathlib import Path

ENV = "LIGHTSR_CACHE"
KINDS = ("benchmark", "train", "weights", "openvino")


def cache_dir(kind: str) -> Path:
    """``$LIGHTSR_CACHE/<kind>``, else ``~/.cache/lightsr/<kind>``."""
    assert kind in KINDS, kind
    root = os.environ.get(ENV) or os.path.join("~", ".cache", "lightsr")
    return Path(root).expanduser() / kind


def overridden() -> bool:
    """True when ``$LIGHTSR_CACHE`` is set (it then wins over a run's recorded cache folder)."""
    return bool(os.environ.get(ENV))
