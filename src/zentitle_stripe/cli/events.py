"""`events` (list recorded events) and `replay` (process recorded events again)."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from typing import Any

from .. import ops
from ..exceptions import ConfigurationError
from ..ops._common import iso
from ..ops.events import status_text
from ..provisioner import Provisioner
from ..storage import EventRecord, EventStatus, Storage, stuck_events
from ._app import APP_HELP, loaded_app
from ._common import (
    add_command,
    positive_int,
    print_json,
    print_table,
    progress,
    services,
    storage_only,
)

_SOURCES = ["stripe", "zentitle"]
STUCK = "stuck"
"""The `--status` of events claimed, never finished, their lease expired (a crash)."""

NEEDS_APP = (
    "replaying Zentitle2 events runs your app's handlers (on_zentitle), which this process "
    "does not have: pass --app yourapp.module:provisioner (a Provisioner or Services, or a "
    "function returning one), or --source stripe to replay only Stripe events"
)


def register(subcommands: argparse._SubParsersAction[Any]) -> None:
    events = add_command(
        subcommands,
        "events",
        _events,
        help="list recorded events",
        description="List recorded webhook events, most recently received first. Events "
        "claimed by a worker that never finished (lease expired) show as stuck.",
    )
    statuses = [s.value for s in EventStatus] + [STUCK]
    events.add_argument("--status", choices=statuses, help="stuck: processing, lease expired")
    events.add_argument("--source", choices=_SOURCES)
    events.add_argument("--limit", type=positive_int, default=50, help="default: %(default)s")
    events.add_argument(
        "--history", action="store_true", help="also print every earlier attempt of each event"
    )

    replay = add_command(
        subcommands,
        "replay",
        _replay,
        help="process recorded events again",
        description="Process recorded events again through the same code path as a "
        "delivery. Exit 1 if any replay does not end with 200; exit 2 when Zentitle2 "
        "events would be replayed without --app.",
    )
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("event_id", nargs="?", help="the event id (evt_... or a Zentitle2 id)")
    target.add_argument(
        "--failed", action="store_true", help="replay every failed or stuck event, oldest first"
    )
    replay.add_argument("--source", choices=_SOURCES, help="event source (default: stripe)")
    replay.add_argument(
        "--limit", type=positive_int, default=1000, help="with --failed: at most this many"
    )
    replay.add_argument("--app", metavar="MODULE:ATTRIBUTE", help=APP_HELP)


def _listed(storage: Storage, args: argparse.Namespace, now: float) -> list[EventRecord]:
    if args.status == STUCK:
        return stuck_events(storage, now=now, source=args.source, limit=args.limit)
    status = EventStatus(args.status) if args.status else None
    return storage.list_events(status=status, source=args.source, limit=args.limit)


def _events(args: argparse.Namespace) -> int:
    now = time.time()
    with storage_only() as storage:
        records = _listed(storage, args, now)
    if args.json:
        print_json([ops.event_to_json(r, now=now) for r in records])
        return 0
    if not records:
        print("no recorded events match")
        return 0
    print_table(
        EVENT_COLUMNS,
        [_row(record, now) for record in records],
        details=[_history(record) if args.history else [] for record in records],
    )
    return 0


EVENT_COLUMNS = ("RECEIVED", "SOURCE", "EVENT", "TYPE", "STATUS", "ATTEMPTS", "OUTCOME: DETAIL")


def _row(record: EventRecord, now: float) -> list[str]:
    return [
        iso(record.received_at) or "-",
        record.source,
        record.event_id,
        record.type,
        status_text(record, now),
        str(record.attempts),
        f"{record.outcome or '-'}: {record.detail or ''}",
    ]


def _history(record: EventRecord) -> list[str]:
    lines = []
    for attempt in record.history:
        error = f" ({attempt.error})" if attempt.error else ""
        lines.append(
            f"    #{attempt.attempt} {iso(attempt.finished_at)} {attempt.status} by "
            f"{attempt.owner or '-'}: {attempt.outcome or '-'}: {attempt.detail or ''}{error}"
        )
    return lines


@contextlib.contextmanager
def _replaying(args: argparse.Namespace) -> Iterator[tuple[Provisioner, Storage]]:
    """The app's provisioner with `--app`, else one wired from the environment."""
    if args.app:
        with loaded_app(args.app) as provisioner:
            yield provisioner, provisioner.storage
    else:
        with services() as built:
            yield built.provisioner, built.storage


def _replay(args: argparse.Namespace) -> int:
    with _replaying(args) as (provisioner, storage):
        if args.failed:
            failed = ops.failed_events(storage, source=args.source, limit=args.limit)
            targets = [(r.event_id, r.source) for r in failed]
        else:
            targets = [(args.event_id, args.source or "stripe")]
        if not args.app and any(source == "zentitle" for _, source in targets):
            raise ConfigurationError(NEEDS_APP)
        results = ops.replay_events(provisioner, targets, progress=progress)
    if args.json:
        print_json([r.to_json() for r in results])
    else:
        if not results:
            print("no failed events to replay")
        for r in results:
            print(f"{r.status}  {r.source} {r.event_id}  {r.outcome}: {r.detail}")
    return 0 if all(r.ok for r in results) else 1
