"""In-process storage: fast and dependency-free, for tests and single-process demos.

Everything is lost when the process exits, and two processes never share it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import attrs

from ._backend import ClaimRequest, EventQuery, Finish, Lease, StorageBackend, holds_claim
from ._base import (
    Claim,
    ClaimResult,
    EventRecord,
    EventStatus,
    NewEvent,
    SubscriptionState,
    check_state_write,
)
from ._history import EventTable
from ._hooks import MemoryHooks, StoredOutcome
from ._queue import QueueStats, queued_record, taken

__all__ = ["MemoryStorage"]


class MemoryStorage(StorageBackend):
    """A [`Storage`][zentitle_stripe.storage.Storage] kept in dicts under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events = EventTable()  # keeps each event's attempt history as it stores it
        self._subscriptions: dict[str, SubscriptionState] = {}
        self._customers: dict[str, str] = {}
        self._locks: dict[str, Lease] = {}
        self._throttles: dict[str, float] = {}
        self._hooks = MemoryHooks()

    def __repr__(self) -> str:
        return f"MemoryStorage(events={len(self._events)})"

    def _claim(self, request: ClaimRequest) -> Claim:
        with self._lock:
            record = self._events.get(request.key)
            refusal = request.refusal(record)
            if refusal is not None:
                return refusal
            claimed = self._events[request.key] = request.claimed(record)
            return Claim(ClaimResult.CLAIMED, claimed)

    def try_record_settled(
        self, event: NewEvent, *, owner: str, outcome: str, detail: str, now: float
    ) -> bool | None:
        """`record_settled`: memory never waits (its lock only guards dict operations)."""
        return self.record_settled(event, owner=owner, outcome=outcome, detail=detail, now=now)

    def _finish(self, finish: Finish) -> bool:
        with self._lock:
            record = self._events.get(finish.key)
            if record is None or not finish.applies_to(record):
                return False
            self._events[finish.key] = finish.finished(record)
            return True

    def get_event(self, event_id: str, source: str = "stripe") -> EventRecord | None:
        with self._lock:
            return self._events.get((source, event_id))

    def _list(self, query: EventQuery) -> list[EventRecord]:
        with self._lock:
            records = [r for r in self._events.values() if query.matches(r)]
        # Insertion order breaks ties between events received in the same instant.
        records.reverse()
        records.sort(key=lambda r: r.received_at, reverse=True)
        return records[: query.limit]

    def get_subscription(self, subscription_id: str) -> SubscriptionState | None:
        with self._lock:
            return self._subscriptions.get(subscription_id)

    def put_subscription(self, state: SubscriptionState) -> None:
        with self._lock:
            stored = self._subscriptions.get(state.subscription_id)
            self._subscriptions[state.subscription_id] = check_state_write(stored, state)

    def get_customer_link(self, stripe_customer_id: str) -> str | None:
        with self._lock:
            return self._customers.get(stripe_customer_id)

    def put_customer_link(self, stripe_customer_id: str, zentitle_customer_id: str) -> None:
        with self._lock:
            self._customers[stripe_customer_id] = zentitle_customer_id

    def acquire_lock(self, name: str, *, owner: str, lease_seconds: float, now: float) -> bool:
        with self._lock:
            holder = self._locks.get(name)
            if holder is not None and holder.keeps_out(owner, now):
                return False
            self._locks[name] = Lease(owner, now + lease_seconds)
            return True

    def release_lock(self, name: str, *, owner: str) -> None:
        with self._lock:
            holder = self._locks.get(name)
            if holder is not None and holder.owner == owner:
                del self._locks[name]

    def extend_claim(
        self, event_id: str, source: str, *, owner: str, lease_seconds: float, now: float
    ) -> bool:
        with self._lock:
            record = self._events.get((source, event_id))
            if record is None or not holds_claim(record, owner):
                return False
            extended = attrs.evolve(record, lease_expires=now + lease_seconds)
            self._events[(source, event_id)] = extended
            return True

    def extend_lock(self, name: str, *, owner: str, lease_seconds: float, now: float) -> bool:
        with self._lock:
            holder = self._locks.get(name)
            if holder is None or holder.owner != owner:
                return False
            self._locks[name] = Lease(owner, now + lease_seconds)
            return True

    # -- worker mode (see `storage._queue`) ---------------------------------------------

    def enqueue_event(self, event: NewEvent, *, now: float) -> tuple[bool, EventRecord]:
        key = (event.source, event.event_id)
        with self._lock:
            stored = self._events.get(key)
            if stored is None:
                record = self._events[key] = queued_record(event, now)
                return True, record
            if stored.status is EventStatus.FAILED:
                stored = self._events[key] = attrs.evolve(
                    stored, status=EventStatus.QUEUED, lease_expires=now
                )
            return False, stored

    def claim_queued(self, *, owner: str, lease_seconds: float, now: float) -> EventRecord | None:
        waiting = (EventStatus.QUEUED, EventStatus.PROCESSING)
        with self._lock:
            due = [
                r
                for r in self._events.values()
                if r.status in waiting and (r.lease_expires or 0.0) <= now
            ]
            if not due:
                return None
            first = min(due, key=lambda r: (r.lease_expires or 0.0, r.received_at))
            claimed = taken(first, owner, lease_seconds, now)
            self._events[(first.source, first.event_id)] = claimed
            return claimed

    def requeue_event(self, event_id: str, source: str, *, not_before: float) -> bool:
        with self._lock:
            stored = self._events.get((source, event_id))
            if stored is None or stored.status is not EventStatus.FAILED:
                return False
            self._events[(source, event_id)] = attrs.evolve(
                stored, status=EventStatus.QUEUED, lease_expires=not_before
            )
            return True

    def queue_stats(self, *, now: float) -> QueueStats:
        with self._lock:
            queued = [r for r in self._events.values() if r.status is EventStatus.QUEUED]
        due = [r for r in queued if (r.lease_expires or 0.0) <= now]
        oldest = min((r.received_at for r in due), default=None)
        return QueueStats(len(queued), len(due), oldest)

    def throttle(self, name: str, *, until: float) -> None:
        with self._lock:
            self._throttles[name] = max(until, self._throttles.get(name, 0.0))

    def throttled_until(self, name: str) -> float:
        with self._lock:
            return self._throttles.get(name, 0.0)

    # -- outcome hooks (see `storage._hooks`) --------------------------------------------

    def record_outcome(
        self,
        source: str,
        event_id: str,
        *,
        kind: str,
        data: str,
        handlers: Sequence[str],
        now: float,
        not_before: float,
    ) -> StoredOutcome:
        new = StoredOutcome.pending(
            source,
            event_id,
            kind=kind,
            data=data,
            handlers=handlers,
            now=now,
            not_before=not_before,
        )
        with self._lock:
            return self._hooks.record((source, event_id), new)

    def get_outcome(self, event_id: str, source: str = "stripe") -> StoredOutcome | None:
        with self._lock:
            return self._hooks.outcomes.get((source, event_id))

    def claim_hook(
        self,
        source: str,
        event_id: str,
        handler: str,
        *,
        owner: str,
        lease_seconds: float,
        now: float,
    ) -> bool:
        with self._lock:
            return self._hooks.claim((source, event_id), handler, owner, now + lease_seconds, now)

    def finish_hook(
        self,
        source: str,
        event_id: str,
        handler: str,
        *,
        owner: str,
        error: str | None,
        retry_at: float | None,
        now: float,
    ) -> bool:
        with self._lock:
            return self._hooks.finish((source, event_id), handler, owner, error, retry_at, now)

    def due_hooks(
        self, *, now: float, max_attempts: int, limit: int = 100
    ) -> list[tuple[str, str]]:
        with self._lock:
            return self._hooks.due(now, max_attempts, limit)

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None
