"""`events` and `replay`: recorded events as JSON (with their history, and whether they
are stuck), and processing them again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ..responses import WebhookResponse
from ..storage import EventAttempt, EventRecord, EventStatus, Storage, stuck_events
from ._common import Progress, every, iso, quiet

if TYPE_CHECKING:
    from ..provisioner import Provisioner


def event_to_json(record: EventRecord, *, now: float | None = None) -> dict[str, Any]:
    """An event record as JSON, without its payload (it can hold personal data).

    `stuck` says whether it was claimed and never finished, its lease expired by `now`
    (default: the current time); `stuck_for_seconds` is then the time since that claim.
    `history` lists the earlier attempts, oldest first.
    """
    at = time.time() if now is None else now
    stuck = record.is_stuck(at)
    return {
        "event_id": record.event_id,
        "source": record.source,
        "type": record.type,
        "status": record.status.value,
        "stuck": stuck,
        "stuck_for_seconds": round(at - record.updated_at) if stuck else None,
        "attempts": record.attempts,
        "outcome": record.outcome,
        "detail": record.detail,
        "last_error": record.last_error,
        "received_at": iso(record.received_at),
        "updated_at": iso(record.updated_at),
        "claimed_by": record.claimed_by,
        "lease_expires": iso(record.lease_expires),
        "history": [attempt_to_json(attempt) for attempt in record.history],
    }


def attempt_to_json(attempt: EventAttempt) -> dict[str, Any]:
    """One earlier attempt at an event, as JSON."""
    return attrs.asdict(attempt) | {"finished_at": iso(attempt.finished_at)}


def status_text(record: EventRecord, now: float) -> str:
    """The status as `events` prints it: `processing, stuck for 2h` once the lease of an
    unfinished claim has expired."""
    if record.is_stuck(now):
        return f"processing, stuck for {duration(now - record.updated_at)}"
    if record.status is EventStatus.QUEUED:
        waiting = f"queued for {duration(now - record.received_at)}"
        due = record.lease_expires or 0.0
        return waiting if due <= now else f"{waiting}, next attempt in {duration(due - now)}"
    return str(record.status.value)


def duration(seconds: float) -> str:
    """A rough, readable length of time: `45s`, `12m`, `5h`, `3d`."""
    seconds = max(0, int(seconds))
    for unit, size, below in (("s", 1, 120), ("m", 60, 7_200), ("h", 3_600, 172_800)):
        if seconds < below:
            return f"{seconds // size}{unit}"
    return f"{seconds // 86_400}d"


@attrs.frozen
class ReplayResult:
    """The response to processing one recorded event again."""

    event_id: str
    source: str
    status: int
    outcome: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == 200

    @classmethod
    def from_response(cls, event_id: str, source: str, response: WebhookResponse) -> ReplayResult:
        return cls(
            event_id, source, response.status, response.outcome.kind.value, response.outcome.reason
        )

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self) | {"ok": self.ok}


def failed_events(
    storage: Storage, *, source: str | None = None, limit: int = 1000, now: float | None = None
) -> list[EventRecord]:
    """Failed events and stuck ones (claimed, never finished, lease expired by `now`: a
    replay takes them over), oldest first, so a replay keeps their original order."""
    at = time.time() if now is None else now
    failed = storage.list_events(status=EventStatus.FAILED, source=source, limit=limit)
    stuck = stuck_events(storage, now=at, source=source, limit=limit)
    both = sorted([*failed, *stuck], key=lambda r: r.received_at, reverse=True)[:limit]
    return list(reversed(both))


def replay_events(
    provisioner: Provisioner,
    targets: Iterable[tuple[str, str]],
    *,
    progress: Progress = quiet,
) -> list[ReplayResult]:
    """Process each `(event_id, source)` again through
    [`Provisioner.replay`][zentitle_stripe.Provisioner.replay]."""
    todo = list(targets)
    results = []
    for done, (event_id, source) in enumerate(todo, 1):
        response = provisioner.replay(event_id, source)
        results.append(ReplayResult.from_response(event_id, source, response))
        every(progress, done, len(todo), "events", step=20)
    return results


def process_trusted_event(
    provisioner: Provisioner, event: Mapping[str, Any] | bytes | str
) -> WebhookResponse:
    """Feed an event fetched from Stripe's API (over an authenticated call, so it needs no
    signature) through the same claim/process/finish path as a webhook."""
    if isinstance(event, Mapping):
        body: bytes | str = json.dumps(event, separators=(",", ":")).encode()
    else:
        body = event
    return provisioner.handle_trusted_event(body)
