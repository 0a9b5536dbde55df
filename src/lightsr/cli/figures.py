"""The figure commands (:mod:`lightsr.plots`, :mod:`lightsr.lam`; matplotlib is an optional extra):
``lightsr plot`` (PSNR against FLOPs), ``lightsr compare`` (zoomed crops side by side) and
``lightsr lam`` (Local Attribution Map)."""
from __future__ import annotations

from ._options import figure_args, scale_value


def add_parser(sub) -> None:
    _add_plot(sub)
    _add_compare(sub)
    _add_lam(sub)


def _add_plot(sub) -> None:
    p = sub.add_parser("plot", help="PSNR against FLOPs from `eval --json` files (needs .[plot])",
                       description="One panel per dataset and scale: each eval JSON is a labelled point at "
                       "(FLOPs, PSNR), marker area proportional to its parameters. PNG, SVG or PDF by extension.")
    p.add_argument("results", nargs="+", metavar="EVAL.json", help="files written by `lightsr eval --json`")
    figure_args(p, "chart")
    p.set_defaults(run=run_plot)


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="zoomed crops of several models side by side (needs .[plot])",
                       description="HR image -> LR (standard protocol bicubic) -> each model -> one row of "
                       "nearest-neighbour zoomed crops, HR first, labelled with PSNR/SSIM on the whole image.")
    p.add_argument("image", metavar="IMAGE", help="an HR image")
    p.add_argument("--models", nargs="+", required=True, metavar="SPEC",
                   help="registered name (shipped weights; NAME:photo for its photo weights), NAME=CHECKPOINT, "
                        "a lightsr checkpoint, or bicubic")
    p.add_argument("--jpeg", type=int, default=None, metavar="Q",
                   help="save the LR as JPEG at quality Q first (the compressed input users bring)")
    p.add_argument("--scale", type=scale_value, required=True, help="up-scaling factor")
    p.add_argument("--box", default=None, metavar="Y,X,H,W",
                   help="crop in HR pixels (default: where the models differ most)")
    p.add_argument("--tile", type=int, default=200, metavar="PX", help="zoomed crop size (default 200)")
    p.add_argument("--no-overview", action="store_true", help="no whole-image panel with the box")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cpu)")
    figure_args(p, "grid")
    p.set_defaults(run=run_compare)


def _add_lam(sub) -> None:
    p = sub.add_parser("lam", help="Local Attribution Map and diffusion index (needs .[plot])",
                       description="LAM (Gu and Dong, CVPR 2021): path-integrated gradients along a progressive "
                       "blur, attributing the gradient magnitude of an output window to the LR input.")
    p.add_argument("--model", required=True, metavar="SPEC",
                   help="registered name (shipped weights), NAME=CHECKPOINT or a lightsr checkpoint")
    p.add_argument("--scale", type=scale_value, required=True, help="up-scaling factor")
    p.add_argument("--image", required=True, help="an HR image (LR made by the standard protocol's bicubic)")
    p.add_argument("--window", required=True, metavar="Y,X[,SIZE]",
                   help="output window, HR pixels (SIZE default 16)")
    p.add_argument("--steps", type=int, default=50, help="integration steps (default 50)")
    p.add_argument("--sigma", type=float, default=1.2, help="blur of the baseline (default 1.2)")
    p.add_argument("--json", metavar="FILE", help="write DI and the integration figures")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cpu)")
    figure_args(p, "lam")
    p.set_defaults(run=run_lam)


def run_plot(args) -> int:
    from ..plots import plot_results, require_matplotlib

    require_matplotlib()
    out = plot_results(args.results, args.output, overwrite=args.overwrite)
    print(f"lightsr: wrote {out}")
    return 0


def run_compare(args) -> int:
    from ..plots import compare

    res = compare(args.image, args.models, args.scale, args.output, box=args.box, tile=args.tile,
                  overview=not args.no_overview, overwrite=args.overwrite, device=args.device, jpeg=args.jpeg)
    y, x, h, w = res["box"]
    width = max(len(r["label"]) for r in res["rows"])
    for r in res["rows"]:
        print(f"{r['label']:<{width}}  {r['psnr']:.4f} dB  SSIM {r['ssim']:.4f}")
    lr = f"; LR as JPEG q{args.jpeg}" if args.jpeg is not None else ""
    print(f"(Y channel, standard protocol, whole image{lr}; box y={y} x={x} h={h} w={w}) -> {res['path']}")
    return 0


def run_lam(args) -> int:
    from ..lam import lam_figure

    fig = lam_figure(args.model, args.image, args.scale, args.window, args.output, steps=args.steps,
                     sigma=args.sigma, json_path=args.json, device=args.device, overwrite=args.overwrite)
    res, (y, x, size) = fig["result"], fig["result"].window
    print(f"{fig['label']} x{args.scale:g}: DI {res.di:.2f} (window {size} px at y={y}, x={x}; "
          f"completeness error {res.completeness_error * 100:.2f} %) -> {fig['path']}")
    return 0
