"""The queue of worker mode, on the events table itself (no schema change).

In queue mode an event is recorded with status `queued`, and its `lease_expires` holds
the earliest time of its next attempt. A worker claims the oldest due event, queued or
abandoned by a crashed worker (its lease expired), with the same take-over statement as a
redelivery, so the attempt history and fencing stay as they are. PostgreSQL selects it
`FOR UPDATE SKIP LOCKED`, so many workers on many hosts never wait for one another; SQLite
inside `BEGIN IMMEDIATE` (one host). The shared rate limit is a row of `zs_locks` whose
`expires` is the time before which no worker calls Zentitle2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from ._base import EVENT_COLUMNS, EventRecord, EventStatus, NewEvent
from ._sql import (
    INSERT_EVENT,
    OPEN_EVENTS,
    SELECT_EVENT,
    TAKE_OVER_EVENT,
    Row,
    record_in,
    take_over_params,
)

__all__ = ["QueueStats", "QueueStorage"]

THROTTLE_OWNER = "zs:throttle"
_DUE = (
    f"SELECT {EVENT_COLUMNS} FROM zs_events "  # noqa: S608
    f"WHERE status IN ('queued', 'processing') AND {OPEN_EVENTS} AND lease_expires <= %s "
    "ORDER BY lease_expires, received_at LIMIT 1"
)
_REQUEUE = (
    "UPDATE zs_events SET status = 'queued', lease_expires = %s "
    "WHERE source = %s AND event_id = %s AND status = 'failed'"
)
_STATS = (
    "SELECT count(*), min(received_at) FROM zs_events "  # noqa: S608
    f"WHERE status = 'queued' AND {OPEN_EVENTS} AND lease_expires <= %s"
)
_ALL_QUEUED = f"SELECT count(*) FROM zs_events WHERE status = 'queued' AND {OPEN_EVENTS}"  # noqa: S608
_THROTTLE = (
    "INSERT INTO zs_locks (name, owner, expires) VALUES (%s, %s, %s) "
    "ON CONFLICT (name) DO UPDATE SET expires = excluded.expires "
    "WHERE zs_locks.expires < excluded.expires"
)
_THROTTLED = "SELECT expires FROM zs_locks WHERE name = %s"


@attrs.frozen
class QueueStats:
    """What `doctor` reports about the queue."""

    queued: int
    """Events waiting, due now or later."""
    due: int
    """Events whose next attempt is due now."""
    oldest_due_received: float | None
    """When the oldest due event was received (its age says whether a worker runs)."""


@runtime_checkable
class QueueStorage(Protocol):
    """The optional part of a storage that worker mode needs (every built-in has it)."""

    def enqueue_event(self, event: NewEvent, *, now: float) -> tuple[bool, EventRecord]:
        """Record `event` as queued, due now; `(False, stored)` when it was known already
        (a failed one is queued again, anything else is left as it is)."""
        ...

    def claim_queued(self, *, owner: str, lease_seconds: float, now: float) -> EventRecord | None:
        """Claim the oldest due event (queued, or abandoned past its lease) for `owner`."""
        ...

    def requeue_event(self, event_id: str, source: str, *, not_before: float) -> bool:
        """Queue a failed event again, due at `not_before`."""
        ...

    def queue_stats(self, *, now: float) -> QueueStats: ...

    def throttle(self, name: str, *, until: float) -> None:
        """No worker calls `name` before `until` (only ever moved later)."""
        ...

    def throttled_until(self, name: str) -> float: ...


def queued_record(event: NewEvent, now: float) -> EventRecord:
    return EventRecord(
        **attrs.asdict(event, recurse=False),
        status=EventStatus.QUEUED,
        attempts=0,
        received_at=now,
        updated_at=now,
        lease_expires=now,
    )


def taken(record: EventRecord, owner: str, lease_seconds: float, now: float) -> EventRecord:
    """`record` claimed by `owner`: one more attempt, under a lease."""
    return attrs.evolve(
        record,
        status=EventStatus.PROCESSING,
        attempts=record.attempts + 1,
        updated_at=now,
        claimed_by=owner,
        lease_expires=now + lease_seconds,
    )


Execute = Callable[[str, Sequence[Any]], Sequence[Row]]


def claim_due(
    run: Execute, *, owner: str, lease_seconds: float, now: float, lock: str = ""
) -> EventRecord | None:
    """The claim of worker mode, inside the caller's write transaction."""
    record = record_in(run(_DUE + lock, (now,)))
    if record is None:
        return None
    claimed = taken(record, owner, lease_seconds, now)
    run(TAKE_OVER_EVENT, take_over_params(claimed))
    return claimed


class SQLQueue:
    """Worker mode for the SQL backends; each supplies `claim_queued` in its transaction."""

    _fetch: Callable[[str, str, Sequence[Any]], Sequence[Row]]
    _change: Callable[[str, str, Sequence[Any]], int]

    def enqueue_event(self, event: NewEvent, *, now: float) -> tuple[bool, EventRecord]:
        record = queued_record(event, now)
        if self._change("queue an event", INSERT_EVENT, record.to_row()) == 1:
            return True, record
        key = (event.source, event.event_id)
        self._change("queue an event", _REQUEUE, (now, *key))
        stored = record_in(self._fetch("read an event", SELECT_EVENT, key))
        return False, stored or record

    def requeue_event(self, event_id: str, source: str, *, not_before: float) -> bool:
        return self._change("queue an event", _REQUEUE, (not_before, source, event_id)) == 1

    def queue_stats(self, *, now: float) -> QueueStats:
        due, oldest = self._fetch("count queued events", _STATS, (now,))[0]
        (queued,) = self._fetch("count queued events", _ALL_QUEUED, ())[0]
        return QueueStats(int(queued), int(due), None if oldest is None else float(oldest))

    def throttle(self, name: str, *, until: float) -> None:
        self._change("store a rate limit", _THROTTLE, (name, THROTTLE_OWNER, until))

    def throttled_until(self, name: str) -> float:
        rows = self._fetch("read a rate limit", _THROTTLED, (name,))
        return float(rows[0][0]) if rows else 0.0
