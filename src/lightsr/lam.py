"""Local Attribution Maps (Gu and Dong, "Interpreting Super-Resolution Networks with Local Attribution
Maps", CVPR 2021) and their diffusion index; ``lightsr lam``.

What LAM attributes, following the paper (section 3):

* **objective** ``D``: the *gradient magnitude* of the SR output inside a local window of the output
  (``size`` x ``size`` HR pixels at row ``y``, column ``x``; 16 by default): the sum over the window
  and the three channels of ``sqrt(dy^2 + dx^2)``, with ``dy``, ``dx`` the forward differences to the
  next row / column (the "gradient detector" of the paper, as its reference demo computes it). It
  measures the edges and textures the network draws there, not its pixel values.
* **baseline**: the LR input blurred by a Gaussian of standard deviation ``sigma`` (1.2 by default,
  a ``kernel_size`` x ``kernel_size`` = 9 x 9 kernel, reflected borders): the image without the
  high-frequency features whose use LAM measures.
* **path**: progressive blurring, ``gamma(a) = G(sigma (1 - a)) * I`` for ``a`` from 0 (the
  baseline) to 1 (the input); ``G(0)`` is the identity.
* **attribution** of LR pixel ``i`` (path-integrated gradients, eq. 6-7 of the paper):
  ``LAM_i = integral_0^1 dD(F(gamma(a)))/dgamma_i * dgamma_i/da da``, integrated over ``m = steps``
  steps (50 by default) by the trapezoidal rule:
  ``sum_{k=1..m} (g_k + g_{k-1}) / 2 * (gamma(k/m) - gamma((k-1)/m))_i`` with ``g_k`` the gradient at
  ``gamma(k/m)``. The paper's demo sums ``g_k`` alone (the right Riemann sum); the trapezoid costs one
  more forward pass and is far closer to the integral (IMDN on a 48x48 crop of butterfly.png: 0.5 %
  instead of 7.6 % completeness error at 50 steps).
  By the path-integral (completeness) property the attributions sum to
  ``D(F(I)) - D(F(baseline))`` up to the discretisation error (:attr:`LAMResult.completeness_error`).
* **map**: ``|sum over channels of LAM|`` per LR pixel, normalised to a maximum of 1.
* **diffusion index** ``DI = (1 - Gini(map)) * 100`` (section 4.2): 0 when one pixel carries all the
  attribution, 100 when every pixel carries the same; it grows with the range of input pixels the
  network uses. DI depends on the LR size (more pixels, more zeros): compare models on the same
  image, crop and window.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .errors import LightSRError

__all__ = ["LAMResult", "local_attribution_map", "window_objective", "blur", "blur_path", "gini",
           "diffusion_index", "parse_window", "draw_lam", "lam_figure"]

DEFAULT_WINDOW = 16
DEFAULT_STEPS = 50
DEFAULT_SIGMA = 1.2
DEFAULT_KERNEL = 9


@dataclass
class LAMResult:
    attribution: np.ndarray  # (C, h, w) float64: per LR pixel and channel
    map: np.ndarray  # (h, w): |sum over channels|, max 1 (all zeros if nothing is attributed)
    di: float  # diffusion index, (1 - Gini(map)) * 100
    objective_input: float  # D(F(I))
    objective_baseline: float  # D(F(baseline))
    window: tuple[int, int, int]  # (y, x, size) in output pixels
    steps: int
    sigma: float
    sr: np.ndarray = field(repr=False, default=None)  # (H, W, 3) uint8 output for the input

    @property
    def completeness_error(self) -> float:
        """|sum(attribution) - (D(input) - D(baseline))| relative to the latter."""
        delta = self.objective_input - self.objective_baseline
        return abs(float(self.attribution.sum()) - delta) / max(abs(delta), 1e-12)

    def to_json(self) -> dict:
        return {"di": self.di, "window": {"y": self.window[0], "x": self.window[1], "size": self.window[2]},
                "steps": self.steps, "sigma": self.sigma, "objective_input": self.objective_input,
                "objective_baseline": self.objective_baseline,
                "attribution_sum": float(self.attribution.sum()),
                "completeness_error": self.completeness_error,
                "lr_size": list(self.map.shape)}


def window_objective(sr: torch.Tensor, y: int, x: int, size: int = DEFAULT_WINDOW) -> torch.Tensor:
    """LAM's local objective per batch item: summed gradient magnitude of ``sr`` (B, C, H, W) in the
    window of rows ``y .. y+size-1`` and columns ``x .. x+size-1``. Returns shape (B,)."""
    patch = sr[:, :, y: y + size + 1, x: x + size + 1]  # one more row/column for the differences
    dy = patch[:, :, 1:, :-1] - patch[:, :, :-1, :-1]
    dx = patch[:, :, :-1, 1:] - patch[:, :, :-1, :-1]
    mag = torch.sqrt(dy * dy + dx * dx + 1e-12)  # eps: a flat patch has a finite (zero) gradient
    return mag[:, :, :size, :size].sum(dim=(1, 2, 3))


def _gaussian(sigma: float, size: int, dtype=torch.float64) -> torch.Tensor:
    r = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(r * r) / (2 * sigma * sigma))
    return g / g.sum()


def blur(x: torch.Tensor, sigma: float, kernel_size: int = DEFAULT_KERNEL) -> torch.Tensor:
    """Gaussian blur of (B, C, h, w) with a separable ``kernel_size`` kernel, reflected borders;
    ``sigma == 0`` returns ``x`` itself."""
    if sigma <= 0:
        return x
    g = _gaussian(sigma, kernel_size).to(x.dtype).to(x.device)
    c = x.shape[1]
    pad = kernel_size // 2
    mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
    y = F.pad(x, (pad, pad, pad, pad), mode=mode)
    y = F.conv2d(y, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(y, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def blur_path(x: torch.Tensor, sigma: float = DEFAULT_SIGMA, steps: int = DEFAULT_STEPS,
              kernel_size: int = DEFAULT_KERNEL) -> torch.Tensor:
    """The progressive-blur path of a (1, C, h, w) image: ``steps + 1`` points, (steps+1, C, h, w),
    from the baseline ``G(sigma) * x`` (index 0) to ``x`` (index ``steps``)."""
    return torch.cat([blur(x, sigma * (1 - k / steps), kernel_size) for k in range(steps + 1)])


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: ``sum_ij |v_i - v_j| / (2 n^2 mean)``, computed on
    the sorted values as ``sum_i (2 i - n - 1) v_(i) / (n sum v)``; 0 for all-equal values."""
    v = np.sort(np.abs(np.asarray(values, dtype=np.float64).ravel()))
    n, total = v.size, v.sum()
    if n == 0 or total <= 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * v).sum() / (n * total))


def diffusion_index(attr_map: np.ndarray) -> float:
    """``(1 - Gini) * 100`` of an attribution map (absolute values)."""
    return (1.0 - gini(attr_map)) * 100.0


def local_attribution_map(model: nn.Module, lr: torch.Tensor | np.ndarray, y: int, x: int,
                          size: int = DEFAULT_WINDOW, *, scale: float | None = None,
                          steps: int = DEFAULT_STEPS, sigma: float = DEFAULT_SIGMA,
                          kernel_size: int = DEFAULT_KERNEL, batch: int = 4) -> LAMResult:
    """LAM of ``model`` for the output window at (``y``, ``x``) of side ``size`` (output pixels).

    ``lr``: (1, 3, h, w) float tensor in [0, 1], or an (h, w, 3) uint8 array. ``scale`` is needed only
    for continuous (arbitrary-scale) models. ``batch``: path points per forward pass (memory).
    """
    if isinstance(lr, np.ndarray):
        if lr.ndim != 3 or lr.shape[2] != 3:
            raise LightSRError(f"LAM needs an (h, w, 3) RGB image, got shape {lr.shape}")
        lr = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).float().div(255.0)[None]
    if lr.ndim != 4 or lr.shape[0] != 1:
        raise LightSRError(f"LAM needs one (1, C, h, w) image, got shape {tuple(lr.shape)}")
    if steps < 1:
        raise LightSRError(f"--steps must be at least 1, got {steps}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise LightSRError(f"--sigma must be a positive number, got {sigma}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise LightSRError(f"the blur kernel size must be odd and positive, got {kernel_size}")
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    from .models.loading import forward_at

    fn = forward_at(model, scale)
    was_training = model.training
    model.eval()
    lr = lr.detach().to(device=dev, dtype=torch.float64)
    path = blur_path(lr, sigma, steps, kernel_size)  # (steps+1, C, h, w), float64
    grads = torch.zeros_like(path)
    objectives = torch.zeros(steps + 1, dtype=torch.float64)
    out_hw = None
    sr_u8 = None
    try:
        with torch.enable_grad():
            for start in range(0, steps + 1, batch):
                pts = path[start: start + batch].to(dtype).requires_grad_(True)
                out = fn(pts)
                if out_hw is None:
                    out_hw = tuple(out.shape[-2:])
                    if y < 0 or x < 0 or size < 1 or y + size >= out_hw[0] or x + size >= out_hw[1]:
                        raise LightSRError(f"window y={y}, x={x}, size={size} is not inside the "
                                           f"{out_hw[0]}x{out_hw[1]} output (it needs one pixel more "
                                           "below and right for the gradients)")
                obj = window_objective(out.float(), y, x, size)
                (g,) = torch.autograd.grad(obj.sum(), pts)
                grads[start: start + batch] = torch.nan_to_num(g.detach().to(torch.float64))
                objectives[start: start + batch] = obj.detach().to(torch.float64).cpu()
                if start + batch > steps:  # the last chunk holds the input itself
                    last = out[-1:].detach().float().clamp(0, 1).mul(255).round()
                    sr_u8 = last[0].byte().permute(1, 2, 0).cpu().numpy()
    finally:
        model.train(was_training)
    # trapezoidal rule: the mean gradient of both ends of each step times the step
    attr = (0.5 * (grads[1:] + grads[:-1]) * (path[1:] - path[:-1])).sum(dim=0).cpu().numpy()
    amap = np.abs(attr.sum(axis=0))
    peak = amap.max()
    amap = amap / peak if peak > 0 else amap
    return LAMResult(attribution=attr, map=amap, di=diffusion_index(amap),
                     objective_input=float(objectives[-1]), objective_baseline=float(objectives[0]),
                     window=(int(y), int(x), int(size)), steps=steps, sigma=float(sigma), sr=sr_u8)


def parse_window(text: str) -> tuple[int, int, int]:
    """``"Y,X"`` or ``"Y,X,SIZE"`` (output pixels) -> (y, x, size)."""
    try:
        parts = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise LightSRError(f"--window expects Y,X or Y,X,SIZE in output pixels, got {text!r}") from None
    if len(parts) not in (2, 3):
        raise LightSRError(f"--window expects Y,X or Y,X,SIZE in output pixels, got {text!r}")
    y, x = parts[:2]
    size = parts[2] if len(parts) == 3 else DEFAULT_WINDOW
    if y < 0 or x < 0 or size < 1:
        raise LightSRError(f"--window needs Y, X >= 0 and SIZE >= 1, got {text!r}")
    return y, x, size


def _smooth_density(amap: np.ndarray) -> np.ndarray:
    """The "area of contribution" panel: the map spread by a Gaussian (a kernel density estimate
    weighted by attribution), normalised to a maximum of 1."""
    if amap.max() <= 0:
        return amap
    s = max(1.0, min(amap.shape) / 24)
    t = torch.from_numpy(amap)[None, None]
    d = blur(t, s, int(2 * math.ceil(3 * s) + 1))[0, 0].numpy()
    return d / d.max()


def draw_lam(output, lr: np.ndarray, result: LAMResult, *, title: str = "", hr: np.ndarray | None = None,
             overwrite: bool = False, panel: int = 320, dpi: int = 100) -> Path:
    """The paper's figure: (the HR image,) the LR input with the window marked, the LAM map over the
    LR input and the area of contribution over it, DI in the title. PNG/SVG/PDF by extension; each
    panel is ``panel`` pixels wide."""
    from .plots import require_matplotlib, save_figure

    mpl = require_matplotlib()
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    y, x, size = result.window
    h, w = lr.shape[:2]
    out_h = result.sr.shape[0] if result.sr is not None else (hr.shape[0] if hr is not None else h)
    k = h / out_h  # output pixels -> LR pixels
    lr_f = lr.astype(np.float64) / 255.0
    cmap = mpl.colormaps["seismic"]  # 0 -> white, 1 -> red, as the paper draws its maps
    heat = cmap(0.5 + 0.5 * result.map)[..., :3]
    dens = cmap(0.5 + 0.5 * _smooth_density(result.map))[..., :3]
    images = [("HR", hr.astype(np.float64) / 255.0, 1.0)] if hr is not None else []
    images += [("LR input", lr_f, k), ("LAM", 0.5 * heat + 0.5 * lr_f, k),
               ("area of contribution", 0.5 * dens + 0.5 * lr_f, k)]
    n = len(images)
    pw, ph = panel, int(round(panel * h / w))
    top, bottom = 46, 20
    H, W = ph + top + bottom, n * pw
    fig = Figure(figsize=(W / dpi, H / dpi), dpi=dpi)
    fig.patch.set_facecolor("white")
    for i, (name, img, kk) in enumerate(images):
        ax = fig.add_axes([i / n + 2 / W, bottom / H, (pw - 4) / W, ph / H])
        ax.imshow(np.clip(img, 0, 1), interpolation="nearest", aspect="auto")
        if name != "LAM":  # the map itself stays unmarked: its hottest pixels lie under the window
            ax.add_patch(Rectangle((x * kk - 0.5, y * kk - 0.5), size * kk, size * kk, fill=False,
                                   edgecolor="red", linewidth=1.5))
        ax.set_axis_off()
        fig.text((i + 0.5) / n, 3 / H, name, ha="center", va="bottom", fontsize=9)
    head = f"{title}   " if title else ""
    fig.text(0.5, 1 - 4 / H, f"{head}DI = {result.di:.2f}", ha="center", va="top", fontsize=12, weight="bold")
    fig.text(0.5, 1 - 26 / H, f"window {size}x{size} at y={y}, x={x} (output pixels), {result.steps} steps, "
             f"blur sigma {result.sigma:g}", ha="center", va="top", fontsize=8)
    return save_figure(fig, output, overwrite=overwrite, dpi=dpi)


def lam_figure(model: str, image: str | Path, scale: float, window: str | tuple[int, int, int], output,
               *, steps: int = DEFAULT_STEPS, sigma: float = DEFAULT_SIGMA, json_path=None, device=None,
               overwrite: bool = False) -> dict:
    """``lightsr lam`` as a function: the HR ``image`` -> LR (standard protocol bicubic) -> the LAM of
    ``model`` (a registered name with shipped weights, ``NAME=CHECKPOINT`` or a checkpoint) for the
    output ``window`` (``"Y,X[,SIZE]"`` or (y, x, size)) drawn to ``output`` and, with ``json_path``,
    its figures written as JSON. Returns ``label``, ``weights``, ``result`` (:class:`LAMResult`), ``path``."""
    from .files import write_json
    from .plots import check_output, load_hr_lr, require_matplotlib, resolve_spec

    check_output(output, overwrite, figure=True)
    if json_path:
        check_output(json_path, overwrite)
    require_matplotlib()
    text = window if isinstance(window, str) else ",".join(str(int(v)) for v in window)
    y, x, size = parse_window(text)
    hr, lr = load_hr_lr(image, scale)
    if y + size >= hr.shape[0] or x + size >= hr.shape[1]:
        raise LightSRError(f"--window {text} is not inside the {hr.shape[0]}x{hr.shape[1]} output "
                           f"of {Path(image).name} at x{scale:g} (the window needs one pixel "
                           "more below and right)")
    label, net, weights = resolve_spec(model, scale, device=device)
    if sum(p.numel() for p in net.parameters()) == 0:
        raise LightSRError(f"{label} has no parameters to attribute through; LAM needs a network")
    res = local_attribution_map(net, lr, y, x, size, scale=scale, steps=steps, sigma=sigma)
    out = draw_lam(output, lr, res, title=f"{label} x{scale:g}", hr=hr, overwrite=overwrite)
    if json_path:
        write_json(json_path, {"model": label, "weights": weights, "scale": scale,
                               "image": str(image), **res.to_json()}, overwrite=overwrite)
    return {"label": label, "weights": weights, "result": res, "path": out}
