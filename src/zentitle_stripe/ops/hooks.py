"""Outcome hooks that have not succeeded: list them, and run them through the app.

What `zentitle-stripe hooks` prints and does: after Stripe stops redelivering (three
days in live mode), a hook that kept failing stays `failed` until someone runs it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..exceptions import ConfigurationError
from ..provisioner import Provisioner
from ..storage import HookStorage, Storage, StoredOutcome

__all__ = ["hooks_to_json", "run_unfinished_hooks", "unfinished_hooks"]

_ANY_ATTEMPTS = 2**31 - 1


def _hook_storage(storage: Storage) -> HookStorage:
    if not isinstance(storage, HookStorage):
        raise ConfigurationError(
            f"{type(storage).__name__} records no outcome hooks (it has no HookStorage methods)"
        )
    return storage


def unfinished_hooks(storage: Storage, *, limit: int = 100) -> list[StoredOutcome]:
    """The outcomes with a hook run that has not succeeded (pending, running or failed),
    the longest waiting first."""
    hooks = _hook_storage(storage)
    keys = hooks.due_hooks(now=math.inf, max_attempts=_ANY_ATTEMPTS, limit=limit)
    found = [hooks.get_outcome(event_id, source) for source, event_id in keys]
    return [stored for stored in found if stored is not None and stored.unfinished()]


def run_unfinished_hooks(
    provisioner: Provisioner, targets: Sequence[tuple[str, str]]
) -> list[StoredOutcome]:
    """Run the unfinished hooks of each `(event_id, source)` through `provisioner` (the
    app's: the hooks are its), as a redelivery would; the outcomes afterwards."""
    if not provisioner.outcome_hooks:
        raise ConfigurationError(
            "this provisioner has no outcome hooks registered: pass your app with --app "
            "yourapp.module:provisioner, whose on_outcome hooks should run"
        )
    ran = [provisioner.run_hooks(event_id, source) for event_id, source in targets]
    return [stored for stored in ran if stored is not None]


def hooks_to_json(stored: StoredOutcome) -> dict[str, Any]:
    """One outcome and its runs, for `--json`."""
    return {
        "event_id": stored.event_id,
        "source": stored.source,
        "kind": stored.kind,
        "recorded_at": stored.recorded_at,
        "runs": [
            {
                "handler": run.handler,
                "status": run.status.value,
                "attempts": run.attempts,
                "error": run.error,
                "next_attempt_after": run.lease_expires,
            }
            for run in stored.runs
        ],
    }
