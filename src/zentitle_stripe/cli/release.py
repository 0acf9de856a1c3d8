"""`release`: lift the refund or dispute hold of a subscription."""

from __future__ import annotations

import argparse
from typing import Any

from ..flows.charges import release_hold
from ._common import add_command, print_json, storage_only


def register(subcommands: argparse._SubParsersAction[Any]) -> None:
    release = add_command(
        subcommands,
        "release",
        _release,
        help="lift the refund or dispute hold of a subscription",
        description="A full refund or a dispute that disabled a subscription's licence "
        "(ZENTITLE_STRIPE_ON_REFUND / _ON_DISPUTE=disable) holds it: no later payment gives "
        "it back. Lift the hold (a dispute won, a refund reversed), then enable the "
        "entitlements in Zentitle2, or replay the first invoice.paid when none was created. "
        "Exit 1 when the subscription has no hold.",
    )
    release.add_argument("subscription", help="the Stripe subscription id (sub_...)")


def _release(args: argparse.Namespace) -> int:
    with storage_only() as storage:
        reason = release_hold(storage, args.subscription)
    if args.json:
        print_json(
            {"subscription": args.subscription, "released": reason is not None, "reason": reason}
        )
    elif reason is None:
        print(f"subscription {args.subscription} has no refund or dispute hold: nothing lifted")
    else:
        print(
            f"lifted the hold of subscription {args.subscription} ({reason}); enable its "
            "entitlements in Zentitle2, or, if it has no licence yet, replay its first "
            "invoice.paid (zentitle-stripe events, then zentitle-stripe replay EVENT_ID)"
        )
    return 0 if reason is not None else 1
