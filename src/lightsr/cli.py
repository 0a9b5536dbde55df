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
    p.add_argument("--json", metavar="FILE", help="write per-set and per-image figures")
    p.add_argument("--save-images", metavar="DIR", help="write the SR images here")
    p.add_argument("--self-ensemble", action="store_true", help="x8 flip/rotate ensemble")
    p.add_argument("--protocol", choices=["standard", "matlab"], default="standard",
                   help="standard: float Y, gray replicated to RGB (today's tables); matlab: rounded Y")
    p.add_argument("--cache-dir", default=None, help="where LR images are cached")
    p.set_defaults(run="lightsr.evaluate:run_cli")


def _add_profile(sub) -> None:
    p = sub.add_parser("profile", help="parameters, FLOPs (MACs) at 1280x720 output, latency, memory")
    _model_args(p, scale_required=True)
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--output-size", default="720x1280", metavar="HxW", help="output size (default 720x1280)")
    p.add_argument("--width", type=float, default=None, help="AnySR sub-network width")
    p.add_argument("--no-latency", action="store_true", help="count only, do not time")
    p.set_defaults(run="lightsr.profile:run_cli")


def _add_list(sub) -> None:
    p = sub.add_parser("list-models", help="registered models")
    p.add_argument("--details", action="store_true", help="scales, paper, options")
    p.set_defaults(run="lightsr.cli:run_list_models")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model (recipes, resume, torchrun)")
    p.set_defaults(run="lightsr.train.engine:run_cli")


def _add_upscale(sub) -> None:
    p = sub.add_parser("upscale", help="upscale images, folders or globs")
    p.set_defaults(run="lightsr.upscale:run_cli")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX")
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
