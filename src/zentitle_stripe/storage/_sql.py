"""What the two SQL backends share: the statements, and every call but the claim.

The statements are written once, with psycopg's `%s` placeholders (the SQLite backend
turns them into `?`); both databases run them as they are (SQLite from 3.24, for the
upserts). A backend supplies two primitives, `_fetch` and `_change`, the column that
orders events received in the same instant, its health-check query, and its own claim
transaction, which is where the two really differ.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

from ..exceptions import StateConflict
from ._backend import ClaimRequest, EventQuery, Finish, StorageBackend
from ._base import (
    EVENT_COLUMNS,
    EVENT_FIELDS,
    EventRecord,
    EventStatus,
    SubscriptionState,
    check_state_write,
)
from ._history import ATTEMPT_COLUMNS, with_history

Row = Sequence[Any]

OPEN_EVENTS = "status <> 'done'"
"""A term of every query for events not done: SQLite uses its index of them (which a
settled event never touches) only for a query that says it, in these words."""
SELECT_EVENT = f"SELECT {EVENT_COLUMNS} FROM zs_events WHERE source = %s AND event_id = %s"  # noqa: S608
INSERT_EVENT = (
    f"INSERT INTO zs_events ({EVENT_COLUMNS}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(EVENT_FIELDS))}) "
    "ON CONFLICT (source, event_id) DO NOTHING"
)
"""Takes `EventRecord.to_row()`; a concurrent insert of the same key wins, this one is a no-op."""
TAKE_OVER_EVENT = (
    "UPDATE zs_events SET status = %s, attempts = %s, updated_at = %s, claimed_by = %s, "
    "lease_expires = %s WHERE source = %s AND event_id = %s"
)
# The rule of Finish.applies_to, in the statement so that it is atomic.
_FINISH_EVENT = (
    "UPDATE zs_events SET status = %s, outcome = %s, detail = %s, last_error = %s, "
    "updated_at = %s, claimed_by = NULL, lease_expires = NULL "
    "WHERE source = %s AND event_id = %s AND status = %s AND claimed_by = %s"
)
# Renewals: the rule of holds_claim / the lock's owner, in the statement.
_EXTEND_CLAIM = (
    "UPDATE zs_events SET lease_expires = %s "
    "WHERE source = %s AND event_id = %s AND status = %s AND claimed_by = %s"
)
_EXTEND_LOCK = "UPDATE zs_locks SET expires = %s WHERE name = %s AND owner = %s"
_SELECT_SUBSCRIPTION = "SELECT state FROM zs_subscriptions WHERE subscription_id = %s"
# Compare-and-set: the state read is the expected value. A first write inserts only if
# no row exists; a later one replaces only the exact text it read (its version included),
# so a writer that lost a race changes nothing and is told so.
_INSERT_SUBSCRIPTION = (
    "INSERT INTO zs_subscriptions (subscription_id, state) VALUES (%s, %s) "
    "ON CONFLICT (subscription_id) DO NOTHING"
)
_REPLACE_SUBSCRIPTION = (
    "UPDATE zs_subscriptions SET state = %s WHERE subscription_id = %s AND state = %s"
)
_SELECT_CUSTOMER = "SELECT zentitle_customer_id FROM zs_customers WHERE stripe_customer_id = %s"
_PUT_CUSTOMER = (
    "INSERT INTO zs_customers (stripe_customer_id, zentitle_customer_id) VALUES (%s, %s) "
    "ON CONFLICT (stripe_customer_id) "
    "DO UPDATE SET zentitle_customer_id = excluded.zentitle_customer_id"
)
# One statement, so the check and the take are atomic on the server; a row held by
# someone else with an unexpired lease is left alone (Lease.keeps_out, inverted).
_ACQUIRE_LOCK = (
    "INSERT INTO zs_locks (name, owner, expires) VALUES (%s, %s, %s) "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires "
    "WHERE zs_locks.owner = excluded.owner OR zs_locks.expires <= %s"
)
_RELEASE_LOCK = "DELETE FROM zs_locks WHERE name = %s AND owner = %s"
# A settled event's one attempt, written beside its insert (the history triggers fire on
# updates only): the same row a finish would have left.
SETTLED_ATTEMPT = (
    f"INSERT INTO zs_event_attempts ({ATTEMPT_COLUMNS}) SELECT %s, %s, 1, %s, %s, %s, %s, %s, NULL"
)
_HISTORY_BATCH = 400  # event ids per history query: within SQLite's oldest variable limit


def take_over_params(claimed: EventRecord) -> tuple[Any, ...]:
    """The parameters of `TAKE_OVER_EVENT` that store `claimed` (payload untouched)."""
    return (
        claimed.status.value,
        claimed.attempts,
        claimed.updated_at,
        claimed.claimed_by,
        claimed.lease_expires,
        claimed.source,
        claimed.event_id,
    )


def settled_rows(request: ClaimRequest, finish: Finish) -> tuple[EventRecord, tuple[Any, ...]]:
    """The event row and the attempt parameters of a settled event (`record_settled`)."""
    record = finish.finished(request.claimed(None))
    attempt = (
        record.source,
        record.event_id,
        finish.now,
        finish.owner,
        finish.status.value,
        finish.outcome,
        finish.detail,
    )
    return record, attempt


def record_in(rows: Sequence[Row]) -> EventRecord | None:
    """The event in the rows of `SELECT_EVENT`, if any."""
    return EventRecord.from_row(rows[0]) if rows else None


class SQLStorage(StorageBackend):
    """A [`Storage`][zentitle_stripe.storage.Storage] over the shared statements."""

    _insertion_order: ClassVar[str]
    """The column that orders events received in the same instant, oldest first."""
    _newest_first: ClassVar[str] = "received_at DESC"
    """How `list_events` orders events, most recently received first (before
    `_insertion_order`, for events received in the same instant)."""
    _ping: ClassVar[str]
    """The health-check query."""

    @abc.abstractmethod
    def _fetch(self, doing: str, statement: str, params: Sequence[Any]) -> Sequence[Row]:
        """Run a read; driver errors become `StorageError` saying what it was `doing`."""

    @abc.abstractmethod
    def _change(self, doing: str, statement: str, params: Sequence[Any]) -> int:
        """Run one write atomically and return the number of rows it changed."""

    def _finish(self, finish: Finish) -> bool:
        params = (
            finish.status.value,
            finish.outcome,
            finish.detail,
            finish.error,
            finish.now,
            finish.source,
            finish.event_id,
            EventStatus.PROCESSING.value,
            finish.owner,
        )
        return self._change("finish an event", _FINISH_EVENT, params) == 1

    def get_event(self, event_id: str, source: str = "stripe") -> EventRecord | None:
        record = record_in(self._fetch("read an event", SELECT_EVENT, (source, event_id)))
        return None if record is None else self._with_history([record])[0]

    def _list(self, query: EventQuery) -> list[EventRecord]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.status is not None:
            clauses.append("status = %s")
            params.append(query.status.value)
            if query.status is not EventStatus.DONE:
                clauses.append(OPEN_EVENTS)
        if query.source is not None:
            clauses.append("source = %s")
            params.append(query.source)
        if query.expired_by is not None:
            clauses.append("lease_expires <= %s")
            params.append(query.expired_by)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        statement = (
            f"SELECT {EVENT_COLUMNS} FROM zs_events {where} "  # noqa: S608
            f"ORDER BY {self._newest_first}, {self._insertion_order} DESC LIMIT %s"
        )
        rows = self._fetch("list events", statement, (*params, query.limit))
        return self._with_history([EventRecord.from_row(row) for row in rows])

    def get_subscription(self, subscription_id: str) -> SubscriptionState | None:
        rows = self._fetch("read a subscription", _SELECT_SUBSCRIPTION, (subscription_id,))
        return SubscriptionState.from_json(rows[0][0]) if rows else None

    def put_subscription(self, state: SubscriptionState) -> None:
        subscription_id = state.subscription_id
        rows = self._fetch("read a subscription", _SELECT_SUBSCRIPTION, (subscription_id,))
        read: str | None = rows[0][0] if rows else None
        stored = SubscriptionState.from_json(read) if read is not None else None
        text = check_state_write(stored, state).to_json()
        if read is None:
            params: tuple[str, ...] = (subscription_id, text)
            changed = self._change("store a subscription", _INSERT_SUBSCRIPTION, params)
        else:
            params = (text, subscription_id, read)
            changed = self._change("store a subscription", _REPLACE_SUBSCRIPTION, params)
        if changed != 1:
            raise StateConflict(
                f"subscription {subscription_id} was stored by another writer while this "
                "one was writing it: the write was refused; the event is retried",
                retry_after=5,
            )

    def get_customer_link(self, stripe_customer_id: str) -> str | None:
        rows = self._fetch("read a customer link", _SELECT_CUSTOMER, (stripe_customer_id,))
        return str(rows[0][0]) if rows else None

    def put_customer_link(self, stripe_customer_id: str, zentitle_customer_id: str) -> None:
        params = (stripe_customer_id, zentitle_customer_id)
        self._change("store a customer link", _PUT_CUSTOMER, params)

    def acquire_lock(self, name: str, *, owner: str, lease_seconds: float, now: float) -> bool:
        params = (name, owner, now + lease_seconds, now)
        return self._change("take a lock", _ACQUIRE_LOCK, params) == 1

    def release_lock(self, name: str, *, owner: str) -> None:
        self._change("release a lock", _RELEASE_LOCK, (name, owner))

    def extend_claim(
        self, event_id: str, source: str, *, owner: str, lease_seconds: float, now: float
    ) -> bool:
        params = (now + lease_seconds, source, event_id, EventStatus.PROCESSING.value, owner)
        return self._change("extend a claim", _EXTEND_CLAIM, params) == 1

    def extend_lock(self, name: str, *, owner: str, lease_seconds: float, now: float) -> bool:
        params = (now + lease_seconds, name, owner)
        return self._change("extend a lock", _EXTEND_LOCK, params) == 1

    def ping(self) -> None:
        self._fetch("answer a health check", self._ping, ())

    # -- attempt history (the triggers of `storage._history` write it) -------------------

    def _with_history(self, records: list[EventRecord]) -> list[EventRecord]:
        """`records` with their attempt history, a few hundred events per query."""
        rows: list[Row] = []
        for source in sorted({r.source for r in records}):
            ids = [r.event_id for r in records if r.source == source]
            for start in range(0, len(ids), _HISTORY_BATCH):
                batch = ids[start : start + _HISTORY_BATCH]
                statement = (
                    f"SELECT {ATTEMPT_COLUMNS} FROM zs_event_attempts "  # noqa: S608
                    f"WHERE source = %s AND event_id IN ({', '.join(['%s'] * len(batch))}) "
                    f"ORDER BY {self._insertion_order}"
                )
                rows.extend(self._fetch("read event histories", statement, (source, *batch)))
        return with_history(records, rows)
