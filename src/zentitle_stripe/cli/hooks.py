"""`hooks`: outcome hooks that have not succeeded, listed, or run through the app."""

from __future__ import annotations

import argparse
from typing import Any

from ..exceptions import ConfigurationError
from ..ops.hooks import hooks_to_json, run_unfinished_hooks, unfinished_hooks
from ..storage import HookStatus, StoredOutcome
from ._app import APP_HELP, loaded_app
from ._common import add_command, positive_int, print_json, print_table, storage_only

COLUMNS = ("EVENT", "OUTCOME", "HOOK", "STATUS", "ATTEMPTS", "ERROR")


def register(subcommands: argparse._SubParsersAction[Any]) -> None:
    hooks = add_command(
        subcommands,
        "hooks",
        _hooks,
        help="list (or run) outcome hooks that have not succeeded",
        description="List the outcome hooks (on_outcome) whose run is pending, running or "
        "failed, with their errors; with --run, run them through your app (--app), as a "
        "redelivery would: only those, never one that succeeded. Exit 1 if any is left "
        "unfinished.",
    )
    hooks.add_argument("event_id", nargs="*", help="with --run: only these Stripe events")
    hooks.add_argument("--run", action="store_true", help="run them (needs --app)")
    hooks.add_argument("--app", metavar="MODULE:ATTRIBUTE", help=APP_HELP)
    hooks.add_argument("--limit", type=positive_int, default=100, help="default: %(default)s")


def _hooks(args: argparse.Namespace) -> int:
    if not args.run:
        with storage_only() as storage:
            found = unfinished_hooks(storage, limit=args.limit)
    elif not args.app:
        raise ConfigurationError(
            "hooks --run runs your app's on_outcome hooks, which this process does not "
            "have: pass --app yourapp.module:provisioner"
        )
    else:
        with loaded_app(args.app) as provisioner:
            targets = [(event_id, "stripe") for event_id in args.event_id] or [
                (s.event_id, s.source)
                for s in unfinished_hooks(provisioner.storage, limit=args.limit)
            ]
            found = run_unfinished_hooks(provisioner, targets)
    left = [stored for stored in found if stored.unfinished()]
    if args.json:
        print_json([hooks_to_json(stored) for stored in found])
    elif not found:
        print("no outcome hook is unfinished")
    else:
        print_table(COLUMNS, [row for stored in found for row in _rows(stored)])
    return 1 if left else 0


def _rows(stored: StoredOutcome) -> list[list[str]]:
    return [
        [
            stored.event_id,
            stored.kind,
            run.handler,
            run.status.value,
            str(run.attempts),
            run.error or "" if run.status is not HookStatus.DONE else "",
        ]
        for run in stored.runs
    ]
