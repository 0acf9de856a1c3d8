"""`reconcile`: process missed Stripe events and report drift."""

from __future__ import annotations

import argparse
import contextlib
from datetime import datetime, timezone
from typing import Any

from .. import ops
from ._app import APP_HELP, loaded_app
from ._common import add_command, ops_stripe, print_json, progress, services


def register(subcommands: argparse._SubParsersAction[Any]) -> None:
    reconcile = add_command(
        subcommands,
        "reconcile",
        _reconcile,
        help="process missed Stripe events and report drift",
        description="Fetch invoice.paid and customer.subscription.deleted events from Stripe "
        "(at most 30 days back), process those not done yet, oldest first, then report "
        "subscriptions and licences that disagree. Exit 1 if processing failed or drift "
        "remains.",
    )
    reconcile.add_argument(
        "--since",
        type=_duration,
        default="3d",
        help="how far back: 30m, 72h, 3d, 2w (default: 3d; Stripe keeps 30 days)",
    )
    reconcile.add_argument("--no-drift", action="store_true", help="skip the drift report")
    reconcile.add_argument(
        "--app",
        metavar="MODULE:ATTRIBUTE",
        help=f"{APP_HELP}; the missed events are processed through it, its outcome hooks "
        "(on_outcome) included",
    )


def _duration(text: str) -> int:
    try:
        return ops.parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _reconcile(args: argparse.Namespace) -> int:
    with services() as built, contextlib.ExitStack() as stack:
        settings = built.settings
        provisioner = stack.enter_context(loaded_app(args.app)) if args.app else None
        if args.since > ops.EVENTS_WINDOW_SECONDS:
            progress("warning: Stripe keeps events for 30 days; looking back 30 days only")
        report = ops.reconcile(
            provisioner or built.provisioner,
            ops_stripe(built),
            built.zentitle,
            since_seconds=args.since,
            check_drift=not args.no_drift,
            lookup_key_fallback=settings.lookup_key_fallback,
            progress=progress,
        )
    if args.json:
        print_json(report.to_json())
    else:
        _print_report(report)
    return 0 if report.ok else 1


def _print_report(report: ops.ReconcileReport) -> None:
    skipped = len(report.events) - report.processed
    start = datetime.fromtimestamp(report.window_start, timezone.utc)
    print(
        f"events since {start.isoformat(timespec='seconds')}: {len(report.events)} found, "
        f"{skipped} already done, {report.processed} processed, {report.failed} failed"
    )
    for event in report.events:
        if event.action == "processed":
            print(f"{event.status}  {event.event_id} {event.type}  {event.outcome}: {event.detail}")
    if report.drift is not None:
        print(f"drift: {len(report.drift)} problem(s)")
        for drift in report.drift:
            print(f"DRIFT  {drift.kind} {drift.subscription_id}: {drift.detail}")
            print(f"      fix: {drift.fix}")
