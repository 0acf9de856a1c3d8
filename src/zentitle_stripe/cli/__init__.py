"""The `zentitle-stripe` command: one entry point, one module per command or small group.

Each command module exposes `register(subcommands)`, which adds its sub-parsers and sets
`handler` (a function of the parsed arguments returning the exit code) as a default; the
handlers build their collaborators through `_common`, print what an
[`ops`][zentitle_stripe.ops] function returns, as text or `--json`, and exit 0 when all is
well, 1 when something needs attention, 2 on bad configuration (the message, never a
traceback), 141 when the reader of stdout went away (`| head`), quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from ..exceptions import ZentitleStripeError

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command registered, in the order `--help` lists them."""
    from . import connect, doctor, events, hooks, migrate, reconcile, release, server, worker

    parser = argparse.ArgumentParser(
        prog="zentitle-stripe",
        description="Stripe subscription payments in, Zentitle2 licences out, exactly once. "
        "Configuration comes from the environment (STRIPE_*, ZENTITLE_*).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (server, worker, doctor, connect, events, hooks, reconcile, release, migrate):
        module.register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from ._common import use_environ

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with use_environ(args):
            code: int = args.handler(args)
        sys.stdout.flush()
    except ZentitleStripeError as exc:
        print(f"zentitle-stripe {args.command}: {exc}", file=sys.stderr)
        if getattr(args, "json", False):  # a script reading stdout gets JSON either way
            print(json.dumps({"error": str(exc), "exit_code": 2}, indent=2))
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_gone()
    return code


def _reader_gone() -> int:
    """stdout's reader closed the pipe (`| head -1`): stop quietly, with the shell's
    SIGPIPE status, and point stdout at /dev/null so the exit flush raises nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass
    return 141
