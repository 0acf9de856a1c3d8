"""`doctor`: check the whole set-up and say how to fix what is wrong."""

from __future__ import annotations

import argparse
from typing import Any

from .. import ops
from ._common import add_command, environ, ops_stripe, print_json, progress, services_or_problem

WEBHOOK_URL_ENV = "ZENTITLE_STRIPE_WEBHOOK_URL"


def register(subcommands: argparse._SubParsersAction[Any]) -> None:
    doctor = add_command(
        subcommands,
        "doctor",
        _doctor,
        help="check the whole set-up and say how to fix what is wrong",
        description="Check the Stripe key, webhook endpoint and signing secret, Zentitle2 "
        "credentials, that every licensed Stripe Price maps to a fitting Zentitle2 offering, "
        "and storage. Exit 2 if the configuration is bad (or names no existing storage), 1 if "
        "any other check fails.",
    )
    doctor.add_argument(
        "--url", help=f"the public webhook URL to look for (default: ${WEBHOOK_URL_ENV})"
    )
    doctor.add_argument("--strict", action="store_true", help="treat warnings as failures")


def _doctor(args: argparse.Namespace) -> int:
    env = environ()
    url = args.url or env.get(WEBHOOK_URL_ENV, "").strip() or None
    raw_secret = env.get("STRIPE_WEBHOOK_SECRET")
    with services_or_problem() as (built, problem):
        settings = built.settings if built else None
        report = ops.run_doctor(
            stripe=ops_stripe(built) if built else None,
            zentitle=built.zentitle if built else None,
            storage=built.storage if built else None,
            webhook_url=url,
            raw_webhook_secret=raw_secret,
            lookup_key_fallback=bool(settings and settings.lookup_key_fallback),
            configuration_error=problem,
            progress=progress,
            policy=settings.lifecycle if settings else None,
        )
    if args.json:
        print_json(report.to_json())
    else:
        for check in report.checks:
            line = f"{check.status.value:<4}  {check.name}: {check.detail}"
            if check.fix and check.status is not ops.CheckStatus.PASS:
                line += f"\n      fix: {check.fix}"
            print(line)
    if problem is not None:
        return 2  # bad configuration, as for every other command
    return 1 if report.failed or (args.strict and report.warned) else 0
