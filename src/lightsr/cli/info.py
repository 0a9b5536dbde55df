"""``lightsr info FILE [--json]``: the descriptor of a checkpoint (:func:`lightsr.models.loading.describe`)."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="which architecture, scale and options a checkpoint is for",
                       description="Read a checkpoint's architecture, scale(s) and weight-shaping options "
                       "from its tensor names and shapes, and print them with its parameter count, input "
                       "requirements and whether tiling is exact.")
    p.add_argument("file", metavar="FILE", help="checkpoint (.pth, .pt or .safetensors)")
    p.add_argument("--json", action="store_true", help="print the descriptor as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..checkpoint import json_text
    from ..models.loading import describe

    desc = describe(args.file)
    print(json_text(desc.to_json()) if args.json else desc.summary())
    return 0
