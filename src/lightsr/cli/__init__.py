"""Command line: ``lightsr <command> ...``, the only part of lightsr that knows argparse.

One module per command (:mod:`.upscale`, :mod:`.eval`, :mod:`.profile`, :mod:`.export`,
:mod:`.train`, :mod:`.info`, :mod:`.list`, and :mod:`.figures` for ``plot`` / ``compare`` / ``lam``),
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
from . import export, figures, info, profile, train, upscale
from . import list as list_command
from ._dispatch import dispatch
from ._options import model_options, parse_options

__all__ = ["main", "build_parser", "parse_options", "model_options"]

# in the order `lightsr --help` lists them
COMMANDS = (upscale, eval_command, profile, train, export, info, list_command, figures)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightsr", description="Efficient single-image super-resolution.")
    parser.add_argument("--version", action="version", version="lightsr " + __import__("lightsr").__version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser().parse_args(argv))

