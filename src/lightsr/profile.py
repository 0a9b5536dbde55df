"""Complexity figures as the efficient-SR papers report them.

* ``params``: trainable parameter count (of the active sub-network for width-sliced models).
* ``flops``: the work of one forward pass producing a 1280x720 output (input 1280/s x 720/s), or of
  one pass over a given input (``--input-size``, e.g. the NTIRE 256x256 convention), under one of two
  counting conventions (``convention`` in the JSON):

  ``macs`` (default): multiply-accumulates of convolutions, linear layers, matmuls and attention,
  counted with :class:`torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per MAC; we halve it).
  Element-wise ops, norms, pooling and interpolation are not counted. Ops it cannot see (e.g. a
  Python-loop selective scan) must register a formula where they are defined.

  ``fvcore``: the rules of fvcore's ``FlopCountAnalysis``, with which HiT-SR, C2D-ISR and HASN
  counted their tables (fvcore is not a dependency; its rules are restated here). The same
  multiply-accumulates as ``macs``, plus, per call as a traced graph would show it:
  LayerNorm / GroupNorm / InstanceNorm and BatchNorm in training 5 per input element (4 without
  affine weights); BatchNorm in eval 2 (1); nearest up-sampling 1 and bilinear up-sampling 4 per
  output element; ``grid_sample`` 4 per output element (whatever its mode); adaptive average
  pooling (and ``interpolate(mode="area")``) 1 per input element. Activations, additions,
  products, softmax, plain pooling and bicubic interpolation (fvcore has no rule for it) count 0.
  Where lightsr evaluates an official formula in a cheaper but equal order, fvcore saw the
  official one, so it is counted in the official form: HiT's S-SC as ``(Q V'^T / d + P) V'``.
* ``latency_ms``: median wall time of a forward pass after warm-up (CUDA-synchronised on GPU).
* ``peak_memory_mb``: peak CUDA memory allocated during the pass on GPU; on CPU the growth of the
  process's peak resident set size (an upper bound, 0 when an earlier peak was higher).
"""
from __future__ import annotations

import contextlib
import copy
import resource
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from .errors import LightSRError
from .models.loading import Descriptor

CONVENTIONS = ("macs", "fvcore")


def parse_size(text: str, flag: str = "--output-size") -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise LightSRError(f"{flag} expects HxW (e.g. 720x1280), got {text!r}") from None
    if h <= 0 or w <= 0:
        raise LightSRError(f"{flag} must be positive, got {text!r}")
    return h, w


def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise LightSRError(f"--convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    return convention


def input_size_for(scale: float, output_size: tuple[int, int] = (720, 1280)) -> tuple[int, int]:
    """LR size whose x``scale`` output is ``output_size``: (round(H / s_h), round(W / s_w)); ``scale``
    a number or a continuous model's (s_h, s_w)."""
    (h, w), (sh, sw) = output_size, (scale if isinstance(scale, tuple) else (scale, scale))
    return max(1, round(h / sh)), max(1, round(w / sw))


def _device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _run(model: nn.Module, x: torch.Tensor, scale: float) -> torch.Tensor:
    from .models.loading import forward_at

    return forward_at(model, scale)(x)


def count_params(model: nn.Module | Descriptor) -> int:
    """Parameters of a module; of a width-sliced AnySR model (a Descriptor with ``widths``), those of
    the sub-network that runs."""
    if isinstance(model, Descriptor):
        if model.widths:
            return int(model.module.active_parameters())
        model = model.module
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# fvcore's rules beyond multiply-accumulates (fvcore/nn/flop_count.py's default handles)
# ---------------------------------------------------------------------------------------------
def _arg(args: tuple, kwargs: dict, index: int, name: str, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _norm_cost(args, kwargs, out, weight_index: int) -> int:
    """layer_norm / group_norm / instance_norm: 5 per input element with an affine weight, else 4."""
    affine = _arg(args, kwargs, weight_index, "weight") is not None
    return args[0].numel() * (5 if affine else 4)


def _batch_norm_cost(args, kwargs, out) -> int:
    """batch_norm: as a norm in training; in eval a scale and shift, 2 per element (1 without weight)."""
    if _arg(args, kwargs, 5, "training", False):
        return _norm_cost(args, kwargs, out, 3)
    return args[0].numel() * (2 if _arg(args, kwargs, 3, "weight") is not None else 1)


def _interpolate_cost(args, kwargs, out) -> int:
    """The aten op a 4-D ``interpolate`` traces to: upsample_nearest2d 1, upsample_bilinear2d 4 per
    output element, adaptive_avg_pool2d ("area") 1 per input element; other modes have no rule."""
    mode = _arg(args, kwargs, 3, "mode", "nearest")
    if args[0].dim() != 4:
        return 0
    return {"nearest": out.numel(), "bilinear": 4 * out.numel(), "area": args[0].numel()}.get(mode, 0)


_FVCORE_RULES = {
    F.layer_norm: lambda a, k, o: _norm_cost(a, k, o, 2),
    F.group_norm: lambda a, k, o: _norm_cost(a, k, o, 2),
    F.instance_norm: lambda a, k, o: _norm_cost(a, k, o, 3),
    F.batch_norm: _batch_norm_cost,
    F.interpolate: _interpolate_cost,
    F.grid_sample: lambda a, k, o: 4 * o.numel(),  # fvcore assumes bilinear
    F.adaptive_avg_pool2d: lambda a, k, o: a[0].numel(),
}


class _FvcoreExtras(TorchFunctionMode):
    """Counts the rules above at the level of the functional call, the level at which fvcore's
    traced graph sees them (below it, e.g. a global adaptive pool becomes a plain ``mean``)."""

    def __init__(self):
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        rule = _FVCORE_RULES.get(func)
        if rule is not None:
            self.counts[func.__name__] += int(rule(args, kwargs, out))
        return out


def _literal_s_sc(q: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float) -> torch.Tensor:
    """HiT's S-SC (Zhang et al., ECCV 2024, sec. 3.2) in the order the official code, and so fvcore,
    evaluates it: Y = (Q V'^T / d + P) V', an (N, M) map per window and head."""
    return (q @ v.transpose(-2, -1) / scale + bias) @ v


@contextlib.contextmanager
def _official_forms():
    """Swap lightsr's re-associated formulas for the official ones (same outputs) while counting."""
    from .layers import attention

    saved = attention.spatial_self_correlation
    attention.spatial_self_correlation = _literal_s_sc
    try:
        yield
    finally:
        attention.spatial_self_correlation = saved


# ---------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def count_flops(model: nn.Module, scale: float, output_size: tuple[int, int] = (720, 1280),
                convention: str = "macs", input_size: tuple[int, int] | None = None,
                breakdown: bool = False) -> int | tuple[int, dict]:
    """Work of one forward pass on a (1, 3, *input_size) input (default: the input whose x``scale``
    output is ``output_size``) under ``convention``; with ``breakdown`` also the count per rule.

    A model on the meta device is counted without any arithmetic (same figures, seconds)."""
    check_convention(convention)
    ih, iw = input_size or input_size_for(scale, output_size)
    x = torch.rand(1, 3, ih, iw, device=_device(model))
    gemm, extras = FlopCounterMode(display=False), _FvcoreExtras()
    fvcore = convention == "fvcore"
    with contextlib.ExitStack() as stack:
        if fvcore:
            stack.enter_context(_official_forms())
            stack.enter_context(extras)
        stack.enter_context(gemm)
        _run(model, x, scale)
    parts = {"macs": gemm.get_total_flops() // 2, **extras.counts}
    total = sum(parts.values())
    return (total, parts) if breakdown else total


def count_fast(model: nn.Module, scale: float, convention: str, input_size: tuple[int, int]) -> int:
    """:func:`count_flops` on a meta-device copy (shapes only: seconds even for a transformer at
    1280x720), or on the model itself when its forward needs real values (SwinIR's and SRFormer's
    shifted-window masks call ``torch.nonzero``, which has no meta kernel).

    The copy of a continuous model renders all its queries in one chunk: ``max_queries`` bounds
    memory, not work, and the exact chunked evaluation of a global attention head recomputes the
    embedding and earlier blocks per pass (anysr_srno_edsr x2: 1732 G MACs chunked, 939 G in one)."""
    try:
        meta = copy.deepcopy(model).to("meta")
        if hasattr(meta, "max_queries"):
            meta.max_queries = 1 << 62
        return count_flops(meta, scale, convention=convention, input_size=input_size)
    except (NotImplementedError, RuntimeError):
        return count_flops(model, scale, convention=convention, input_size=input_size)


@torch.no_grad()
def measure_latency(model: nn.Module | Descriptor, scale: float, output_size: tuple[int, int] = (720, 1280),
                    warmup: int = 2, repeats: int = 5, input_size: tuple[int, int] | None = None,
                    precision: str = "fp32", compile: bool = False) -> dict:
    """Median latency of ``repeats`` calls after ``warmup``; ``precision``/``compile`` as the upscaler
    runs them (:class:`lightsr.inference.Runner`; ``"fp32"`` without compile is the plain module)."""
    desc = model if isinstance(model, Descriptor) else None
    model = desc.module if desc is not None else model
    device = _device(model)
    x = torch.rand(1, 3, *(input_size or input_size_for(scale, output_size)), device=device)
    ran = "fp32"
    if precision != "fp32" or compile:
        import dataclasses

        from .inference import Runner

        timed = copy.deepcopy(model)  # the timed copy (channels_last, compiled) leaves the model as it was
        runner = Runner(dataclasses.replace(desc, module=timed) if desc is not None else timed, device, precision,
                        compile=compile)
        ran = runner.precision
        model = runner.model
        _run_model = lambda m, t, s: runner(t, scale=s)  # noqa: E731
    else:
        _run_model = _run
    cuda = device.type == "cuda"
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    for _ in range(warmup):
        _run_model(model, x, scale)
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        _run_model(model, x, scale)
        if cuda:
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - t0) * 1000)
    if cuda:
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:  # ru_maxrss is KiB on Linux
        peak = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    return {"latency_ms": round(statistics.median(times), 3), "peak_memory_mb": round(peak, 1),
            "device": str(device), "threads": torch.get_num_threads(), "precision": ran,
            "compiled": bool(compile)}


def profile_model(model: nn.Module | Descriptor, scale: float, output_size: tuple[int, int] = (720, 1280),
                  latency: bool = True, convention: str = "macs", input_size: tuple[int, int] | None = None,
                  **latency_kw) -> dict:
    """Parameters, work under ``convention`` and (optionally) latency of a module, or of the model a
    :class:`~lightsr.models.loading.Descriptor` holds (its name; for AnySR its sub-network's cost);
    ``input_size`` (H, W), when given, replaces the input derived from ``output_size``."""
    desc = model if isinstance(model, Descriptor) else None
    model = desc.module if desc is not None else model
    model.eval()
    size_in = input_size or input_size_for(scale, output_size)
    out = {
        "model": desc.model if desc is not None else type(model).__name__,
        "scale": scale,
        "params": count_params(desc if desc is not None else model),
        "flops": count_fast(model, scale, convention, size_in),
        "convention": convention,
        "output_size": list(output_size) if input_size is None else [round(v * scale) for v in size_in],
        "input_size": list(size_in),
    }
    if desc is not None and desc.widths:  # AnySR: the encoder (Table 3's count) and the head beside it
        if model.width is not None:
            out["width"] = model.width
        out["encoder_macs"], out["head_macs"] = (int(v) for v in model.cost(size_in, scale))
    if latency:
        out.update(measure_latency(desc if desc is not None else model, scale, input_size=size_in, **latency_kw))
    return out


def _size(size: str | Sequence[int] | None, flag: str) -> tuple[int, int] | None:
    if size is None or isinstance(size, str):
        return None if size is None else parse_size(size, flag)
    return parse_size("x".join(str(int(v)) for v in size), flag)


def summary(result: dict) -> str:
    """The one line ``lightsr profile`` prints for a :func:`profile_model` result."""
    (ih, iw), (oh, ow) = result["input_size"], result["output_size"]
    unit = "MACs" if result["convention"] == "macs" else "FLOPs (fvcore convention)"
    line = (f"{result['model']} x{result['scale']:g}: {result['params']:,} params, "
            f"{result['flops'] / 1e9:.2f} G {unit} at {ow}x{oh} output ({iw}x{ih} input)")
    if "encoder_macs" in result:
        line += (f" [width {result.get('width', 1):g}: encoder {result['encoder_macs'] / 1e9:.2f} G MACs "
                 f"(Table 3's count, what --max-gflops budgets) + head {result['head_macs'] / 1e9:.2f} G]")
    if "latency_ms" in result:
        line += (f", {result['latency_ms']:.1f} ms on {result['device']} ({result['threads']} threads, "
                 f"{result['precision']}{', compiled' if result.get('compiled') else ''})")
        line += f", peak +{result['peak_memory_mb']:.0f} MB"
    return line


def run_profile(model: str, scale: float, *, options: dict | None = None, device=None, width: float | None = None,
                output_size: str | Sequence[int] | None = None, input_size: str | Sequence[int] | None = None,
                convention: str = "macs", latency: bool = True, precision: str = "fp32", compile: bool = False,
                json_path: str | None = None, overwrite: bool = False, max_gflops: float | None = None) -> dict:
    """``lightsr profile`` as a function: build the registered ``model`` at ``scale`` (random weights:
    the figures do not depend on them), pick its sub-network (``width``; or the widest whose encoder
    fits ``max_gflops`` at this size; else the one of ``scale`` for
    width-sliced models), count and time it (:func:`profile_model`) and, with
    ``json_path``, write the result. Sizes are (H, W) or ``"HxW"``; at most one of them is given
    (default: 1280x720 output). :func:`summary` is the line the command prints."""
    from .models.resolve import resolve

    convention = check_convention(convention)
    if output_size is not None and input_size is not None:
        raise LightSRError("give --output-size or --input-size, not both")
    size_in = _size(input_size, "--input-size")
    size_out = (720, 1280) if size_in is not None else (_size(output_size, "--output-size") or (720, 1280))
    if json_path and Path(json_path).exists() and not overwrite:
        raise LightSRError(f"{json_path} exists; refusing to overwrite it (pass --overwrite)")
    desc = resolve(model, None, scale, options, pretrained=False, device=device)  # the figures need no weights
    net = desc.module
    if max_gflops is not None:
        if width is not None:
            raise LightSRError("--width and --max-gflops both choose the AnySR sub-network; give one of them")
        if not desc.widths:
            raise LightSRError(f"model {model} has no width-sliced sub-networks (--max-gflops)")
        width = net.width_for_budget(max_gflops, size_in or input_size_for(scale, size_out), scale)
    if width is not None:
        if not desc.widths:
            raise LightSRError(f"model {model} has no width-sliced sub-networks (--width)")
        net.set_width(width)
    elif desc.widths:
        net.set_width(net.width_for_scale(scale))
    from .precision import choose as choose_precision

    choose_precision(precision, _device(net))  # a bad precision fails before counting
    result = profile_model(desc, scale, size_out, latency=latency, convention=convention, input_size=size_in,
                           precision=precision, compile=compile)
    if json_path:
        from .files import write_json

        write_json(json_path, result, overwrite=overwrite)
    return result
