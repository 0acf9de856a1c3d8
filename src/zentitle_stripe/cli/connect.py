"""`connect`: create or update the Stripe webhook endpoint."""

from __future__ import annotations

import argparse
from typing import Any

from .. import ops
from ..config import lifecycle_from_env
from ..exceptions import ConfigurationError
from ._common import add_command, environ, print_json, stripe_only


def register(subcommands: argparse._SubParsersAction[Any]) -> None:
    connect = add_command(
        subcommands,
        "connect",
        _connect,
        help="create or update the Stripe webhook endpoint",
        description="Create the Stripe webhook endpoint for URL, subscribed to exactly the "
        "events the lifecycle policy acts on (ZENTITLE_STRIPE_ON_PAUSE, _ON_REFUND, "
        "_ON_DISPUTE; pinned API version), or bring an existing one to those events. The "
        "signing secret is shown once, only when the endpoint is created.",
    )
    connect.add_argument("--url", required=True, help="https://.../stripe/webhook")
    connect.add_argument(
        "--api-version",
        default=ops.DEFAULT_WEBHOOK_API_VERSION,
        help="Stripe API version of the payloads (default: %(default)s)",
    )
    connect.add_argument(
        "--write-env",
        metavar="FILE",
        help="write STRIPE_WEBHOOK_SECRET=... to FILE (mode 0600) instead of printing it",
    )


def _connect(args: argparse.Namespace) -> int:
    events = lifecycle_from_env(environ()).events()
    with stripe_only() as stripe:
        try:
            result = ops.connect_webhook(
                stripe, args.url, api_version=args.api_version, events=events
            )
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
    written = False
    if args.write_env and result.secret:
        ops.write_env_secret(args.write_env, result.secret)
        written = True
    if args.json:
        data = result.to_json(include_secret=not written)
        data["written_to"] = args.write_env if written else None
        print_json(data)
        return 0
    _print_result(result)
    if written:
        print(f"signing secret written to {args.write_env} (mode 0600) as STRIPE_WEBHOOK_SECRET")
    elif result.secret:
        print("signing secret (shown once; set it as STRIPE_WEBHOOK_SECRET):")
        print(result.secret)
    elif args.write_env:
        print(f"{args.write_env} not changed: Stripe does not show an existing endpoint's secret")
    return 0


def _print_result(result: ops.ConnectResult) -> None:
    endpoint = result.endpoint
    print(
        f"{result.action} webhook endpoint {endpoint.id} for {endpoint.url}: "
        f"{', '.join(endpoint.enabled_events)} (API version {endpoint.api_version}, "
        f"{endpoint.status})"
    )
    for note in result.notes:
        print(f"note: {note}")
