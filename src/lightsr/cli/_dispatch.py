"""Running a parsed command: exit statuses and the one-line error messages."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import LightSRError


def dispatch(args: argparse.Namespace) -> int:
    """Run a parsed command (``args.run(args)``): its exit status; a LightSRError is one line and exit 2,
    any other exception one ``internal error`` line and exit 1 (``LIGHTSR_DEBUG=1``: the traceback)."""
    try:
        if getattr(args, "device", None) is not None:  # mps on Linux, cuda:3 with one GPU: one line
            from ..api import check_device

            check_device(args.device)
        return int(args.run(args) or 0)
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
