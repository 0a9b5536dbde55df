"""Flags shared by several commands, and their mapping to builder keyword arguments."""
from __future__ import annotations

import argparse
import ast
import math

from ..errors import LightSRError


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


def scale_value(text: str) -> int | float:
    """Every command's ``--scale``: ``"4"`` -> 4, ``"2.5"`` -> 2.5 (a continuous model's scale);
    a scale that is not a positive number is a usage error."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"scale must be a number, got {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"scale must be positive, got {text!r}")
    return int(v) if v.is_integer() else v


def scale_or_pair(text: str) -> int | float | tuple[int | float, int | float]:
    """``--scale`` of upscale and eval: a number (:func:`scale_value`), or ``"2x3"`` / ``"2,3"``, the
    (s_h, s_w) pair of an asymmetric scale (continuous-scale models); ``"3x3"`` is 3."""
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) == 1:
        return scale_value(text)
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"scale must be a number or s_h x s_w such as 2x3, got {text!r}")
    sh, sw = (scale_value(v.strip()) for v in parts)
    return sh if sh == sw else (sh, sw)


def parse_memory(text: str | None) -> float | None:
    """"4G", "512M", "1.5GB", "2" (GB) -> bytes."""
    if text is None:
        return None
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    try:
        if t and t[-1] in mult:
            value = float(t[:-1]) * mult[t[-1]]
        else:
            value = float(t) * 2**30
    except ValueError:
        raise LightSRError(f"--max-memory expects a size like 4G or 512M, got {text!r}") from None
    if not 0 < value < math.inf:  # nan and inf too: a budget no tile can be computed from
        raise LightSRError(f"--max-memory must be a positive, finite size, got {text!r}")
    return value


def resource_args(p: argparse.ArgumentParser) -> None:
    """AnySR's any-resource inference: which width-sliced sub-network runs."""
    g = p.add_argument_group("AnySR sub-network (anysr_* models)")
    g.add_argument("--width", type=float, default=None, help="run the sub-network of this width (0, 1]")
    g.add_argument("--max-gflops", type=float, default=None,
                   help="the widest sub-network whose encoder MACs for this image stay under G x 1e9 "
                        "(Table 3's count; the head's cost is reported beside it)")
    g.add_argument("--full-net", action="store_true", help="full network at every scale (double-dagger mode)")


def model_options(args: argparse.Namespace) -> dict:
    """``--opt`` items plus the dedicated AnySR flags, as builder keyword arguments; the three
    sub-network flags exclude each other (each would silently override another)."""
    opts = parse_options(getattr(args, "opt", None))
    given = [f for f, on in (("--width", getattr(args, "width", None) is not None),
                             ("--max-gflops", getattr(args, "max_gflops", None) is not None),
                             ("--full-net", getattr(args, "full_net", False))) if on]
    if len(given) > 1:
        raise LightSRError(f"{' and '.join(given)} choose the AnySR sub-network in different ways; give one of "
                           "--width (a fixed sub-network), --max-gflops (the widest under a budget) or --full-net")
    if getattr(args, "width", None) is not None:
        opts["width"] = args.width
    if getattr(args, "max_gflops", None) is not None:
        opts["max_gflops"] = args.max_gflops
    if getattr(args, "full_net", False):
        opts["mode"] = "full"
    return opts


def model_args(p: argparse.ArgumentParser, scale_required: bool = False, model_required: bool = True,
               scale_pairs: bool = False) -> None:
    """``--model``, ``--scale`` (``scale_pairs``: also s_h x s_w, :func:`scale_or_pair`), ``--opt``, ``--device``."""
    p.add_argument("--model", required=model_required, help="registered model name (`lightsr list-models`)"
                   + ("" if model_required else "; default: read from --weights (its keys and shapes)"))
    p.add_argument("--scale", type=scale_or_pair if scale_pairs else scale_value, required=scale_required,
                   default=None, help="up-scaling factor" + (" (continuous models: also s_h x s_w, e.g. 2x3)"
                                                             if scale_pairs else ""))
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="model option, repeatable")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")


def figure_args(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("-o", "--output", required=True, metavar="FILE", help=f"{example}.png, .svg or .pdf")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
