"""The ``zentitle-stripe`` command: one entry point, one module per group of commands.

Each command module exposes ``register(subcommands)``, which adds its sub-parsers and sets
``handler`` (a function of the parsed arguments returning the exit code) as a default.
Exit code 0 means all is well; configuration errors print the message, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._version import __version__
from .exceptions import ZentitleStripeError

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    from . import cli_ops, cli_server

    parser = argparse.ArgumentParser(
        prog="zentitle-stripe",
        description="Stripe subscription payments in, Zentitle2 licences out, exactly once. "
        "Configuration comes from the environment (STRIPE_*, ZENTITLE_*).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cli_server.register(subcommands)
    cli_ops.register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except ZentitleStripeError as exc:
        print(f"zentitle-stripe {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
