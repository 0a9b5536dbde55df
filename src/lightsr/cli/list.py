"""``lightsr list-models [--details]``: the registry (:mod:`lightsr.models.registry`)."""
from __future__ import annotations

import inspect

def add_parser(sub) -> None:
    p = sub.add_parser("list-models", help="registered models")
    p.add_argument("--details", action="store_true",
                   help="scales, paper, shipped weights, description and options (builder keyword arguments "
                        "with their defaults, for --opt KEY=VALUE)")
    p.set_defaults(run=run)


def options(builder) -> str:
    """The builder's keyword arguments and defaults (what ``--opt KEY=VALUE`` sets), ``scale`` left out."""
    try:
        params = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):
        return ""
    shown, more = [], False
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            more = True
        elif p.name != "scale" and p.kind is not p.VAR_POSITIONAL:
            shown.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    if more:
        shown.append(f"... (more: help(lightsr.models.{builder.__module__.rsplit('.', 1)[-1]}))")
    return ", ".join(shown)


def run(args) -> int:
    from ..models.registry import get_entry, list_models

    for name in list_models():
        if not args.details:
            print(name)
            continue
        e = get_entry(name)
        scales = "any" if e.scales is None else ",".join(f"x{s:g}" for s in e.scales)
        have = [s for s in e.pretrained if e.shipped_weights(s) is not None]
        shipped = "any scale" if e.scales is None else ",".join(f"x{s}" for s in have)  # continuous: one file
        weights = f"  weights: {shipped}" if have else ""
        print(f"{name:24s} {scales:10s} {e.paper}{weights}")
        if e.doc:
            print(f"{'':24s} {e.doc}")
        opts = options(e.builder)
        print(f"{'':24s} options: {opts or '(none)'}")
    return 0
