"""`serve` (the standalone server) and `demo` (the offline end-to-end demo).

Both need the `server` extra, so its modules are imported only when a command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_command, build_services


def register(subcommands: argparse._SubParsersAction[Any]) -> None:
    """Add `serve` and `demo`."""
    serve = add_command(
        subcommands,
        "serve",
        _serve,
        help="run the webhook server (needs the 'server' extra)",
        description="Serve POST /stripe/webhook, POST /zentitle/webhook and GET /healthz, "
        "configured from the environment (STRIPE_*, ZENTITLE_*, ZENTITLE_STRIPE_STORAGE).",
        json_output=False,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines, or one JSON object per line for log collectors (default text)",
    )
    serve.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="default info",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long in-flight requests may take to finish (default 30)",
    )
    serve.add_argument(
        "--no-access-log", action="store_true", help="do not log one line per HTTP request"
    )

    add_command(
        subcommands,
        "demo",
        _demo,
        help="run the offline end-to-end demo (needs the 'server' extra)",
        description="Emulated Stripe and Zentitle2 on loopback, the real server, SQLite in a "
        "temporary directory, signed webhooks over real HTTP; no account needed.",
        json_output=False,
    )


def _serve(args: argparse.Namespace) -> int:
    from ..server import _require_server_extra, run

    _require_server_extra()  # before reading settings: the clearer error first
    return run(
        build_services(),
        host=args.host,
        port=args.port,
        log_format=args.log_format,
        log_level=args.log_level,
        graceful_timeout=args.graceful_timeout,
        access_log=not args.no_access_log,
    )


def _demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo()
