"""``lightsr list-models [--details]``: the registry (:mod:`lightsr.models.registry`)."""
from __future__ import annotations

import inspect
import re

# The registry's paper strings and docstrings cite the project's source documents by number
# ("seed 003"); a user sees the papers' titles instead.
PAPERS = {
    "000": ("C2D-ISR", "C2D-ISR: Optimizing Attention-based Image Super-resolution from Continuous to Discrete "
                       "Scales (Jiang et al. 2025)"),
    "001": ("C2D-ISR", "C2D-ISR: Optimizing Attention-based Image Super-resolution from Continuous to Discrete "
                       "Scales (Jiang et al. 2025)"),
    "002": ("AnySR", "AnySR: Realizing Image Super-Resolution as Any-Scale, Any-Resource (Zhan et al.)"),
    "003": ("HASN", "HASN: Hybrid Attention Separable Network for Efficient Image Super-resolution (Cao et al.)"),
    "004": ("the study notes", "Super-Resolution Study (study notes, 2025)"),
}
_SEED = re.compile(r"seed (\d{3})")


def add_parser(sub) -> None:
    p = sub.add_parser("list-models", help="registered models")
    p.add_argument("--details", action="store_true",
                   help="scales, paper, shipped weights, description and options (builder keyword arguments "
                        "with their defaults, for --opt KEY=VALUE)")
    p.set_defaults(run=run)


# the registry's paper strings that cite a document by number, as a user reads them
CITATIONS = {
    "Zhan et al., AnySR (seed 002)": "Zhan et al., AnySR: Realizing Image Super-Resolution as Any-Scale, Any-Resource",
    "Cao et al., HASN (seed 003)": "Cao et al., HASN: Hybrid Attention Separable Network for Efficient Image "
                                   "Super-resolution",
    "C2D-ISR HIIF-L (seed 000 eqs. 7-9)": "HIIF-L, eqs. 7-9 of C2D-ISR: Optimizing Attention-based Image "
                                          "Super-resolution from Continuous to Discrete Scales (Jiang et al. 2025)",
    "study notes (seed 004), 'Possible Architecture'": "'Possible Architecture' of the study notes "
                                                       "Super-Resolution Study (2025)",
}


def cite(text: str, full: bool = False) -> str:
    """``text`` with its document numbers replaced by titles: a paper string (``full``) names the
    paper's full title, a description its short name (``"HIIF-L (seed 000 eqs. 7-9)"`` ->
    ``"HIIF-L (C2D-ISR eqs. 7-9)"``)."""
    if full and text in CITATIONS:
        return CITATIONS[text]
    return _SEED.sub(lambda m: PAPERS[m.group(1)][1 if full else 0] if m.group(1) in PAPERS else m.group(0), text)


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
        weights = f"  weights: {','.join(f'x{s}' for s in e.pretrained)}" if e.pretrained else ""
        print(f"{name:24s} {scales:10s} {cite(e.paper, full=True)}{weights}")
        if e.doc:
            print(f"{'':24s} {cite(e.doc)}")
        opts = options(e.builder)
        print(f"{'':24s} options: {opts or '(none)'}")
    return 0
