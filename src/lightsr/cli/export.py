"""``lightsr export``: a model to ONNX (:func:`lightsr.export.export_model`)."""
from __future__ import annotations

import sys

from ._options import parse_options, scale_value


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (needs: pip install onnx onnxruntime)")
    p.add_argument("--model", default=None, help="registered model name (default: the default model)")
    p.add_argument("--weights", default=None, metavar="PATH", help="checkpoint (.safetensors or .pth)")
    p.add_argument("--scale", type=scale_value, default=None, help="the model's scale (default: the checkpoint's own, else 4; a "
                   "checkpoint with several heads, such as CARN-M's x2/x3/x4, needs it)")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="model option, repeatable")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="output .onnx file")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--fixed-size", default=None, metavar="HxW",
                   help="export for this one input size (batch 1): for models whose window/scan arithmetic "
                        "cannot follow a dynamic size (window transformers, MambaIRv2); tile to it")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-PyTorch check")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..export import export_model

    res = export_model(args.output, model=args.model, weights=args.weights, scale=args.scale,
                       options=parse_options(args.opt), opset=args.opset, check=not args.no_check,
                       overwrite=args.overwrite, fixed_size=args.fixed_size or None)
    err, fixed = res["max_abs_error"], res.get("fixed_size")
    checked = f"; onnxruntime vs PyTorch max |diff| {err:.2e}" if err is not None else ""
    shape = f"input 1x3x{fixed[0]}x{fixed[1]}" if fixed else "dynamic height/width"
    name = res.get("metadata", {}).get("model", "")
    print(f"lightsr: wrote {res['path']} ({name} x{res['scale']:g}, RGB in 0-1, NCHW, {shape}: in its "
          f"metadata_props{checked})", file=sys.stderr)
    return 0
