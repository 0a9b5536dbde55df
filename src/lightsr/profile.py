"""Complexity figures as the efficient-SR papers report them.

* ``params``: trainable parameter count (of the active sub-network for width-sliced models).
* ``flops``: multiply-accumulates (MACs) for one forward pass producing a 1280x720 output (input
  1280/s x 720/s), the convention behind the papers' "FLOPs" columns. Counted with
  :class:`torch.utils.flop_counter.FlopCounterMode`, which reports 2 FLOPs per MAC; we halve it.
  It counts convolutions, linear layers, matmuls and attention; element-wise ops, pooling and
  interpolation are not counted (nor are they by the papers). Ops it cannot see (e.g. a Python-loop
  selective scan) must register a formula where they are defined.
* ``latency_ms``: median wall time of a forward pass after warm-up (CUDA-synchronised on GPU).
* ``peak_memory_mb``: peak CUDA memory allocated during the pass on GPU; on CPU the growth of the
  process's peak resident set size (an upper bound, 0 when an earlier peak was higher).
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .errors import LightSRError


def parse_size(text: str, flag: str = "--output-size") -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise LightSRError(f"{flag} expects HxW (e.g. 720x1280), got {text!r}") from None
    if h <= 0 or w <= 0:
        raise LightSRError(f"{flag} must be positive, got {text!r}")
    return h, w


def _input_for(model: nn.Module, scale: float, output_size: tuple[int, int], device) -> torch.Tensor:
    h, w = output_size
    ih, iw = max(1, round(h / scale)), max(1, round(w / scale))
    return torch.rand(1, 3, ih, iw, device=device)


def _device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _run(model: nn.Module, x: torch.Tensor, scale: float) -> torch.Tensor:
    if getattr(model, "continuous", False):
        return model(x, scale=scale)
    return model(x)


def count_params(model: nn.Module) -> int:
    active = getattr(model, "active_parameters", None)
    if callable(active):
        return int(active())
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, scale: float, output_size: tuple[int, int] = (720, 1280)) -> int:
    """Multiply-accumulates of one forward pass producing ``output_size`` (H, W)."""
    device = _device(model)
    x = _input_for(model, scale, output_size, device)
    counter = FlopCounterMode(display=False)
    with counter:
        _run(model, x, scale)
    return counter.get_total_flops() // 2


@torch.no_grad()
def measure_latency(model: nn.Module, scale: float, output_size: tuple[int, int] = (720, 1280),
                    warmup: int = 2, repeats: int = 5) -> dict:
    device = _device(model)
    x = _input_for(model, scale, output_size, device)
    cuda = device.type == "cuda"
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    for _ in range(warmup):
        _run(model, x, scale)
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        _run(model, x, scale)
        if cuda:
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - t0) * 1000)
    if cuda:
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:  # ru_maxrss is KiB on Linux
        peak = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    return {"latency_ms": round(statistics.median(times), 3), "peak_memory_mb": round(peak, 1),
            "device": str(device), "threads": torch.get_num_threads()}


def profile_model(model: nn.Module, scale: float, output_size: tuple[int, int] = (720, 1280),
                  latency: bool = True, **latency_kw) -> dict:
    model.eval()
    out = {
        "model": getattr(model, "registry_name", type(model).__name__),
        "scale": scale,
        "params": count_params(model),
        "flops": count_macs(model, scale, output_size),
        "output_size": list(output_size),
        "input_size": list(_input_for(model, scale, output_size, "cpu").shape[-2:]),
    }
    if getattr(model, "width", None) is not None:
        out["width"] = model.width
    if latency:
        out.update(measure_latency(model, scale, output_size, **latency_kw))
    return out


def run_cli(args: argparse.Namespace) -> int:
    from .cli import parse_options
    from .models import build_model

    size = parse_size(args.output_size)
    if args.json and Path(args.json).exists() and not args.overwrite:
        raise LightSRError(f"{args.json} exists; refusing to overwrite it (pass --overwrite)")
    model = build_model(args.model, args.scale, None, parse_options(args.opt), args.device)
    if getattr(args, "width", None) is not None:
        if not hasattr(model, "set_width"):
            raise LightSRError(f"model {args.model} has no width-sliced sub-networks (--width)")
        model.set_width(args.width)
    elif hasattr(model, "set_width") and hasattr(model, "width_for_scale"):
        model.set_width(model.width_for_scale(args.scale))
    result = profile_model(model, args.scale, size, latency=not args.no_latency)
    line = (f"{result['model']} x{args.scale:g}: {result['params']:,} params, "
            f"{result['flops'] / 1e9:.2f} G MACs at {size[1]}x{size[0]} output")
    if "latency_ms" in result:
        line += f", {result['latency_ms']:.1f} ms on {result['device']} ({result['threads']} threads)"
        line += f", peak +{result['peak_memory_mb']:.0f} MB"
    print(line)
    if args.json:
        from .checkpoint import write_json

        write_json(args.json, result, overwrite=args.overwrite)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(__import__("lightsr.cli", fromlist=["main"]).main(["profile", *sys.argv[1:]]))
