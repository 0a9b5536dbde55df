"""Writing files without losing any: atomic replacement, never clobbering unless asked, strict JSON."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from .errors import LightSRError

__all__ = ["atomic_write", "check_out_root", "json_text", "write_json"]


def atomic_write(path: str | os.PathLike, write, overwrite: bool = False) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path``; never clobber unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise LightSRError(f"{path} exists; refusing to overwrite it (pass --overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; the result gets the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def json_text(obj, indent: int | None = 2) -> str:
    """Strict JSON (RFC 8259): a non-finite float (an identical image's infinite PSNR, a run with no
    validation yet) is written as ``null``, never as the non-standard ``Infinity``/``NaN``."""
    def finite(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: finite(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [finite(v) for v in o]
        return o
    return json.dumps(finite(obj), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, obj, overwrite: bool = False) -> Path:
    """Write ``obj`` as strict JSON through :func:`atomic_write` (an existing file needs ``overwrite``)."""
    text = json_text(obj) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text), overwrite=overwrite)


def check_out_root(out: Path) -> None:
    """A clear line for an output location that cannot be written (before any work is done)."""
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            return
        probe = probe.parent
    if not probe.is_dir():
        raise LightSRError(f"cannot write under {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise LightSRError(f"output folder {probe} is not writable")
