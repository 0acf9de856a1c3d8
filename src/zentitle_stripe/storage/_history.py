"""The attempt history of events, and the listing of stuck ones, for the built-in backends.

One rule decides when an attempt enters the history: a claim that ends, by a finish
(`processing` -> `done`/`failed`) or by a take-over (another worker claims an event
whose lease expired: the earlier attempt is `abandoned`). The SQL backends apply it in
the database, with triggers on `zs_events` (so it holds for every statement that ever
finishes or takes over an event, atomically with it); the memory backend applies
[`attempt_between`][zentitle_stripe.storage._history.attempt_between] as it stores a
record. `StorageContract` checks that all three agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ._base import ABANDONED, EventAttempt, EventRecord, EventStatus, Storage

__all__ = [
    "ATTEMPT_COLUMNS",
    "POSTGRES_HISTORY_SCHEMA",
    "SQLITE_HISTORY_SCHEMA",
    "EventTable",
    "attempt_between",
    "stuck_events",
    "with_history",
]

ABANDONED_DETAIL = (
    "the lease expired before this attempt finished (its worker crashed or stalled); "
    "another attempt took the event over"
)

ATTEMPT_COLUMNS = "source, event_id, attempt, finished_at, owner, status, outcome, detail, error"
"""The columns of `zs_event_attempts` in `EventAttempt` order, after the event's key."""


_IN_FLIGHT = 1000
"""How many unexpired claims `stuck_events` looks past on a backend without its own query."""


def stuck_events(
    storage: Storage, *, now: float, source: str | None = None, limit: int = 100
) -> list[EventRecord]:
    """Events claimed but never finished whose lease expired by `now` (a crashed or
    stalled worker), most recently received first.

    Uses the backend's `list_stuck_events` (every built-in one has it); for a backend of
    your own without it, filters its `processing` events (looking past up to
    `_IN_FLIGHT` events still within their lease).
    """
    lister = getattr(storage, "list_stuck_events", None)
    if callable(lister):
        found: list[EventRecord] = lister(now=now, source=source, limit=limit)
        return found
    processing = storage.list_events(
        status=EventStatus.PROCESSING, source=source, limit=limit + _IN_FLIGHT
    )
    return [record for record in processing if record.is_stuck(now)][:limit]


def attempt_between(old: EventRecord | None, new: EventRecord) -> EventAttempt | None:
    """The attempt that ended when `old` was replaced by `new`, if one did."""
    if old is None or old.status is not EventStatus.PROCESSING:
        return None
    if new.status is EventStatus.PROCESSING:
        if new.claimed_by == old.claimed_by:
            return None  # the same worker, e.g. renewing its lease
        return EventAttempt(
            old.attempts, new.updated_at, old.claimed_by, ABANDONED, detail=ABANDONED_DETAIL
        )
    return EventAttempt(
        new.attempts,
        new.updated_at,
        old.claimed_by,
        new.status.value,
        new.outcome,
        new.detail,
        new.last_error,
    )


class EventTable(dict[tuple[str, str], EventRecord]):
    """The memory backend's events by `(source, event_id)`: storing a record that ends
    an attempt appends it to the record's history, as the SQL triggers do."""

    def __setitem__(self, key: tuple[str, str], new: EventRecord) -> None:
        attempt = attempt_between(self.get(key), new)
        if attempt is not None:
            new = attrs.evolve(new, history=(*new.history, attempt))
        super().__setitem__(key, new)


def with_history(
    records: Sequence[EventRecord], rows: Iterable[Sequence[Any]]
) -> list[EventRecord]:
    """`records` with their history from `rows` of `zs_event_attempts` (in
    `ATTEMPT_COLUMNS` order, oldest first), after the attempt a record's row implies, if
    any (see `EventRecord.from_row`)."""
    found: dict[tuple[str, str], list[EventAttempt]] = {}
    for source, event_id, *attempt in rows:
        found.setdefault((source, event_id), []).append(EventAttempt(*attempt))
    return [
        attrs.evolve(r, history=(*r.history, *found.get((r.source, r.event_id), ())))
        for r in records
    ]


# -- the schema --------------------------------------------------------------------------

_ABANDONED_SQL = f"'{ABANDONED}', NULL, '{ABANDONED_DETAIL}', NULL"
_FINISHED_SQL = "NEW.status, NEW.outcome, NEW.detail, NEW.last_error"
_INSERT_SQL = f"INSERT INTO zs_event_attempts ({ATTEMPT_COLUMNS}) VALUES "  # noqa: S608

SQLITE_HISTORY_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS zs_event_attempts (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    finished_at REAL NOT NULL,
    owner TEXT,
    status TEXT NOT NULL,
    outcome TEXT,
    detail TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS zs_event_attempts_event ON zs_event_attempts (source, event_id);
CREATE TRIGGER IF NOT EXISTS zs_events_finished AFTER UPDATE OF status ON zs_events
WHEN OLD.status = 'processing' AND NEW.status IN ('done', 'failed')
BEGIN
    {_INSERT_SQL}(NEW.source, NEW.event_id, NEW.attempts, NEW.updated_at, OLD.claimed_by,
        {_FINISHED_SQL});
END;
DROP TRIGGER IF EXISTS zs_events_settled;
CREATE TRIGGER IF NOT EXISTS zs_events_settled_taken BEFORE UPDATE ON zs_events
WHEN OLD.status = 'done' AND OLD.claimed_by IS NOT NULL
    AND (NEW.status IS NOT OLD.status OR NEW.claimed_by IS NOT OLD.claimed_by)
BEGIN
    {_INSERT_SQL}(OLD.source, OLD.event_id, OLD.attempts, OLD.updated_at, OLD.claimed_by,
        OLD.status, OLD.outcome, OLD.detail, OLD.last_error);
END;
CREATE TRIGGER IF NOT EXISTS zs_events_taken_over AFTER UPDATE OF claimed_by ON zs_events
WHEN OLD.status = 'processing' AND NEW.status = 'processing'
    AND OLD.claimed_by IS NOT NEW.claimed_by
BEGIN
    {_INSERT_SQL}(NEW.source, NEW.event_id, OLD.attempts, NEW.updated_at, OLD.claimed_by,
        {_ABANDONED_SQL});
END;
"""
"""The history table and its triggers (SQLite); `IF NOT EXISTS`, so opening an older
file adds them. An event recorded done at once (`record_settled`) is one row whose
`claimed_by` keeps the settling owner: its attempt is implied by the row (read back by
`EventRecord.from_row`), which saves the attempt row and its index entry (a third of the
insert). `zs_events_settled_taken` (schema 5) writes that attempt the moment the row
changes (a replay takes the event over), so no update ever loses it. Schema 4's
`zs_events_settled`, which wrote it at the insert, is dropped."""

POSTGRES_HISTORY_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS zs_event_attempts (
    seq bigserial PRIMARY KEY,
    source text NOT NULL,
    event_id text NOT NULL,
    attempt integer NOT NULL,
    finished_at double precision NOT NULL,
    owner text,
    status text NOT NULL,
    outcome text,
    detail text,
    error text
);
CREATE INDEX IF NOT EXISTS zs_event_attempts_event ON zs_event_attempts (source, event_id, seq);
CREATE OR REPLACE FUNCTION zs_record_attempt() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.status = 'processing' THEN
        {_INSERT_SQL}(NEW.source, NEW.event_id, OLD.attempts, NEW.updated_at,
            OLD.claimed_by, {_ABANDONED_SQL});
    ELSE
        {_INSERT_SQL}(NEW.source, NEW.event_id, NEW.attempts, NEW.updated_at,
            OLD.claimed_by, {_FINISHED_SQL});
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS zs_events_attempt ON zs_events;
CREATE TRIGGER zs_events_attempt AFTER UPDATE ON zs_events FOR EACH ROW
WHEN (OLD.status = 'processing' AND (NEW.status IN ('done', 'failed')
    OR (NEW.status = 'processing' AND OLD.claimed_by IS DISTINCT FROM NEW.claimed_by)))
EXECUTE FUNCTION zs_record_attempt();
"""
"""Migration 1 -> 2 (PostgreSQL): the history table, its trigger function and trigger."""
