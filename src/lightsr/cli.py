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


def _model_args(p: argparse.ArgumentParser, scale_required: bool = False) -> None:
    p.add_argument("--model", required=True, help="registered model name (`lightsr list-models`)")
    p.add_argument("--scale", type=float, required=scale_required, default=None, help="up-scaling factor")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="model option, repeatable")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="PSNR/SSIM on benchmark folders (standard protocol by default)")
    _model_args(p, scale_required=True)
    p.add_argument("--weights", help="checkpoint (.pth or .safetensors)")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR", help="folders of HR images")
    _resource_args(p)
    p.add_argument("--json", metavar="FILE", help="write per-set and per-image figures")
    p.add_argument("--save-images", metavar="DIR", help="write the SR images here (DIR/<dataset>/<name>.png)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file or saved images")
    p.add_argument("--self-ensemble", action="store_true", help="x8 flip/rotate ensemble")
    p.add_argument("--protocol", choices=["standard", "matlab"], default="standard",
                   help="standard: float Y, gray replicated to RGB (today's tables); matlab: rounded Y")
    p.add_argument("--cache-dir", default=None, help="where LR images are cached")
    p.set_defaults(run="lightsr.evaluate:run_cli")


def _add_profile(sub) -> None:
    p = sub.add_parser("profile", help="parameters, FLOPs (MACs) at 1280x720 output, latency, memory")
    _model_args(p, scale_required=True)
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument("--output-size", default="720x1280", metavar="HxW", help="output size (default 720x1280)")
    p.add_argument("--width", type=float, default=None, help="AnySR sub-network width")
    p.add_argument("--no-latency", action="store_true", help="count only, do not time")
    p.set_defaults(run="lightsr.profile:run_cli")


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
    flag("amp", choices=["none", "bf16", "fp16"], help="mixed precision on GPU")
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
                       description="Upscale image files, folders (recursively, keeping the tree) and globs.")
    p.add_argument("input", nargs="+", metavar="INPUT", help="image files, folders or globs")
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
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--half", action="store_true", help="float16 inference")
    prec.add_argument("--bf16", action="store_true", help="bfloat16 inference")
    p.add_argument("--self-ensemble", action="store_true", help="x8 flip/rotate ensemble (8x slower)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--suffix", default="", metavar="TXT", help="appended to output file names")
    p.add_argument("--ext", default="same", help="png, jpg, webp, tif, bmp or same (default)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run="lightsr.upscaler:run_cli")


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightsr", description="Efficient single-image super-resolution.")
    parser.add_argument("--version", action="version", version="lightsr " + __import__("lightsr").__version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_upscale, _add_eval, _add_profile, _add_train, _add_export, _add_list):
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
