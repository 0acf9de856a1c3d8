"""Outcome hooks that have not succeeded: list them, run them through the app, and the
`doctor` check that warns of failed ones.

What `zentitle-stripe hooks` prints and does: after Stripe stops redelivering (three
days in live mode), a hook that kept failing stays `failed` until someone runs it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..exceptions import ConfigurationError, ZentitleStripeError
from ..provisioner import Provisioner
from ..storage import HookStatus, HookStorage, Storage, StoredOutcome
from ._common import Check, CheckStatus

__all__ = ["check_hooks", "hooks_to_json", "run_unfinished_hooks", "unfinished_hooks"]

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


def check_hooks(storage: Storage) -> Check | None:
    """A warning naming the outcome hooks whose last run failed; `None` when none did
    (or the storage keeps no hooks), so `doctor` stays quiet for apps without them."""
    if not isinstance(storage, HookStorage):
        return None
    try:
        unfinished = unfinished_hooks(storage, limit=100)
    except ZentitleStripeError as exc:
        return Check("outcome hooks", CheckStatus.FAIL, str(exc), "check ZENTITLE_STRIPE_STORAGE")
    failed = [
        (stored, run)
        for stored in unfinished
        for run in stored.runs
        if run.status is HookStatus.FAILED
    ]
    if not failed:
        return None
    stored, run = failed[0]
    more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
    return Check(
        "outcome hooks",
        CheckStatus.WARN,
        f"{len(failed)} hook run(s) failed, e.g. {run.handler} for {stored.kind} event "
        f"{stored.event_id}: {run.error}{more}",
        "`zentitle-stripe hooks` lists them; fix the hook, then run "
        "`zentitle-stripe hooks --run --app yourapp.module:provisioner`",
    )
