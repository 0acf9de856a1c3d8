"""`events` and `replay`: recorded events as JSON, and processing them again."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ..responses import WebhookResponse
from ..storage import EventRecord, EventStatus, Storage
from ._common import Progress, every, iso, quiet

if TYPE_CHECKING:
    from ..provisioner import Provisioner


def event_to_json(record: EventRecord) -> dict[str, Any]:
    """An event record as JSON, without its payload (it can hold personal data)."""
    return {
        "event_id": record.event_id,
        "source": record.source,
        "type": record.type,
        "status": record.status.value,
        "attempts": record.attempts,
        "outcome": record.outcome,
        "detail": record.detail,
        "last_error": record.last_error,
        "received_at": iso(record.received_at),
        "updated_at": iso(record.updated_at),
    }


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
    storage: Storage, *, source: str | None = None, limit: int = 1000
) -> list[EventRecord]:
    """Failed events, oldest first, so a replay keeps their original order."""
    return list(
        reversed(storage.list_events(status=EventStatus.FAILED, source=source, limit=limit))
    )


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
