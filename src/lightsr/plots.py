"""The pictures efficient-SR papers argue with: PSNR against FLOPs (``lightsr plot``) and zoomed
comparison crops (``lightsr compare``); the LAM figure is in :mod:`lightsr.lam`.

matplotlib is an optional extra (``pip install 'lightsr[plot]'``); without it the commands say so in
one line. Figures are drawn on :class:`matplotlib.figure.Figure` objects (no pyplot state, no
display needed) at an exact pixel size, and written atomically by extension: ``.png``, ``.svg`` or
``.pdf``. An existing output is never replaced unless ``overwrite``.

* :func:`plot_results`: one panel per (dataset, scale) found in ``lightsr eval --json`` files; each
  file is one labelled point at (FLOPs, PSNR) with marker *area* proportional to its parameter count;
  a model without FLOPs (bicubic) is a dashed horizontal line. The FLOPs convention written by eval
  (``meta["flops_convention"]``) labels the axis; files of different conventions are refused.
* :func:`compare`: an HR image -> LR by the standard protocol's bicubic (exactly as ``lightsr eval``
  builds it) -> each model -> one row of nearest-neighbour zoomed crops of a box (HR crop first,
  after an overview of the whole HR image with the box drawn), each labelled with the model's
  PSNR / SSIM on the whole image (standard protocol, ``scale`` pixels shaved: eval's figures).
  Without a box, the box is the window where the models' outputs differ most (largest summed
  per-pixel variance of their Y channels).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .errors import LightSRError

__all__ = ["FIGURE_EXTENSIONS", "require_matplotlib", "save_figure", "check_output", "load_hr_lr",
           "resolve_spec", "load_eval_json", "plot_results", "parse_box", "auto_box", "compare_layout",
           "compare"]

FIGURE_EXTENSIONS = (".png", ".svg", ".pdf")
INSTALL_HINT = "matplotlib is not installed; pip install 'lightsr[plot]' (or: pip install matplotlib)"


def require_matplotlib():
    """The matplotlib module, or a one-line error saying what to install."""
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise LightSRError(INSTALL_HINT) from None
    return matplotlib


def check_output(path, overwrite: bool = False, figure: bool = False) -> Path:
    """Fail early (before any model runs) on an existing output or an unsupported figure format."""
    path = Path(path)
    if figure and path.suffix.lower() not in FIGURE_EXTENSIONS:
        raise LightSRError(f"{path}: the figure format comes from the extension; use "
                           f"{', '.join(FIGURE_EXTENSIONS)}")
    if path.exists() and not overwrite:
        raise LightSRError(f"{path} exists; refusing to overwrite it (pass --overwrite)")
    return path


def save_figure(fig, output, overwrite: bool = False, dpi: int = 100) -> Path:
    """Write ``fig`` atomically in the format of ``output``'s extension; the figure is released."""
    from .files import atomic_write

    path = check_output(output, overwrite, figure=True)
    fmt = path.suffix.lower()[1:]
    meta = {"Software": "lightsr"} if fmt == "png" else {"Creator": "lightsr"}
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta), overwrite=overwrite)
    fig.clear()
    return path


def load_hr_lr(image, scale: float, jpeg: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(HR, LR) uint8 RGB of one image file as ``lightsr eval`` builds them (standard protocol):
    8-bit read, gray replicated, HR cropped to a multiple of the scale, LR by MATLAB bicubic (then,
    with ``jpeg``, saved as JPEG at that quality and decoded, as ``eval --jpeg``)."""
    from .data.benchmark import as_8bit, crop_hr, make_lr, to_rgb
    from .imageio import read_image

    if scale is None or not math.isfinite(scale) or scale <= 1:
        raise LightSRError(f"--scale must be a number above 1, got {scale}")
    path = Path(image)
    if not path.is_file():
        raise LightSRError(f"image not found: {path}")
    hr = crop_hr(as_8bit(read_image(path)), scale)
    lr = make_lr(hr, scale)
    if jpeg is not None:
        from .data.degradations import jpeg_u8

        if not 1 <= int(jpeg) <= 100:
            raise LightSRError(f"the JPEG quality must be an integer from 1 to 100, got {jpeg}")
        lr = jpeg_u8(lr, int(jpeg))
    return to_rgb(hr), to_rgb(lr)


def resolve_spec(spec: str, scale: float, device=None):
    """A model spec -> (label, model in eval mode, weights description), through the front door
    (:func:`lightsr.models.resolve.resolve`): ``bicubic``; a registered name (its weights for ``scale``;
    ``NAME:photo`` its photo weights, :mod:`lightsr.photo`); ``NAME=PATH`` (a checkpoint of that
    architecture); or a checkpoint path, its architecture read from its keys and shapes."""
    from .models import pick_device
    from .models.resolve import MissingWeights, resolve

    dev = pick_device(device) if device is not None else "cpu"
    spec, kind = str(spec).strip(), "clean"
    if spec.endswith(":photo") and "=" not in spec:
        spec, kind = spec[: -len(":photo")], "photo"
    try:
        desc = resolve(spec, scale=scale, kind=kind, device=dev)
    except MissingWeights as exc:
        raise LightSRError(f"no weights ship with lightsr for {exc.name} x{scale:g}; "
                           f"pass {exc.name}=PATH with a checkpoint") from None
    if desc.origin == "file":
        stem = Path(desc.source).stem
        label = desc.model if stem.startswith(desc.model) else f"{desc.model} ({stem})"
        return label, desc.module, desc.source
    label = desc.model + (" (photo)" if kind == "photo" else "")
    return label, desc.module, (f"{desc.origin}:{Path(desc.source).name}" if desc.source else None)


# ----------------------------------------------------------------------------------------------
# PSNR against FLOPs


def load_eval_json(path) -> dict:
    """``{"meta": {...}, "sets": {name: {"psnr", "ssim"}}}`` of one ``lightsr eval --json`` file."""
    path = Path(path)
    if not path.is_file():
        raise LightSRError(f"eval results not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LightSRError(f"{path} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise LightSRError(f"{path} is not a `lightsr eval --json` file")
    meta = data.get("meta")
    sets = {k: v for k, v in data.items() if k != "meta" and isinstance(v, dict) and "psnr" in v}
    if not sets:
        raise LightSRError(f"{path} is not a `lightsr eval --json` file (no per-dataset PSNR)")
    if not isinstance(meta, dict) or not {"model", "scale", "params"} <= set(meta):
        raise LightSRError(f"{path} has no model description (\"meta\"); it was written by an older "
                           "lightsr eval: run `lightsr eval ... --json` again")
    return {"meta": meta, "sets": sets, "path": path}


_CONVENTION_TEXT = {
    "macs": "multiply-accumulates",
    "fvcore": "fvcore convention (papers' FLOPs)",
}


def _panel_grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return int(math.ceil(n / cols)), cols


def plot_results(paths, output, *, overwrite: bool = False, panel: tuple[int, int] = (560, 420),
                 dpi: int = 100, log_x: bool | None = None) -> Path:
    """PSNR against FLOPs for the eval JSON files ``paths`` (see the module docstring). The figure
    is ``cols * panel[0]`` x ``rows * panel[1]`` pixels, with ``cols = min(panels, 3)``."""
    require_matplotlib()
    from matplotlib.figure import Figure

    check_output(output, overwrite, figure=True)
    runs = [load_eval_json(p) for p in paths]
    if not runs:
        raise LightSRError("no eval results given")
    conventions = {r["meta"].get("flops_convention", "macs") for r in runs if r["meta"].get("flops")}
    if len(conventions) > 1:
        raise LightSRError(f"the files count FLOPs by different conventions ({', '.join(sorted(conventions))}); "
                           "re-run lightsr eval so they agree")
    convention = conventions.pop() if conventions else "macs"
    out_hw = next((r["meta"].get("flops_output_size") for r in runs if r["meta"].get("flops_output_size")),
                  [720, 1280])
    keys: list[tuple[str, float]] = []
    for r in runs:
        for name in r["sets"]:
            k = (name, float(r["meta"]["scale"]))
            if k not in keys:
                keys.append(k)
    max_params = max([float(r["meta"].get("params") or 0) for r in runs] + [1.0])
    area = 900.0 / max_params  # points^2 per parameter: the largest model gets 900 pt^2
    rows, cols = _panel_grid(len(keys))
    fig = Figure(figsize=(cols * panel[0] / dpi, rows * panel[1] / dpi), dpi=dpi, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    colors = [f"C{i}" for i in range(10)]
    protocol = runs[0]["meta"].get("protocol", "standard")
    for ax in axes.ravel()[len(keys):]:
        ax.set_axis_off()
    for ax, (dname, scale) in zip(axes.ravel(), keys):
        pts = [r for r in runs if dname in r["sets"] and float(r["meta"]["scale"]) == scale]
        labels = [r["meta"].get("label") or r["meta"]["model"] for r in pts]
        dup = {lb for lb in labels if labels.count(lb) > 1}
        flops = [(r["meta"].get("flops") or 0) / 1e9 for r in pts]
        positive = [f for f in flops if f > 0]
        use_log = log_x if log_x is not None else (len(positive) > 1 and max(positive) / min(positive) > 20)
        for i, (r, lb, f) in enumerate(zip(pts, labels, flops)):
            psnr = r["sets"][dname]["psnr"]
            if psnr is None:
                continue
            if lb in dup and r["meta"].get("weights"):
                lb = f"{lb} ({Path(str(r['meta']['weights'])).stem})"
            c = colors[i % len(colors)]
            if f <= 0:  # no FLOPs (bicubic): a reference line
                ax.axhline(psnr, color="0.5", linestyle="--", linewidth=1)
                ax.annotate(lb, xy=(0.01, psnr), xycoords=("axes fraction", "data"), va="bottom",
                            fontsize=8, color="0.35")
                continue
            size = max(float(r["meta"].get("params") or 0) * area, 4.0)
            ax.scatter([f], [psnr], s=size, color=c, alpha=0.6, edgecolors="black", linewidths=0.6, zorder=3)
            ax.annotate(lb, xy=(f, psnr), xytext=(math.sqrt(size) / 2 + 3, 0), textcoords="offset points",
                        va="center", fontsize=8, zorder=4)
        if use_log:
            ax.set_xscale("log")
        if positive:
            lo, hi = min(positive), max(positive)
            pad = (hi / lo) ** 0.15 if use_log else None
            ax.set_xlim(lo / pad, hi * pad * 1.4) if use_log else ax.set_xlim(0, hi * 1.25)
        ax.margins(y=0.25)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{dname} x{scale:g}", fontsize=11)
        ax.set_xlabel(f"FLOPs (G) at {out_hw[1]}x{out_hw[0]} output, "
                      f"{_CONVENTION_TEXT.get(convention, convention)}", fontsize=8)
        ax.set_ylabel(f"PSNR (dB, Y, {protocol} protocol)", fontsize=8)
        ax.tick_params(labelsize=8)
    # marker-area key: the marker a model of round size would get
    ref = 10 ** math.floor(math.log10(max_params)) if max_params > 1 else 1
    handles = [axes[0, 0].scatter([], [], s=n * ref * area, color="0.8", edgecolors="black", linewidths=0.6)
               for n in (1, 5) if n * ref <= max_params * 1.01]
    if handles:
        names = [f"{n * ref / 1e3:g}K params" for n in (1, 5) if n * ref <= max_params * 1.01]
        axes[0, 0].legend(handles, names, loc="lower right", fontsize=8, title="marker area ∝ parameters",
                          title_fontsize=8, labelspacing=1.5, borderpad=0.9, handletextpad=1.2, framealpha=0.8)
    return save_figure(fig, output, overwrite=overwrite, dpi=dpi)


# ----------------------------------------------------------------------------------------------
# zoomed comparison crops


def parse_box(text: str, hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """``"Y,X,H,W"`` in HR pixels, checked against the (cropped) HR size ``hw``."""
    try:
        parts = [int(v) for v in str(text).split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4:
        raise LightSRError(f"--box expects Y,X,H,W in HR pixels, got {text!r}")
    y, x, h, w = parts
    if h < 1 or w < 1 or y < 0 or x < 0 or y + h > hw[0] or x + w > hw[1]:
        raise LightSRError(f"--box {text} is not inside the {hw[0]}x{hw[1]} HR image")
    return y, x, h, w


def auto_box(outputs: list[np.ndarray], hr: np.ndarray, size: int | None = None,
             margin: int = 0) -> tuple[int, int, int, int]:
    """The square window where ``outputs`` differ most: the largest sum of per-pixel variance of
    their Y channels (against the HR for a single output), ``margin`` pixels kept off the border."""
    from .metrics import rgb_to_y

    stack = [rgb_to_y(o) for o in outputs] + ([rgb_to_y(hr)] if len(outputs) < 2 else [])
    var = np.var(np.stack(stack), axis=0)
    H, W = var.shape
    size = size or max(16, min(H, W) // 5)
    size = min(size, H - 2 * margin, W - 2 * margin)
    if size < 1:
        raise LightSRError(f"the {H}x{W} image is too small to pick a box")
    ii = np.pad(var.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = ii[size:, size:] - ii[:-size, size:] - ii[size:, :-size] + ii[:-size, :-size]
    sums = sums[margin: H - size - margin + 1, margin: W - size - margin + 1]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y) + margin, int(x) + margin, size, size


def compare_layout(n_models: int, box_hw: tuple[int, int], tile: int = 200, overview: bool = True,
                   hr_hw: tuple[int, int] | None = None) -> dict:
    """Pixel layout of the compare grid: each crop zoomed by the integer factor
    ``zoom = max(1, tile // max(box))`` (nearest neighbour), panels ``gap`` px apart, labels above.
    Returns ``zoom``, the panel size and the figure size in pixels."""
    bh, bw = box_hw
    zoom = max(1, tile // max(bh, bw))
    ph, pw = bh * zoom, bw * zoom
    gap, label = 8, 40
    ow = int(round(hr_hw[1] * ph / hr_hw[0])) if overview and hr_hw else 0
    width = gap + (n_models + 1) * (pw + gap) + (ow + gap if ow else 0)
    height = label + ph + gap
    return {"zoom": zoom, "panel": (ph, pw), "overview_width": ow, "gap": gap, "label": label,
            "size": (height, width)}


def _sr_image(model, lr: np.ndarray, scale: float) -> np.ndarray:
    import torch

    from .evaluate import device_of, dtype_of, to_batch, to_u8
    from .models.loading import forward_at

    x = to_batch(lr, device_of(model), dtype_of(model))
    with torch.inference_mode():
        y = forward_at(model, scale)(x)
    return to_u8(y)


def compare(image, models: list[str], scale: float, output, *, box: str | tuple | None = None,
            tile: int = 200, overview: bool = True, overwrite: bool = False, device=None, dpi: int = 100,
            jpeg: int | None = None) -> dict:
    """The comparison row for ``image`` (see the module docstring). Returns ``box`` (y, x, h, w),
    ``rows`` (label, weights, psnr, ssim per model), ``size`` (H, W of the figure) and ``path``."""
    require_matplotlib()
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from .metrics import psnr_ssim

    check_output(output, overwrite, figure=True)
    if not models:
        raise LightSRError("--models needs at least one model")
    hr, lr = load_hr_lr(image, scale, jpeg)
    rows, outputs = [], []
    for spec in models:
        label, model, weights = resolve_spec(spec, scale, device)
        sr = _sr_image(model, lr, scale)
        if sr.shape != hr.shape:
            raise LightSRError(f"{label}: output {sr.shape[1]}x{sr.shape[0]} does not match the HR "
                               f"{hr.shape[1]}x{hr.shape[0]} at x{scale:g}")
        p, s = psnr_ssim(sr, hr, scale, "standard")
        rows.append({"label": label, "weights": weights, "psnr": p, "ssim": s})
        outputs.append(sr)
    if box is None:
        b = auto_box(outputs, hr, margin=int(math.ceil(scale)))
    elif isinstance(box, str):
        b = parse_box(box, hr.shape[:2])
    else:
        b = parse_box(",".join(str(int(v)) for v in box), hr.shape[:2])
    y, x, h, w = b
    lay = compare_layout(len(models), (h, w), tile, overview, hr.shape[:2])
    H, W = lay["size"]
    ph, pw = lay["panel"]
    gap, top = lay["gap"], lay["label"]
    fig = Figure(figsize=(W / dpi, H / dpi), dpi=dpi)
    fig.patch.set_facecolor("white")

    def panel(left: int, width: int, img: np.ndarray, title: str):
        ax = fig.add_axes([left / W, gap / H, width / W, ph / H])
        ax.imshow(img, interpolation="nearest", aspect="auto")
        ax.set_axis_off()
        fig.text((left + width / 2) / W, (H - 4) / H, title, ha="center", va="top", fontsize=9)
        return ax

    left = gap
    if lay["overview_width"]:
        ax = panel(left, lay["overview_width"], hr, f"{Path(image).name} x{scale:g}\nbox y={y} x={x} {h}x{w}")
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="red", linewidth=1.5))
        left += lay["overview_width"] + gap
    z = lay["zoom"]
    crops = [("HR", hr)] + [(r["label"], o) for r, o in zip(rows, outputs)]
    for i, (name, img) in enumerate(crops):
        crop = img[y: y + h, x: x + w].repeat(z, axis=0).repeat(z, axis=1)
        title = name if i == 0 else f"{name}\n{rows[i - 1]['psnr']:.2f} dB / {rows[i - 1]['ssim']:.4f}"
        panel(left, pw, crop, title)
        left += pw + gap
    path = save_figure(fig, output, overwrite=overwrite, dpi=dpi)
    return {"box": b, "rows": rows, "size": (H, W), "path": path}
