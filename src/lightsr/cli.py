"""Command line: ``lightsr <command> ...``. Each command parses its flags and calls one function
(``run_cli(args) -> int``) of the module that implements it; that module is imported only when
the command runs, so ``lightsr --help`` stays instant.

Errors a user can cause (:class:`~lightsr.errors.LightSRError`) are printed as one line and exit 2.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import os
import sys

from .errors import LightSRError


def parse_options(items: list[str] | None) -> dict:
    """``["hie=false", "windows=[32,16,8,8,16,32]"]`` -> ``{"hie": False, "windows": [...]}``."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise LightSRError(f"--opt expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        low = v.strip().lower()
        if low in ("true", "false"):
            out[k.strip()] = low == "true"
        else:
            try:
                out[k.strip()] = ast.literal_eval(v)
            except (ValueError, SyntaxError):
                out[k.strip()] = v
    return out


def _resource_args(p: argparse.ArgumentParser) -> None:
    """AnySR's any-resource inference (seed 002): which width-sliced sub-network runs."""
    g = p.add_argument_group("AnySR sub-network (anysr_* models)")
    g.add_argument("--width", type=float, default=None, help="run the sub-network of this width (0, 1]")
    g.add_argument("--max-gflops", type=float, default=None,
                   help="the widest sub-network whose MACs for this image stay under G x 1e9")
    g.add_argument("--full-net", action="store_true", help="full network at every scale (double-dagger mode)")


def model_options(args: argparse.Namespace) -> dict:
    """``--opt`` items plus the dedicated AnySR flags, as builder keyword arguments."""
    opts = parse_options(getattr(args, "opt", None))
    if getattr(args, "width", None) is not None:
        opts["width"] = args.width
    if getattr(args, "max_gflops", None) is not None:
        opts["max_gflops"] = args.max_gflops
    if getattr(args, "full_net", False):
        opts["mode"] = "full"
    return opts


def _model_args(p: argparse.ArgumentParser, scale_required: bool = False, model_required: bool = True) -> None:
    p.add_argument("--model", required=model_required, help="registered model name (`lightsr list-models`)"
                   + ("" if model_required else "; default: read from --weights (its keys and shapes)"))
    p.add_argument("--scale", type=float, required=scale_required, default=None, help="up-scaling factor")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="model option, repeatable")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="PSNR/SSIM on benchmark folders (standard protocol by default)")
    _model_args(p, model_required=False)  # without --model, the architecture and scale come from --weights
    p.add_argument("--weights", help="checkpoint (.pth or .safetensors)")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR", help="folders of HR images")
    _resource_args(p)
    p.add_argument("--json", metavar="FILE", help="write per-set and per-image figures")
    p.add_argument("--save-images", metavar="DIR", help="write the SR images here (DIR/<dataset>/<name>.png)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file or saved images")
    p.add_argument("--self-ensemble", action="store_true", help="x8 flip/rotate ensemble")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "fp16"],
                   help="fp32 (default, exact reproduction), auto, bf16, fp16 (CUDA)")
    p.add_argument("--random-weights", action="store_true",
                   help="score a model that has no weights (randomly initialised): a pipeline check only")
    p.add_argument("--protocol", choices=["standard", "matlab"], default="standard",
                   help="standard: float Y, gray replicated to RGB (today's tables); matlab: rounded Y")
    p.add_argument("--cache-dir", default=None, help="where LR images are cached")
    p.set_defaults(run="lightsr.evaluate:run_cli")


def _add_profile(sub) -> None:
    p = sub.add_parser("profile", help="parameters, FLOPs (MACs) at 1280x720 output, latency, memory")
    _model_args(p, scale_required=True)
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument("--output-size", default=None, metavar="HxW", help="output size (default 720x1280)")
    p.add_argument("--input-size", default=None, metavar="HxW",
                   help="count on this LR input instead (e.g. 256x256, the NTIRE convention)")
    p.add_argument("--convention", default="macs", metavar="{macs,fvcore}",
                   help="macs: conv/linear/matmul multiply-accumulates (default); fvcore: fvcore's rules "
                        "(+ norms, bilinear resampling, adaptive pooling), as HiT-SR, C2D-ISR, HASN count")
    p.add_argument("--width", type=float, default=None, help="AnySR sub-network width")
    p.add_argument("--no-latency", action="store_true", help="count only, do not time")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "fp16"],
                   help="latency in this precision (default fp32, the plain path; auto: what upscale runs)")
    p.add_argument("--compile", action="store_true", help="latency with torch.compile")
    p.set_defaults(run="lightsr.profile:run_cli")


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="which architecture, scale and options a checkpoint is for",
                       description="Read a checkpoint's architecture, scale(s) and weight-shaping options "
                       "from its tensor names and shapes, and print them with its parameter count, input "
                       "requirements and whether tiling is exact.")
    p.add_argument("file", metavar="FILE", help="checkpoint (.pth, .pt or .safetensors)")
    p.add_argument("--json", action="store_true", help="print the descriptor as JSON")
    p.set_defaults(run="lightsr.models.loading:run_cli")


def _add_list(sub) -> None:
    p = sub.add_parser("list-models", help="registered models")
    p.add_argument("--details", action="store_true", help="scales, paper, options")
    p.set_defaults(run="lightsr.cli:run_list_models")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model (recipes, resume, torchrun)",
                       description="Train a model: `lightsr train --recipe NAME` or the study-notes form "
                       "`lightsr train --train_dir DIR --val_dir DIR --scale 2 --epochs 100 --batch_size 16 "
                       "--patch_size 128`. Flags override the recipe. Same command under `torchrun "
                       "--nproc_per_node N -m lightsr train ...` for DDP (batch size is per process).")

    def flag(name: str, **kw) -> None:  # --study_notes_spelling and --dash-spelling alike
        names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        p.add_argument(*names, dest=name, **kw)

    flag("recipe", help="preset (lightsr.train.recipes): rdb_esa, c2d_stage1, c2d_stage2, c2d_discrete, "
         "hasn_stage1, hasn_stage2, anysr")
    flag("model", help="registered model name (default: the recipe's, else rdb_esa)")
    flag("scale", type=float, help="scale of a fixed-scale model; validation scale of a continuous one")
    flag("opt", action="append", metavar="KEY=VALUE", help="model option, repeatable")
    flag("train_dir", nargs="+", metavar="DIR", help="folder(s) of HR training images")
    flag("val_dir", metavar="DIR", help="folder of HR images for validation PSNR (Y, shave = scale)")
    flag("out", metavar="DIR", help="run directory (an existing one needs --resume)")
    flag("resume", action="store_true", help="continue the run in --out from its last checkpoint")
    flag("iters", type=int, help="total iterations")
    flag("epochs", type=float, help="total epochs (when --iters is not given)")
    flag("batch_size", type=int, help="batch size per process")
    flag("patch_size", type=int, help="HR patch side (LR patch = patch_size / scale)")
    flag("lr_patch", type=int, help="LR patch side (alternative to --patch_size)")
    flag("repeat", type=int, help="times every image is visited per epoch")
    flag("lr", type=float, help="peak learning rate")
    flag("loss", choices=["l1", "charbonnier", "l1_kl"])
    flag("optimizer", choices=["adam", "adamw"])
    flag("schedule", choices=["multistep", "cosine", "constant"])
    flag("ema", type=float, help="EMA decay (0 = off)")
    flag("clip_grad", type=float, help="max gradient norm (0 = off)")
    flag("precision", help="auto (bf16 where the device does it natively, else fp32), fp32, bf16, fp16 (CUDA)")
    flag("amp", choices=["none", "bf16", "fp16"], help="legacy spelling of --precision")
    flag("holdout", type=int, metavar="N", help="without --val_dir: validate on N images held out of the "
         "first training folder (default 10)")
    flag("keep", type=int, metavar="N", help="step checkpoints kept (default 2)")
    flag("init", metavar="FROM", help="initialise from weights or a run directory (stage 2 / warm start); "
         "only the head may differ")
    flag("device", help="cpu, cuda ... (default: cuda if available)")
    flag("workers", type=int, help="DataLoader worker processes")
    flag("seed", type=int)
    flag("deterministic", action="store_true", help="deterministic algorithms (exact resume)")
    flag("val_every", type=int, metavar="N")
    flag("save_every", type=int, metavar="N")
    flag("log_every", type=int, metavar="N")
    flag("stop_after", type=int, metavar="N", help="stop with a checkpoint after N steps of this run")
    flag("time_limit", type=float, metavar="MIN", help="stop with a checkpoint after MIN minutes")
    flag("no_progress", action="store_true", help="no progress bar")
    p.set_defaults(run="lightsr.train.engine:run_cli")


def _add_upscale(sub) -> None:
    p = sub.add_parser("upscale", help="upscale images, folders or globs",
                       usage="%(prog)s INPUT [INPUT ...] -o OUTPUT [options]   (try: %(prog)s --sample -o out/; "
                             "-h lists the options)",
                       description="Upscale image files, folders (recursively, keeping the tree) and globs.")
    p.add_argument("input", nargs="*", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("--sample", action="store_true", help="upscale the sample image shipped with lightsr")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="output folder (or a file name for a single input file)")
    p.add_argument("--model", default=None, help="registered model name (default: the shipped default model)")
    _resource_args(p)
    p.add_argument("--weights", default=None, metavar="PATH", help="checkpoint (.safetensors or .pth)")
    p.add_argument("--scale", type=int, default=None, help="the model's native scale (default 4)")
    p.add_argument("--outscale", type=float, default=None, metavar="F",
                   help="final scale: native model scale then MATLAB bicubic (e.g. 3.5), or a continuous model")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="model option, repeatable")
    p.add_argument("--tile", type=int, default=0, metavar="N", help="tile size in input pixels (0: whole image)")
    p.add_argument("--tile-pad", type=int, default=16, metavar="P", help="context pixels around each tile")
    p.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="working-memory budget, e.g. 2G or 512M: picks the tile size")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto (default): bf16 where the device does it natively and the model tolerates it, "
                        "else fp32; fp16 on CUDA only")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (eager if unavailable)")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--half", action="store_true", help="same as --precision fp16")
    prec.add_argument("--bf16", action="store_true", help="same as --precision bf16")
    p.add_argument("--self-ensemble", action="store_true", help="x8 flip/rotate ensemble (8x slower)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--suffix", default="", metavar="TXT", help="appended to output file names")
    p.add_argument("--ext", default="same", help="png, jpg, webp, tif, bmp or same (default)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    p.add_argument("--png-level", type=int, default=None, metavar="N",
                   help="PNG compression level 0-9 (default 1: fast; 9: smallest files, slowest)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run="lightsr.upscaler:run_cli", parser=p)


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (needs: pip install onnx onnxruntime)")
    p.add_argument("--model", default=None, help="registered model name (default: the default model)")
    p.add_argument("--weights", default=None, metavar="PATH", help="checkpoint (.safetensors or .pth)")
    p.add_argument("--scale", type=int, default=None, help="the model's scale (default 4)")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="model option, repeatable")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="output .onnx file")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--fixed-size", default=None, metavar="HxW",
                   help="export for this one input size (batch 1): for models whose window/scan arithmetic "
                        "cannot follow a dynamic size (window transformers, MambaIRv2); tile to it")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-PyTorch check")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(run="lightsr.export:run_cli")


def _figure_args(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("-o", "--output", required=True, metavar="FILE", help=f"{example}.png, .svg or .pdf")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _add_plot(sub) -> None:
    p = sub.add_parser("plot", help="PSNR against FLOPs from `eval --json` files (needs .[plot])",
                       description="One panel per dataset and scale: each eval JSON is a labelled point at "
                       "(FLOPs, PSNR), marker area proportional to its parameters. PNG, SVG or PDF by extension.")
    p.add_argument("results", nargs="+", metavar="EVAL.json", help="files written by `lightsr eval --json`")
    _figure_args(p, "chart")
    p.set_defaults(run="lightsr.plots:run_plot")


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="zoomed crops of several models side by side (needs .[plot])",
                       description="HR image -> LR (standard protocol bicubic) -> each model -> one row of "
                       "nearest-neighbour zoomed crops, HR first, labelled with PSNR/SSIM on the whole image.")
    p.add_argument("image", metavar="IMAGE", help="an HR image")
    p.add_argument("--models", nargs="+", required=True, metavar="SPEC",
                   help="registered name (shipped weights), NAME=CHECKPOINT, a lightsr checkpoint, or bicubic")
    p.add_argument("--scale", type=float, required=True, help="up-scaling factor")
    p.add_argument("--box", default=None, metavar="Y,X,H,W",
                   help="crop in HR pixels (default: where the models differ most)")
    p.add_argument("--tile", type=int, default=200, metavar="PX", help="zoomed crop size (default 200)")
    p.add_argument("--no-overview", action="store_true", help="no whole-image panel with the box")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cpu)")
    _figure_args(p, "grid")
    p.set_defaults(run="lightsr.plots:run_compare")


def _add_lam(sub) -> None:
    p = sub.add_parser("lam", help="Local Attribution Map and diffusion index (needs .[plot])",
                       description="LAM (Gu and Dong, CVPR 2021): path-integrated gradients along a progressive "
                       "blur, attributing the gradient magnitude of an output window to the LR input.")
    p.add_argument("--model", required=True, metavar="SPEC",
                   help="registered name (shipped weights), NAME=CHECKPOINT or a lightsr checkpoint")
    p.add_argument("--scale", type=float, required=True, help="up-scaling factor")
    p.add_argument("--image", required=True, help="an HR image (LR made by the standard protocol's bicubic)")
    p.add_argument("--window", required=True, metavar="Y,X[,SIZE]",
                   help="output window, HR pixels (SIZE default 16)")
    p.add_argument("--steps", type=int, default=50, help="integration steps (default 50)")
    p.add_argument("--sigma", type=float, default=1.2, help="blur of the baseline (default 1.2)")
    p.add_argument("--json", metavar="FILE", help="write DI and the integration figures")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cpu)")
    _figure_args(p, "lam")
    p.set_defaults(run="lightsr.lam:run_cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightsr", description="Efficient single-image super-resolution.")
    parser.add_argument("--version", action="version", version="lightsr " + __import__("lightsr").__version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_upscale, _add_eval, _add_profile, _add_train, _add_export, _add_info, _add_list,
                _add_plot, _add_compare, _add_lam):
        add(sub)
    return parser


def run_list_models(args: argparse.Namespace) -> int:
    from .models.registry import get_entry, list_models

    for name in list_models():
        if not args.details:
            print(name)
            continue
        e = get_entry(name)
        scales = "any" if e.scales is None else ",".join(f"x{s:g}" for s in e.scales)
        weights = f"  weights: {','.join(f'x{s}' for s in e.pretrained)}" if e.pretrained else ""
        print(f"{name:24s} {scales:10s} {e.paper}{weights}")
        if e.doc:
            print(f"{'':24s} {e.doc}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module, func = args.run.split(":")
    try:
        return int(getattr(importlib.import_module(module), func)(args) or 0)
    except LightSRError as exc:
        print(f"lightsr: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lightsr list-models | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("lightsr: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback for users; LIGHTSR_DEBUG=1 shows it
        if os.environ.get("LIGHTSR_DEBUG"):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"lightsr: internal error: {type(exc).__name__}: {msg} (LIGHTSR_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
