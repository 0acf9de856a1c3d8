"""`events` (list recorded events) and `replay` (process recorded events again)."""

from __future__ import annotations

import argparse
from typing import Any

from .. import ops
from ..storage import EventStatus
from ._common import add_command, print_json, progress, services, storage_only

_SOURCES = ["stripe", "zentitle"]


def register(subcommands: argparse._SubParsersAction[Any]) -> None:
    events = add_command(
        subcommands,
        "events",
        _events,
        help="list recorded events",
        description="List recorded webhook events, most recently received first.",
    )
    events.add_argument("--status", choices=[s.value for s in EventStatus])
    events.add_argument("--source", choices=_SOURCES)
    events.add_argument("--limit", type=_positive, default=50, help="default: %(default)s")

    replay = add_command(
        subcommands,
        "replay",
        _replay,
        help="process recorded events again",
        description="Process recorded events again through the same code path as a "
        "delivery. Exit 1 if any replay does not end with 200.",
    )
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("event_id", nargs="?", help="the event id (evt_... or a Zentitle2 id)")
    target.add_argument("--failed", action="store_true", help="replay every failed event")
    replay.add_argument("--source", choices=_SOURCES, help="event source (default: stripe)")
    replay.add_argument(
        "--limit", type=_positive, default=1000, help="with --failed: at most this many"
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _events(args: argparse.Namespace) -> int:
    status = EventStatus(args.status) if args.status else None
    with storage_only() as storage:
        records = storage.list_events(status=status, source=args.source, limit=args.limit)
    if args.json:
        print_json([ops.event_to_json(r) for r in records])
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
    with services() as built:
        if args.failed:
            failed = ops.failed_events(built.storage, source=args.source, limit=args.limit)
            targets = [(r.event_id, r.source) for r in failed]
        else:
            targets = [(args.event_id, args.source or "stripe")]
        results = ops.replay_events(built.provisioner, targets, progress=progress)
    if args.json:
        print_json([r.to_json() for r in results])
    else:
        if not results:
            print("no failed events to replay")
        for r in results:
            print(f"{r.status}  {r.source} {r.event_id}  {r.outcome}: {r.detail}")
    return 0 if all(r.ok for r in results) else 1
