"""``doctor``, ``connect``, ``events``, ``replay``, ``reconcile``, ``migrate`` (operations).

A thin printer over :mod:`zentitle_stripe.ops`: each handler builds its collaborators from
the environment, calls one ops function and prints the result, as text or ``--json``.
Results go to stdout, progress and warnings to stderr, so ``--json`` output stays
parseable. Exit codes: 0 all well, 1 something needs attention, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from . import ops
from .config import Settings
from .exceptions import ConfigurationError, ZentitleStripeError
from .provisioner import Provisioner
from .storage import DEFAULT_STORAGE_URL, EventStatus, Storage, open_storage
from .stripe_api import StripeOpsAPI

__all__ = ["register"]

WEBHOOK_URL_ENV = "ZENTITLE_STRIPE_WEBHOOK_URL"


def register(subcommands: argparse._SubParsersAction[Any]) -> None:
    """Add the operations commands."""
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print JSON instead of text")

    doctor = subcommands.add_parser(
        "doctor",
        parents=[json_flag],
        help="check the whole set-up and say how to fix what is wrong",
        description="Check the Stripe key, webhook endpoint and signing secret, Zentitle2 "
        "credentials, that every licensed Stripe Price maps to a fitting Zentitle2 offering, "
        "and storage. Exit 1 if any check fails.",
    )
    doctor.add_argument(
        "--url", help=f"the public webhook URL to look for (default: ${WEBHOOK_URL_ENV})"
    )
    doctor.add_argument("--strict", action="store_true", help="treat warnings as failures")
    doctor.set_defaults(handler=_doctor)

    connect = subcommands.add_parser(
        "connect",
        parents=[json_flag],
        help="create or update the Stripe webhook endpoint",
        description="Create the Stripe webhook endpoint for URL (invoice.paid and "
        "customer.subscription.deleted, pinned API version), or reuse an existing one, adding "
        "missing events. The signing secret is shown once, only when the endpoint is created.",
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
    connect.set_defaults(handler=_connect)

    events = subcommands.add_parser(
        "events",
        parents=[json_flag],
        help="list recorded events",
        description="List recorded webhook events, most recently received first.",
    )
    events.add_argument("--status", choices=[s.value for s in EventStatus])
    events.add_argument("--source", choices=["stripe", "zentitle"])
    events.add_argument("--limit", type=_positive, default=50, help="default: %(default)s")
    events.set_defaults(handler=_events)

    replay = subcommands.add_parser(
        "replay",
        parents=[json_flag],
        help="process recorded events again",
        description="Process recorded events again through the same code path as a "
        "delivery. Exit 1 if any replay does not end with 200.",
    )
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("event_id", nargs="?", help="the event id (evt_... or a Zentitle2 id)")
    target.add_argument("--failed", action="store_true", help="replay every failed event")
    replay.add_argument(
        "--source", choices=["stripe", "zentitle"], help="event source (default: stripe)"
    )
    replay.add_argument(
        "--limit", type=_positive, default=1000, help="with --failed: at most this many"
    )
    replay.set_defaults(handler=_replay)

    reconcile = subcommands.add_parser(
        "reconcile",
        parents=[json_flag],
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
    reconcile.set_defaults(handler=_reconcile)

    migrate = subcommands.add_parser(
        "migrate",
        parents=[json_flag],
        help="create or upgrade the storage schema",
        description="Create or upgrade the schema of ZENTITLE_STRIPE_STORAGE and print its "
        "version (PostgreSQL; SQLite creates its schema when opened).",
    )
    migrate.set_defaults(handler=_migrate)


# -- argument types ----------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _duration(text: str) -> int:
    try:
        return ops.parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- plumbing ----------------------------------------------------------------------------


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


@contextlib.contextmanager
def _provisioner() -> Iterator[Provisioner]:
    """The fully wired provisioner from the environment, closed afterwards."""
    provisioner = Provisioner.from_env()
    try:
        yield provisioner
    finally:
        _close(provisioner)


def _close(provisioner: Provisioner) -> None:
    for part in (provisioner.stripe, provisioner.zentitle, provisioner.storage):
        close = getattr(part, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()


def _ops_stripe(provisioner: Provisioner) -> StripeOpsAPI:
    """The provisioner's Stripe client, which ``from_env`` makes a ``StripeGateway``."""
    stripe: object = provisioner.stripe
    if not isinstance(stripe, StripeOpsAPI):
        raise ConfigurationError("the Stripe client does not support the operations calls")
    return stripe


@contextlib.contextmanager
def _storage_only() -> Iterator[Storage]:
    """Just the storage: ``events`` and ``migrate`` need no Stripe or Zentitle2 settings."""
    url = os.environ.get("ZENTITLE_STRIPE_STORAGE", "").strip() or DEFAULT_STORAGE_URL
    storage = open_storage(url)
    try:
        yield storage
    finally:
        storage.close()


# -- handlers ----------------------------------------------------------------------------


def _doctor(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get(WEBHOOK_URL_ENV, "").strip() or None
    raw_secret = os.environ.get("STRIPE_WEBHOOK_SECRET")
    provisioner: Provisioner | None = None
    problem = None
    try:
        provisioner = Provisioner.from_settings(Settings.from_env())
    except ZentitleStripeError as exc:
        problem = str(exc)
    try:
        settings = provisioner.settings if provisioner else None
        report = ops.run_doctor(
            stripe=_ops_stripe(provisioner) if provisioner else None,
            zentitle=provisioner.zentitle if provisioner else None,
            storage=provisioner.storage if provisioner else None,
            webhook_url=url,
            raw_webhook_secret=raw_secret,
            lookup_key_fallback=bool(settings and settings.lookup_key_fallback),
            configuration_error=problem,
            progress=_progress,
        )
    finally:
        if provisioner is not None:
            _close(provisioner)
    if args.json:
        _print_json(report.to_json())
    else:
        for check in report.checks:
            line = f"{check.status.value:<4}  {check.name}: {check.detail}"
            if check.fix and check.status is not ops.CheckStatus.PASS:
                line += f"\n      fix: {check.fix}"
            print(line)
    return 1 if report.failed or (args.strict and report.warned) else 0


def _connect(args: argparse.Namespace) -> int:
    with _provisioner() as provisioner:
        try:
            result = ops.connect_webhook(
                _ops_stripe(provisioner), args.url, api_version=args.api_version
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
        _print_json(data)
        return 0
    endpoint = result.endpoint
    print(
        f"{result.action} webhook endpoint {endpoint.id} for {endpoint.url}: "
        f"{', '.join(endpoint.enabled_events)} (API version {endpoint.api_version}, "
        f"{endpoint.status})"
    )
    for note in result.notes:
        print(f"note: {note}")
    if written:
        print(f"signing secret written to {args.write_env} (mode 0600) as STRIPE_WEBHOOK_SECRET")
    elif result.secret:
        print("signing secret (shown once; set it as STRIPE_WEBHOOK_SECRET):")
        print(result.secret)
    elif args.write_env:
        print(f"{args.write_env} not changed: Stripe does not show an existing endpoint's secret")
    return 0


def _events(args: argparse.Namespace) -> int:
    status = EventStatus(args.status) if args.status else None
    with _storage_only() as storage:
        records = storage.list_events(status=status, source=args.source, limit=args.limit)
    if args.json:
        _print_json([ops.event_to_json(r) for r in records])
        return 0
    if not records:
        print("no recorded events match")
    for record in records:
        data = ops.event_to_json(record)
        print(
            f"{data['received_at']}  {record.source:<8} {record.event_id}  {record.type}  "
            f"{record.status.value} x{record.attempts}  {record.outcome or '-'}: "
            f"{record.detail or ''}"
        )
    return 0


def _replay(args: argparse.Namespace) -> int:
    with _provisioner() as provisioner:
        if args.failed:
            targets = [
                (r.event_id, r.source)
                for r in ops.failed_events(
                    provisioner.storage, source=args.source, limit=args.limit
                )
            ]
        else:
            targets = [(args.event_id, args.source or "stripe")]
        results = ops.replay_events(provisioner, targets, progress=_progress)
    if args.json:
        _print_json([r.to_json() for r in results])
    else:
        if not results:
            print("no failed events to replay")
        for r in results:
            print(f"{r.status}  {r.source} {r.event_id}  {r.outcome}: {r.detail}")
    return 0 if all(r.ok for r in results) else 1


def _reconcile(args: argparse.Namespace) -> int:
    with _provisioner() as provisioner:
        settings = provisioner.settings
        if provisioner.zentitle is None:  # pragma: no cover - from_env always wires it
            raise ConfigurationError("reconcile needs the Zentitle2 client")
        if args.since > ops.EVENTS_WINDOW_SECONDS:
            _progress("warning: Stripe keeps events for 30 days; looking back 30 days only")
        report = ops.reconcile(
            provisioner,
            _ops_stripe(provisioner),
            provisioner.zentitle,
            since_seconds=args.since,
            check_drift=not args.no_drift,
            lookup_key_fallback=bool(settings and settings.lookup_key_fallback),
            progress=_progress,
        )
    if args.json:
        _print_json(report.to_json())
    else:
        skipped = len(report.events) - report.processed
        print(
            f"events since {_iso(report.window_start)}: {len(report.events)} found, "
            f"{skipped} already done, {report.processed} processed, {report.failed} failed"
        )
        for event in report.events:
            if event.action == "processed":
                print(
                    f"{event.status}  {event.event_id} {event.type}  {event.outcome}: "
                    f"{event.detail}"
                )
        if report.drift is not None:
            print(f"drift: {len(report.drift)} problem(s)")
            for drift in report.drift:
                print(f"DRIFT  {drift.kind} {drift.subscription_id}: {drift.detail}")
                print(f"      fix: {drift.fix}")
    return 0 if report.ok else 1


def _migrate(args: argparse.Namespace) -> int:
    with _storage_only() as storage:
        result = ops.migrate_storage(storage)
    if args.json:
        _print_json(result.to_json())
    else:
        version = "none" if result.version is None else str(result.version)
        print(f"{result.storage}: schema version {version} ({result.detail})")
    return 0
