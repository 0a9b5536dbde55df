"""ONNX export: ``lightsr export --model NAME --weights PATH --format onnx -o model.onnx``.

The graph takes ``input`` (N, 3, H, W) float32 RGB in [0, 1] with dynamic N, H and W and returns
``output`` (N, 3, s*H, s*W), unclamped, exactly like the PyTorch model. After writing, the file is
checked under onnxruntime on CPU at two sizes other than the one traced; a difference above 1e-3 from
PyTorch is an error (and the file is not kept), so a model whose padding arithmetic was frozen at trace
time is caught rather than shipped.

Window transformers (window padding, hierarchical window sizes) and MambaIRv2 (the chunked scan's
loop counts) depend on the input size in Python arithmetic that a trace freezes: they export with
``fixed_size=(H, W)`` (``--fixed-size HxW``), a graph for that one (1, 3, H, W) input, checked at it;
a deployment tiles its images to that size. The selective scan is traced as its chunked pure-tensor
form (``layers.scan``) and the semantic sort as a plain sort of a tie-free key.

The file carries what a deployment needs to feed it, as ONNX ``metadata_props`` (:func:`metadata`):
``scale``, ``model`` (registry name, else the class), ``input_range`` ``0-1``, ``channel_order`` ``RGB``,
``layout`` ``NCHW``, ``output`` (unclamped), ``input_size`` (``dynamic`` or ``HxW``) and
``lightsr_version``; a ``weights`` file name when one was given.

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
from .models.loading import Descriptor, describe_module

TOLERANCE = 1e-3
CHECK_SIZES = ((48, 40), (29, 37))  # (H, W) probes, neither equal to the traced size


class _FrozenShapes(Exception):
    """The traced graph failed or differed at a size other than the traced one."""


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise LightSRError(f"ONNX export needs the optional packages onnx and onnxruntime ({exc.name} is "
                           f"missing): pip install 'lightsr[onnx]'  (or: pip install onnx onnxruntime)") from None
    return onnx, onnxruntime


def _check_output(path: str | os.PathLike) -> None:
    """One line for an output that cannot be an .onnx file (before the model is built)."""
    from .files import check_out_root

    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise LightSRError(f"export output must end in .onnx, got {path}")
    check_out_root(path.parent)  # afile.txt/m.onnx: "afile.txt is a file, not a folder"


def onnx_max_error(path: str | os.PathLike, model: nn.Module, sizes=CHECK_SIZES, seed: int = 0) -> float:
    """Largest |onnxruntime - PyTorch| over random inputs of the given (H, W) sizes, on CPU."""
    _, ort = _require_onnx()
    options = ort.SessionOptions()
    options.log_severity_level = 4  # a failing probe is reported by us, in one line, not by ORT's logger
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
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


def trace_onnx(model: nn.Module, path: str | os.PathLike, sample_hw: tuple[int, int], dynamic: bool = True,
               opset: int = 17) -> None:
    """``model`` traced at a (1, 3, *sample_hw) input into the ONNX file ``path``, input ``input`` and
    output ``output``, with dynamic batch, height and width unless ``dynamic=False``. Needs ``onnx``."""
    axes = {"input": {0: "batch", 2: "height", 3: "width"},
            "output": {0: "batch", 2: "out_height", 3: "out_width"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings / legacy-exporter deprecation notes
        torch.onnx.export(model, (torch.rand(1, 3, *sample_hw),), str(path), input_names=["input"],
                          output_names=["output"], dynamic_axes=axes, opset_version=opset,
                          do_constant_folding=True, dynamo=False)


def metadata(desc: Descriptor, fixed_size: tuple[int, int] | None = None, **extra) -> dict[str, str]:
    """The ``metadata_props`` of an exported file: how to feed the graph and what it came from."""
    from . import __version__

    scale = desc.scale
    props = {"model": desc.model,
             "scale": f"{scale:g}" if isinstance(scale, (int, float)) else str(scale),
             "input_range": "0-1", "channel_order": "RGB", "layout": "NCHW",
             "output": "unclamped; clamp to 0-1",
             "input_size": f"{fixed_size[0]}x{fixed_size[1]}" if fixed_size else "dynamic",
             "lightsr_version": str(__version__)}
    props.update({k: str(v) for k, v in extra.items() if v is not None})
    return props


def export_onnx(model: nn.Module | Descriptor, path: str | os.PathLike, opset: int = 17,
                sample_hw: tuple[int, int] = (64, 64), check: bool = True, overwrite: bool = False,
                fixed_size: tuple[int, int] | None = None, meta: dict | None = None) -> dict:
    """Write ``model`` (a module, or the one a :class:`~lightsr.models.loading.Descriptor` holds) as ONNX
    with dynamic batch/height/width, or for the one input size ``fixed_size``, with :func:`metadata`
    (plus ``meta``) as the file's ``metadata_props``; returns ``{"path", "max_abs_error", "fixed_size",
    "metadata"}``."""
    from .files import atomic_write

    onnx, _ = _require_onnx()
    desc = model if isinstance(model, Descriptor) else describe_module(model)
    if desc.continuous:
        raise LightSRError("continuous-scale models take the scale as an argument and are not exported to ONNX")
    path = Path(path)
    _check_output(path)
    model = desc.module.eval().float().cpu()
    props = metadata(desc, fixed_size, **(meta or {}))
    result: dict = {"path": str(path), "max_abs_error": None, "fixed_size": fixed_size, "metadata": props}

    def write(tmp: str) -> None:
        trace_onnx(model, tmp, fixed_size or sample_hw, dynamic=not fixed_size, opset=opset)
        graph = onnx.load(tmp)
        onnx.helper.set_model_props(graph, props)
        onnx.save(graph, tmp)
        onnx.checker.check_model(tmp)
        if check:
            try:
                err = onnx_max_error(tmp, model, sizes=[fixed_size] if fixed_size else CHECK_SIZES)
            except Exception as exc:  # noqa: BLE001 - onnxruntime failing on a size other than the traced one
                if fixed_size or isinstance(exc, LightSRError):
                    raise
                raise _FrozenShapes(str(exc)) from None
            result["max_abs_error"] = err
            if not err <= TOLERANCE:
                if not fixed_size:
                    raise _FrozenShapes(f"max |diff| {err:.2e}")
                raise LightSRError(f"ONNX output differs from PyTorch by {err:.2e} (> {TOLERANCE:g}); not written")

    try:
        atomic_write(path, write, overwrite=overwrite)
    except _FrozenShapes as exc:
        reason = str(exc).strip().splitlines()[0][:160]
        raise LightSRError(f"this model's graph does not follow a dynamic input size under ONNX ({reason}); "
                           "export it for one size with --fixed-size HxW (Python: fixed_size=(H, W)) and tile "
                           "to that size; nothing written") from None
    except LightSRError:
        raise
    except PermissionError:
        raise LightSRError(f"cannot write {path}: permission denied") from None
    except Exception as exc:  # noqa: BLE001 - an operator the exporter cannot handle, etc.
        msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise LightSRError(f"ONNX export failed: {type(exc).__name__}: {msg}") from None
    return result


def export_model(output: str | os.PathLike, *, model: str | None = None, weights: str | os.PathLike | None = None,
                 scale: int | None = None, options: dict | None = None, opset: int = 17, check: bool = True,
                 overwrite: bool = False, fixed_size: tuple[int, int] | str | None = None) -> dict:
    """``lightsr export`` as a function: the model a user names (a registered ``model`` with its
    shipped weights, ``weights`` read by :func:`lightsr.load`, or both) written to ``output`` by
    :func:`export_onnx`. ``fixed_size``: (H, W) or ``"HxW"``. Returns export_onnx's report plus
    ``scale`` (the model's native scale)."""
    from .models.resolve import resolve

    _check_output(output)
    _require_onnx()  # fail before building anything
    if isinstance(fixed_size, str):
        from .profile import parse_size

        fixed_size = parse_size(fixed_size, "--fixed-size")
    desc = resolve(model, weights, scale, options)
    res = export_onnx(desc, output, opset=opset, check=check, overwrite=overwrite, fixed_size=fixed_size,
                      meta={"weights": Path(desc.source).name if desc.source else None})
    return {**res, "scale": float(desc.scale) if desc.scale is not None else 1.0}
