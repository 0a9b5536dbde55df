"""ONNX export: ``lightsr export --model NAME --weights PATH --format onnx -o model.onnx``.

The graph takes ``input`` (N, 3, H, W) float32 RGB in [0, 1] with dynamic N, H and W and returns
``output`` (N, 3, s*H, s*W), unclamped, exactly like the PyTorch model. After writing, the file is
checked under onnxruntime on CPU at two sizes other than the one traced; a difference above 1e-3 from
PyTorch is an error (and the file is not kept), so a model whose padding arithmetic was frozen at trace
time is caught rather than shipped.

``onnx`` and ``onnxruntime`` are optional (``pip install 'lightsr[onnx]'``); they are imported only here,
only when exporting.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import LightSRError

TOLERANCE = 1e-3
CHECK_SIZES = ((48, 40), (29, 37))  # (H, W) probes, neither equal to the traced size


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise LightSRError(f"ONNX export needs the optional packages onnx and onnxruntime ({exc.name} is "
                           f"missing): pip install 'lightsr[onnx]'  (or: pip install onnx onnxruntime)") from None
    return onnx, onnxruntime


def onnx_max_error(path: str | os.PathLike, model: nn.Module, sizes=CHECK_SIZES, seed: int = 0) -> float:
    """Largest |onnxruntime - PyTorch| over random inputs of the given (H, W) sizes, on CPU."""
    _, ort = _require_onnx()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    model = model.eval().float().cpu()
    worst = 0.0
    for h, w in sizes:
        x = torch.rand(1, 3, h, w, generator=gen)
        with torch.no_grad():
            ref = model(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        if got.shape != ref.shape:
            raise LightSRError(f"ONNX output for a {h}x{w} input has shape {got.shape}, PyTorch {ref.shape}; "
                               "the model's shape arithmetic was frozen at export (not exportable with dynamic size)")
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def export_onnx(model: nn.Module, path: str | os.PathLike, opset: int = 17, sample_hw: tuple[int, int] = (64, 64),
                check: bool = True, overwrite: bool = False) -> dict:
    """Write ``model`` as ONNX with dynamic batch/height/width; returns ``{"path", "max_abs_error"}``."""
    from .checkpoint import atomic_write

    onnx, _ = _require_onnx()
    if getattr(model, "continuous", False):
        raise LightSRError("continuous-scale models take the scale as an argument and are not exported to ONNX")
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise LightSRError(f"export output must end in .onnx, got {path}")
    model = model.eval().float().cpu()
    x = torch.rand(1, 3, *sample_hw)
    result: dict = {"path": str(path), "max_abs_error": None}

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings / legacy-exporter deprecation notes
            torch.onnx.export(model, (x,), tmp, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                                            "output": {0: "batch", 2: "out_height", 3: "out_width"}},
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        onnx.checker.check_model(tmp)
        if check:
            err = onnx_max_error(tmp, model)
            result["max_abs_error"] = err
            if not err <= TOLERANCE:
                raise LightSRError(f"ONNX output differs from PyTorch by {err:.2e} (> {TOLERANCE:g}); not written")

    try:
        atomic_write(path, write, overwrite=overwrite)
    except LightSRError:
        raise
    except PermissionError:
        raise LightSRError(f"cannot write {path}: permission denied") from None
    except Exception as exc:  # noqa: BLE001 - an operator the exporter cannot handle, etc.
        msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise LightSRError(f"ONNX export failed: {type(exc).__name__}: {msg}") from None
    return result


def run_cli(args) -> int:
    import sys

    from .cli import parse_options
    from .upscaler import load

    _require_onnx()  # fail before building anything
    up = load(args.model, scale=args.scale, device="cpu", weights=args.weights,
              options=parse_options(getattr(args, "opt", None)))
    res = export_onnx(up.model, args.output, opset=args.opset, check=not args.no_check, overwrite=args.overwrite)
    err = res["max_abs_error"]
    checked = f"; onnxruntime vs PyTorch max |diff| {err:.2e}" if err is not None else ""
    print(f"lightsr: wrote {res['path']} (x{up.native_scale:g}, dynamic height/width{checked})", file=sys.stderr)
    return 0
