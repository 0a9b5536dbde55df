"""Command line: ``lightsr <command> ...``, the only part of lightsr that knows argparse.

One module per command (:mod:`.upscale`, :mod:`.eval`, :mod:`.profile`, :mod:`.export`,
:mod:`.train`, :mod:`.info`, :mod:`.list`, :mod:`.weights`, and :mod:`.figures` for ``plot`` / ``compare`` / ``lam``),
each holding its parser (``add_parser(sub)``) and ``run(args) -> int``: the flags mapped to keyword
arguments of one library call. The command modules import the library only inside ``run``, so
``lightsr --help`` imports no torch and stays instant.

Errors a user can cause (:class:`~lightsr.errors.LightSRError`) are printed as one line and exit 2;
any other exception is one ``internal error`` line and exit 1 (``LIGHTSR_DEBUG=1`` shows the
traceback).
"""
from __future__ import annotations

import argparse

from . import eval as eval_command
from . import export, figures, info, profile, train, upscale, weights
from . import list as list_command
from ._dispatch import dispatch
from ._options import model_options, parse_options

__all__ = ["main", "build_parser", "parse_options", "model_options"]

# in the order `lightsr --help` lists them
COMMANDS = (upscale, eval_command, profile, train, export, info, list_command, weights, figures)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightsr", description="Efficient single-image super-resolution.")
    parser.add_argument("--version", action="version", version="lightsr " + __import__("lightsr").__version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = _subparser(parser, getattr(args, "command", None)) or parser
        sub.error(unrecognized(sub, extra))  # usage line of the command, exit 2
    return dispatch(args)


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser | None:
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        if command in getattr(action, "choices", {}):
            return action.choices[command]
    return None


def unrecognized(parser: argparse.ArgumentParser, extra: list[str]) -> str:
    """argparse's "unrecognized arguments" line, plus the command's closest flag for each unknown one
    (``--tiel`` -> ``--tile``) and, for stray values, that a command's inputs are given together."""
    import difflib

    flags = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    hints = []
    for item in extra:
        if item.startswith("-") and len(item) > 1:
            name = item.split("=", 1)[0]
            close = difflib.get_close_matches(name, flags, n=1, cutoff=0.6)
            if close:
                hints.append(f"{name}: did you mean {close[0]}?")
    if not hints and any(not e.startswith("-") for e in extra) and any(
            not a.option_strings and a.nargs in ("*", "+") for a in parser._actions):
        hints.append("give all the inputs together, before or after the options")
    return f"unrecognized arguments: {' '.join(extra)}" + ("; " + "; ".join(hints) if hints else "")

