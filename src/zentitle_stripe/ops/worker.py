"""What `doctor` says about worker mode: queued events that wait too long."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exceptions import ZentitleStripeError
from ._common import Check, CheckStatus

if TYPE_CHECKING:
    from ..storage import Storage

__all__ = ["QUEUE_MAX_AGE", "check_queue"]

QUEUE_MAX_AGE = 300.0
"""Seconds a due event may wait before `doctor` warns that no worker seems to run."""


def check_queue(storage: Storage, *, now: float, max_age: float = QUEUE_MAX_AGE) -> Check | None:
    """A warning when due queued events wait longer than `max_age`; `None` when nothing
    is queued (sync mode) or the storage has no queue."""
    from ..storage import QueueStorage

    if not isinstance(storage, QueueStorage):
        return None
    try:
        stats = storage.queue_stats(now=now)
    except ZentitleStripeError as exc:
        return Check("queue", CheckStatus.FAIL, str(exc), "check ZENTITLE_STRIPE_STORAGE")
    if stats.queued == 0:
        return None
    age = 0.0 if stats.oldest_due_received is None else now - stats.oldest_due_received
    summary = f"{stats.queued} queued ({stats.due} due), oldest due waiting {age:.0f} s"
    if stats.due and age > max_age:
        return Check(
            "queue",
            CheckStatus.WARN,
            f"{summary}: no worker seems to run, or the workers cannot keep up",
            "start `zentitle-stripe worker` (more --processes for a storm); "
            "`zentitle-stripe events --status queued` lists them",
        )
    return Check("queue", CheckStatus.PASS, summary)
