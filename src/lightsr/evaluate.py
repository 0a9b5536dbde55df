"""Evaluation loop: benchmark folders -> per-image and per-set PSNR / SSIM (``lightsr eval``).

For every image of every folder (:class:`~lightsr.data.benchmark.BenchmarkFolder`): the LR uint8
image (grayscale replicated to RGB) becomes a (1, 3, h, w) float tensor in [0, 1]; the model's output
is clamped to [0, 1], x255 and rounded to uint8; :func:`~lightsr.metrics.psnr_ssim` scores it under
the chosen protocol. A set's figure is the mean over its images.

The result is ``{"<folder name>": {"psnr": float, "ssim": float,
"images": {"<file>": {"psnr": float, "ssim": float}}}}``.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from .data.benchmark import BenchmarkFolder, to_rgb
from .errors import LightSRError
from .metrics import psnr_ssim, shave_for

__all__ = ["evaluate", "self_ensemble", "model_forward", "format_table", "run_cli"]

Forward = Callable[[torch.Tensor], torch.Tensor]


def self_ensemble(fn: Forward, x: torch.Tensor) -> torch.Tensor:
    """x8 geometric self-ensemble: mean of ``T^-1(fn(T(x)))`` over the 4 rotations x 2 flips."""
    out = None
    for k in range(4):
        for flip in (False, True):
            t = torch.rot90(x, k, dims=(-2, -1))
            t = t.flip(-1) if flip else t
            y = fn(t)
            y = y.flip(-1) if flip else y
            y = torch.rot90(y, -k, dims=(-2, -1))
            out = y if out is None else out + y
    return out / 8


self_ensemble_fn = self_ensemble  # evaluate()'s flag of the same name shadows it inside evaluate()


def model_forward(model: nn.Module, scale: float) -> Forward:
    """``model(x)``, or ``model(x, scale=s)`` for a continuous (arbitrary-scale) model."""
    if getattr(model, "continuous", False):
        return lambda x: model(x, scale=scale)
    return model


def _device_of(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _dtype_of(model: nn.Module) -> torch.dtype:
    for t in model.parameters():
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def _to_tensor(img: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)[None]
    return x.to(device=device, dtype=dtype)


def _to_uint8(y: torch.Tensor) -> np.ndarray:
    y = torch.nan_to_num(y[0].float()).clamp_(0, 1).mul_(255.0).round_()
    return y.byte().permute(1, 2, 0).cpu().numpy()


def _save_targets(save_dir: Path, sets: list[BenchmarkFolder]) -> dict[tuple[str, str], Path]:
    targets = {}
    for bf in sets:
        stems = [Path(f.name).stem for f in bf.files]
        for f, stem in zip(bf.files, stems):
            name = (stem if stems.count(stem) == 1 else f.name) + ".png"
            targets[bf.name, f.name] = save_dir / bf.name / name
    return targets


def evaluate(model: nn.Module | None, folders: Iterable[str | Path] | str | Path, scale: float, *,
             protocol: str = "standard", self_ensemble: bool = False, device: str | torch.device | None = None,
             cache_dir: str | Path | None = None, save_dir: str | Path | None = None, overwrite: bool = False,
             progress: bool = True, forward: Forward | None = None, y_only: bool = True) -> dict:
    """PSNR/SSIM of ``model`` on each folder of HR images (see the module docstring for the result).

    ``forward``: an optional ``fn(x) -> y`` used instead of the model (a tiled upscaler, say); with it
    ``model`` may be ``None``.
    ``save_dir``: SR images are written to ``save_dir/<folder name>/<stem>.png``; an existing file is
    an error unless ``overwrite``. ``y_only=False`` scores RGB instead of Y.
    """
    from tqdm.auto import tqdm

    if isinstance(folders, (str, Path)):
        folders = [folders]
    scale = float(scale)
    scale = int(scale) if scale.is_integer() else scale
    sets = [BenchmarkFolder(f, scale, protocol, cache_dir) for f in folders]
    names = [bf.name for bf in sets]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise LightSRError(f"two data folders are both named {sorted(dup)[0]}; results are keyed by folder name")
    if not sets:
        raise LightSRError("no data folder given")
    if model is None and forward is None:
        raise LightSRError("evaluate needs a model or a forward function")
    model = model if model is not None else nn.Identity()
    if device is not None:
        from .models import pick_device

        dev = pick_device(device)
        model = model.to(dev)
    else:
        dev = _device_of(model)
    targets = {}
    if save_dir is not None:
        targets = _save_targets(Path(save_dir).expanduser(), sets)
        existing = [p for p in targets.values() if p.exists()]
        if existing and not overwrite:
            raise LightSRError(f"{existing[0]} exists; refusing to overwrite saved images (pass --overwrite)")

    fn = forward if forward is not None else model_forward(model, scale)
    dtype = _dtype_of(model)  # a half-precision model gets half-precision input
    was_training = model.training
    model.eval()
    results: dict = {}
    # progress=True shows the bar on a terminal only (tqdm's disable=None), never in logs or pipes
    bar = tqdm(total=sum(len(bf) for bf in sets), disable=None if progress else True, unit="img", leave=False)
    try:
        for bf in sets:
            per_image = {}
            bar.set_description(f"{bf.name} x{scale:g}")
            for path in bf.files:
                pair = bf.load(path)
                x = _to_tensor(to_rgb(pair.lr), dev, dtype)
                with torch.inference_mode():
                    y = self_ensemble_fn(fn, x) if self_ensemble else fn(x)
                if y.ndim != 4 or y.shape[1] != 3 or tuple(y.shape[-2:]) != pair.hr.shape[:2]:
                    raise LightSRError(f"{bf.name}/{pair.name}: model output {tuple(y.shape)} does not match "
                                       f"the HR size {pair.hr.shape[0]}x{pair.hr.shape[1]} at x{scale:g}")
                sr = _to_uint8(y)
                p, s = psnr_ssim(sr, pair.hr, scale, protocol, y_only=y_only)
                per_image[pair.name] = {"psnr": p, "ssim": s}
                if targets:
                    from .imageio import write_image

                    write_image(targets[bf.name, pair.name], sr, overwrite=overwrite)
                bar.update(1)
            results[bf.name] = {
                "psnr": float(np.mean([v["psnr"] for v in per_image.values()])),
                "ssim": float(np.mean([v["ssim"] for v in per_image.values()])),
                "images": per_image,
            }
    finally:
        bar.close()
        model.train(was_training)
    return results


def format_table(results: dict, scale: float, protocol: str = "standard") -> str:
    rows = [("dataset", "scale", "PSNR", "SSIM")]
    for name, r in results.items():
        rows.append((name, f"x{scale:g}", f"{r['psnr']:.4f}", f"{r['ssim']:.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n(Y channel, {protocol} protocol, {shave_for(scale)} px shaved)"


def run_cli(args) -> int:
    from .checkpoint import write_json
    from .cli import model_options
    from .models import build_model, pick_device

    scale = args.scale
    if scale is None or not math.isfinite(scale) or scale <= 1:
        raise LightSRError(f"--scale must be a number above 1, got {scale}")
    overwrite = bool(getattr(args, "overwrite", False))
    if args.json and Path(args.json).exists() and not overwrite:
        raise LightSRError(f"{args.json} exists; refusing to overwrite it (pass --overwrite)")
    for d in args.data:  # fail on a bad folder before building the model
        BenchmarkFolder(d, scale, args.protocol, cache=False)
    device = pick_device(args.device)
    weights = args.weights
    if weights is None:
        from .models import get_entry

        entry = get_entry(args.model)
        weights = entry.shipped_weights(scale)
        if weights is not None:
            print(f"lightsr: using the weights shipped with lightsr: {weights.name}", file=sys.stderr)
        elif entry.scales is not None:
            print(f"lightsr: warning: no --weights given and none shipped for {entry.name} x{scale:g}; "
                  "evaluating randomly initialised weights", file=sys.stderr)
    model = build_model(args.model, scale, weights, model_options(args), device)
    results = evaluate(model, args.data, scale, protocol=args.protocol, self_ensemble=args.self_ensemble,
                       device=device, cache_dir=args.cache_dir, save_dir=args.save_images, overwrite=overwrite)
    print(format_table(results, scale, args.protocol))
    if args.json:
        write_json(args.json, results, overwrite=overwrite)  # an identical image's PSNR is null
    return 0
