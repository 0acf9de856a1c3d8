"""`reconcile`: process the Stripe events storage missed, then look for drift."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ..catalogue import REQUIRED_EVENTS
from ..flows.charges import CHARGE_EVENTS
from ..policy import LifecyclePolicy
from ..storage import EventStatus
from ._common import Progress, every, iso, quiet
from .drift import Drift, find_drift
from .events import process_trusted_event

if TYPE_CHECKING:
    from ..provisioner import Provisioner
    from ..stripe_api import StripeOpsAPI
    from ..zentitle import ZentitleAPI

EVENTS_WINDOW_SECONDS = 30 * 86400
"""`GET /v1/events` only returns events of the last 30 days."""
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str) -> int:
    """`72h`, `3d`, `30m`, `90s` or `2w` as seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text.lower())
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"expected a duration such as 72h, 3d or 30m, got {text!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@attrs.frozen
class ReconciledEvent:
    """One event `reconcile` found: `skipped` (already done) or `processed`."""

    event_id: str
    type: str
    created: int | None
    action: str
    status: int | None = None
    outcome: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.action == "skipped" or self.status == 200

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self) | {"created": iso(self.created), "ok": self.ok}


@attrs.frozen
class ReconcileReport:
    """What `reconcile` processed and the drift that remains."""

    window_start: int
    clamped: bool
    events: tuple[ReconciledEvent, ...]
    drift: tuple[Drift, ...] | None
    """`None` when the drift check was not run."""

    @property
    def processed(self) -> int:
        return sum(e.action == "processed" for e in self.events)

    @property
    def failed(self) -> int:
        return sum(not e.ok for e in self.events)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.drift

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "window_start": iso(self.window_start),
            "clamped": self.clamped,
            "processed": self.processed,
            "failed": self.failed,
            "events": [e.to_json() for e in self.events],
            "drift": None if self.drift is None else [d.to_json() for d in self.drift],
        }


def reconcile(
    provisioner: Provisioner,
    stripe: StripeOpsAPI,
    zentitle: ZentitleAPI,
    *,
    since_seconds: int,
    now: float | None = None,
    check_drift: bool = True,
    lookup_key_fallback: bool = False,
    progress: Progress = quiet,
) -> ReconcileReport:
    """Process every `invoice.paid` / `customer.subscription.deleted` event of the window
    (and `charge.refunded` / `charge.dispute.created` when the lifecycle policy disables
    on them, and the `customer.subscription.updated` / `.paused` / `.resumed` it acts on)
    that storage has not finished, oldest first, then look for drift.

    Webhooks can be lost (endpoint down past Stripe's retries, a wrong secret); Stripe keeps
    events for 30 days, so `since_seconds` is clamped to that (`clamped` says so).
    """
    current = int(time.time() if now is None else now)
    clamped = since_seconds > EVENTS_WINDOW_SECONDS
    window_start = current - min(since_seconds, EVENTS_WINDOW_SECONDS)
    todo = _oldest_first(stripe, window_start, progress, _caught_up_types(provisioner))
    results = []
    for done, event in enumerate(todo, 1):
        results.append(_catch_up(provisioner, event))
        every(progress, done, len(todo), "events", step=20)
    drift = None
    if check_drift:
        drift = tuple(
            find_drift(
                stripe,
                zentitle,
                provisioner.storage,
                lookup_key_fallback=lookup_key_fallback,
                progress=progress,
            )
        )
    return ReconcileReport(window_start, clamped, tuple(results), drift)


_STATUS_EVENTS = frozenset(
    {
        "customer.subscription.updated",
        "customer.subscription.paused",
        "customer.subscription.resumed",
    }
)
"""Status moments: a lost `unpaid` or `paused` is healed by no invoice (none comes), and
their flows read Stripe's state fresh, so catching one up late is safe."""


def _caught_up_types(provisioner: Provisioner) -> list[str]:
    """Payments and cancellations, and the refunds, disputes and status changes the
    lifecycle policy acts on: nothing later heals a lost one of those."""
    policy = getattr(provisioner.processor, "policy", None)
    wanted = policy.events() if isinstance(policy, LifecyclePolicy) else ()
    extra = CHARGE_EVENTS | _STATUS_EVENTS
    return [*REQUIRED_EVENTS, *(event for event in wanted if event in extra)]


def _oldest_first(
    stripe: StripeOpsAPI, window_start: int, progress: Progress, types: list[str]
) -> list[dict[str, Any]]:
    """The window's events of `types`, oldest first (Stripe lists newest first), so a
    payment is processed before the cancellation that followed it."""
    newest_first = []
    for event in stripe.list_events(types, created_gte=window_start):
        newest_first.append(event)
        if len(newest_first) % 100 == 0:
            progress(f"fetched {len(newest_first)} events")
    progress(f"fetched {len(newest_first)} event(s) since {iso(window_start)}")
    return list(reversed(newest_first))


def _catch_up(provisioner: Provisioner, event: Mapping[str, Any]) -> ReconciledEvent:
    """Skip an event storage finished; process any other (new, failed or stuck) one."""
    event_id, event_type = str(event.get("id")), str(event.get("type"))
    created = event.get("created") if isinstance(event.get("created"), int) else None
    record = provisioner.storage.get_event(event_id, "stripe")
    if record is not None and record.status is EventStatus.DONE:
        return ReconciledEvent(
            event_id,
            event_type,
            created,
            "skipped",
            outcome=record.outcome,
            detail=record.detail,
        )
    response = process_trusted_event(provisioner, event)
    return ReconciledEvent(
        event_id,
        event_type,
        created,
        "processed",
        response.status,
        response.outcome.kind.value,
        response.outcome.reason,
    )
