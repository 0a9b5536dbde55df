"""Evaluation loop: benchmark folders -> per-image and per-set PSNR / SSIM (``lightsr eval``).

For every image of every folder (:class:`~lightsr.data.benchmark.BenchmarkFolder`): the LR uint8
image (grayscale replicated to RGB) becomes a (1, 3, h, w) float tensor in [0, 1]; the model's output
is clamped to [0, 1], x255 and rounded to uint8; :func:`~lightsr.metrics.psnr_ssim` scores it under
the chosen protocol. A set's figure is the mean over its images.

The result is ``{"<folder name>": {"psnr": float, "ssim": float,
"images": {"<file>": {"psnr": float, "ssim": float}}}}``. ``lightsr eval --json`` adds one more
top-level entry, ``"meta"`` (:func:`run_meta`: model, scale, params, FLOPs and their convention,
precision, weights and their source, protocol), read by ``lightsr plot``.

:func:`run_evaluation` is the whole ``lightsr eval`` command with plain keyword arguments
(:mod:`lightsr.cli.eval` maps the flags onto it).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .data.benchmark import BenchmarkFolder, scale_text, to_rgb
from .errors import LightSRError
from .layers.coords import norm_scale
from .models.loading import Descriptor
from .metrics import psnr_ssim, shave_for

__all__ = ["evaluate", "format_table", "run_meta", "run_evaluation", "device_of", "dtype_of", "to_batch", "to_u8"]

Forward = Callable[[torch.Tensor], torch.Tensor]


def device_of(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def dtype_of(model: nn.Module) -> torch.dtype:
    for t in model.parameters():
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def to_batch(img: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)[None]
    return x.to(device=device, dtype=dtype)


def to_u8(y: torch.Tensor) -> np.ndarray:
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


def evaluate(model: nn.Module | Descriptor | None, folders: Iterable[str | Path] | str | Path, scale: float, *,
             protocol: str = "standard", self_ensemble: bool = False, device: str | torch.device | None = None,
             cache_dir: str | Path | None = None, save_dir: str | Path | None = None, overwrite: bool = False,
             progress: bool = True, forward: Forward | None = None, y_only: bool = True,
             precision: str = "fp32", jpeg: int | None = None, backend: str = "auto") -> dict:
    """PSNR/SSIM of ``model`` on each folder of HR images (see the module docstring for the result).

    ``forward``: an optional ``fn(x) -> y`` used instead of the model (a tiled upscaler, say); with it
    ``model`` may be ``None``.
    ``save_dir``: SR images are written to ``save_dir/<folder name>/<stem>.png``; an existing file is
    an error unless ``overwrite``. ``y_only=False`` scores RGB instead of Y. ``precision``: ``"fp32"``
    (default: the plain float32 path, exact reproduction), or ``"auto"``/``"bf16"``/``"fp16"`` through
    :class:`lightsr.inference.Runner` (autocast, channels_last). ``jpeg``: the LR inputs are JPEG at
    this quality (:class:`~lightsr.data.benchmark.BenchmarkFolder`), the score is still against the HR.
    ``backend``: :mod:`lightsr.backends` (``"auto"`` runs PyTorch unless ``precision="auto"``).
    """
    from tqdm.auto import tqdm

    from .inference import ensemble_x8
    from .models.loading import forward_at

    if isinstance(folders, (str, Path)):
        folders = [folders]
    scale = norm_scale(scale)  # a number, or (s_h, s_w) for a continuous model
    sets = [f if isinstance(f, BenchmarkFolder) else BenchmarkFolder(f, scale, protocol, cache_dir, jpeg=jpeg)
            for f in folders]
    names = [bf.name for bf in sets]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise LightSRError(f"two data folders are both named {sorted(dup)[0]}; results are keyed by folder name")
    if not sets:
        raise LightSRError("no data folder given")
    if model is None and forward is None:
        raise LightSRError("evaluate needs a model or a forward function")
    desc = model if isinstance(model, Descriptor) else None  # from lightsr.models.resolve: knows its bf16 verdict
    model = desc.module if desc is not None else (model if model is not None else nn.Identity())
    if device is not None:
        from .models import pick_device

        dev = pick_device(device)
        model = model.to(dev)
    else:
        dev = device_of(model)
    targets = {}
    if save_dir is not None:
        targets = _save_targets(Path(save_dir).expanduser(), sets)
        existing = [p for p in targets.values() if p.exists()]
        if existing and not overwrite:
            raise LightSRError(f"{existing[0]} exists; refusing to overwrite saved images (pass --overwrite)")

    if forward is None and (precision != "fp32" or backend == "openvino"):
        from .backends import make_runner

        runner = make_runner(desc if desc is not None else model, dev, precision, backend=backend)
        forward = lambda t: runner(t, scale=scale if runner.continuous else None)  # noqa: E731
    fn = forward if forward is not None else forward_at(model, scale)
    dtype = dtype_of(model)  # a half-precision model gets half-precision input
    was_training = model.training
    model.eval()
    results: dict = {}
    # progress=True shows the bar on a terminal only (tqdm's disable=None), never in logs or pipes
    bar = tqdm(total=sum(len(bf) for bf in sets), disable=None if progress else True, unit="img", leave=False)
    try:
        for bf in sets:
            per_image = {}
            bar.set_description(f"{bf.name} x{scale_text(scale)}")
            for path in bf.files:
                pair = bf.load(path)
                x = to_batch(to_rgb(pair.lr), dev, dtype)
                with torch.inference_mode():
                    y = ensemble_x8(fn, x) if self_ensemble else fn(x)
                if y.ndim != 4 or y.shape[1] != 3 or tuple(y.shape[-2:]) != pair.hr.shape[:2]:
                    raise LightSRError(f"{bf.name}/{pair.name}: model output {tuple(y.shape)} does not match "
                                       f"the HR size {pair.hr.shape[0]}x{pair.hr.shape[1]} at x{scale_text(scale)}")
                sr = to_u8(y)
                p, s = psnr_ssim(sr, pair.hr, _shave_scale(scale), protocol, y_only=y_only)
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


def _shave_scale(scale) -> float:
    """The scale whose border is shaved: an asymmetric (s_h, s_w) shaves its larger factor on both axes."""
    return max(scale) if isinstance(scale, tuple) else scale


def _check_asymmetric(name: str, continuous: bool, scale, self_ensemble: bool) -> None:
    """An (s_h, s_w) scale runs only on a continuous-scale model, and not through the x8 ensemble."""
    if isinstance(scale, tuple) and not continuous:
        raise LightSRError(f"{name} is a fixed-scale model: an asymmetric --scale {scale_text(scale)} needs a "
                           "continuous-scale model (e.g. anysr_srno_edsr, srno_edsr)")
    if isinstance(scale, tuple) and self_ensemble:
        raise LightSRError(f"--self-ensemble rotates the image, which swaps the axes of --scale {scale_text(scale)}; "
                           "leave it out for an asymmetric scale")


def format_table(results: dict, scale: float, protocol: str = "standard") -> str:
    rows = [("dataset", "scale", "PSNR", "SSIM")]
    for name, r in results.items():
        rows.append((name, f"x{scale_text(scale)}", f"{r['psnr']:.4f}", f"{r['ssim']:.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n(Y channel, {protocol} protocol, {shave_for(_shave_scale(scale))} px shaved)"


def run_meta(desc: Descriptor, scale: float, *, precision: str | None = "fp32", protocol: str = "standard",
             self_ensemble: bool = False) -> dict:
    """What ``lightsr eval --json`` writes under ``"meta"``: the model, scale, parameters, FLOPs
    (multiply-accumulates at 1280x720 output in the papers' fvcore convention, named in
    ``flops_convention``), precision, protocol and where the weights came from (``weights_source``:
    ``file`` a file the user named, ``shipped``, ``published``, or ``none``: random initialisation or
    a model without parameters)."""
    import copy

    from . import __version__
    from . import profile as prof

    convention = "fvcore"

    def count(m: nn.Module) -> int:
        return int(prof.count_flops(m, scale, (720, 1280), convention=convention))

    flops = None
    try:  # shapes only, on the meta device (seconds); the real forward pass if the model needs values
        flops = count(copy.deepcopy(desc.module).to("meta"))
    except Exception:  # noqa: BLE001
        try:
            flops = count(desc.module)
        except Exception as exc:  # noqa: BLE001
            print(f"lightsr: warning: FLOPs not counted ({type(exc).__name__}); the JSON has flops null",
                  file=sys.stderr)
    return {
        "model": desc.model,
        "scale": scale,
        "params": prof.count_params(desc.module),
        "flops": flops,
        "flops_convention": convention,
        "flops_output_size": [720, 1280],
        "precision": precision or "fp32",
        "weights": desc.source,
        "weights_source": desc.origin or "none",
        "options": dict(desc.options),
        "protocol": protocol,
        "self_ensemble": bool(self_ensemble),
        "lightsr": __version__,
    }


def run_evaluation(data: Sequence[str | Path], *, model: str | None = None, weights: str | Path | None = None,
                   scale: float | None = None, options: dict | None = None, device=None,
                   protocol: str = "standard", self_ensemble: bool = False, precision: str = "fp32",
                   cache_dir: str | None = None, save_images: str | None = None, json_path: str | None = None,
                   overwrite: bool = False, random_weights: bool = False, jpeg: int | None = None,
                   backend: str = "auto") -> dict:
    """``lightsr eval`` as a function: resolve the model (a registered ``model`` with ``weights`` or its
    shipped weights; or, without ``model``, the architecture, scale and options read from ``weights``),
    evaluate it on the ``data`` folders, print the table and, with ``json_path``, write the figures
    plus ``"meta"`` (:func:`run_meta`). Returns the per-folder results."""
    from .files import write_json
    from .models import get_entry, pick_device
    from .models.resolve import DEFAULT_SCALE, MissingWeights, resolve

    options = dict(options or {})
    scale = None if scale is None else norm_scale(scale)  # a number, or (s_h, s_w) for a continuous model
    if weights is None and scale is None:
        scale = DEFAULT_SCALE  # what upscale runs without --scale; a checkpoint says its own scale
    if scale is not None and not all(math.isfinite(v) and v > 1 for v in (scale if isinstance(scale, tuple) else (scale,))):
        raise LightSRError(f"--scale must be a number above 1 (or s_h x s_w, each above 1), got {scale_text(scale)}")
    if model is not None and isinstance(scale, tuple):
        _check_asymmetric(get_entry(model).name, get_entry(model).scales is None, scale, self_ensemble)
    if json_path and Path(json_path).exists() and not overwrite:
        raise LightSRError(f"{json_path} exists; refusing to overwrite it (pass --overwrite)")
    for d in data if scale is not None else ():  # fail on a bad folder (or JPEG quality) before loading
        BenchmarkFolder(d, scale, protocol, cache=False, jpeg=jpeg)
    device = pick_device(device)
    try:  # None and no weights: the default model for the scale (the same one upscale runs)
        desc = resolve(model, weights, scale, options, pretrained=not random_weights, device=device)
    except MissingWeights as exc:
        raise LightSRError(f"no --weights given and none shipped or published for {exc.name} "
                           f"x{scale_text(scale)}; pass --weights FILE, or --random-weights to score a "
                           "randomly initialised model") from None
    if desc.origin in ("shipped", "published"):
        where = "shipped with lightsr" if desc.origin == "shipped" else "published (cached)"
        print(f"lightsr: using the weights {where}: {Path(desc.source).name}", file=sys.stderr)
    if weights is not None and (scale is None or model is None):  # the architecture or scale read from weights
        _check_asymmetric(desc.model, desc.continuous, scale, self_ensemble)
        scale = desc.run_scale(scale)  # the checkpoint's own scale (or the one asked of a multi-scale one)
        if scale is None:
            raise LightSRError(f"{weights} is a continuous-scale {desc.model} checkpoint; pass --scale")
        for d in data:
            BenchmarkFolder(d, scale, protocol, cache=False, jpeg=jpeg)
    from .backends import choose_backend

    ran = choose_backend(backend, desc, device, precision)  # an impossible backend: one line, nothing run
    net = desc
    results = evaluate(net, data, scale, protocol=protocol, self_ensemble=self_ensemble,
                       device=device, cache_dir=cache_dir, save_dir=save_images, overwrite=overwrite,
                       precision=precision, jpeg=jpeg, backend=backend)
    print(format_table(results, scale, protocol) + (f"  (LR as JPEG q{jpeg})" if jpeg is not None else ""))
    if json_path:  # the per-dataset figures, plus under "meta" what `lightsr plot` needs
        if "meta" in results:
            raise LightSRError("a data folder named meta clashes with the JSON's \"meta\" entry; rename it")
        meta = run_meta(desc, scale, precision=precision, protocol=protocol, self_ensemble=self_ensemble)
        if ran != "torch":
            meta["backend"] = ran
        if jpeg is not None:
            meta["lr_jpeg_quality"] = jpeg
        write_json(json_path, {**results, "meta": meta}, overwrite=overwrite)  # an identical image's PSNR is null
    return results
