"""``lightsr list-models [--details]``: the registry (:mod:`lightsr.models.registry`)."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("list-models", help="registered models")
    p.add_argument("--details", action="store_true", help="scales, paper, options")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..models.registry import get_entry, list_models

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
