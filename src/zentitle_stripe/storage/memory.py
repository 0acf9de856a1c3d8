"""In-process storage: fast and dependency-free, for tests and single-process demos.

Everything is lost when the process exits, and two processes never share it.
"""

from __future__ import annotations

import threading

import attrs

from ._base import (
    Claim,
    ClaimResult,
    EventRecord,
    EventStatus,
    NewEvent,
    SubscriptionState,
    decide_claim,
)

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """A :class:`~zentitle_stripe.storage.Storage` kept in dicts under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[tuple[str, str], EventRecord] = {}
        self._subscriptions: dict[str, SubscriptionState] = {}
        self._customers: dict[str, str] = {}
        self._locks: dict[str, tuple[str, float]] = {}

    def __repr__(self) -> str:
        return f"MemoryStorage(events={len(self._events)})"

    def claim_event(
        self,
        event: NewEvent,
        *,
        owner: str,
        lease_seconds: float,
        now: float,
        reclaim_done: bool = False,
    ) -> Claim:
        key = (event.source, event.event_id)
        with self._lock:
            record = self._events.get(key)
            result = decide_claim(record, now=now, reclaim_done=reclaim_done)
            if result is not ClaimResult.CLAIMED:
                assert record is not None
                return Claim(result, record)
            if record is None:
                record = EventRecord(
                    event_id=event.event_id,
                    source=event.source,
                    type=event.type,
                    status=EventStatus.PROCESSING,
                    attempts=1,
                    payload=event.payload,
                    created=event.created,
                    api_version=event.api_version,
                    received_at=now,
                    updated_at=now,
                    claimed_by=owner,
                    lease_expires=now + lease_seconds,
                )
            else:
                record = attrs.evolve(
                    record,
                    status=EventStatus.PROCESSING,
                    attempts=record.attempts + 1,
                    updated_at=now,
                    claimed_by=owner,
                    lease_expires=now + lease_seconds,
                )
            self._events[key] = record
            return Claim(ClaimResult.CLAIMED, record)

    def finish_event(
        self,
        event_id: str,
        source: str,
        *,
        owner: str,
        status: EventStatus,
        outcome: str,
        detail: str,
        error: str | None,
        now: float,
    ) -> bool:
        key = (source, event_id)
        with self._lock:
            record = self._events.get(key)
            if (
                record is None
                or record.status is not EventStatus.PROCESSING
                or record.claimed_by != owner
            ):
                return False
            self._events[key] = attrs.evolve(
                record,
                status=status,
                outcome=outcome,
                detail=detail,
                last_error=error,
                updated_at=now,
                claimed_by=None,
                lease_expires=None,
            )
            return True

    def get_event(self, event_id: str, source: str = "stripe") -> EventRecord | None:
        with self._lock:
            return self._events.get((source, event_id))

    def list_events(
        self,
        *,
        status: EventStatus | None = None,
        source: str | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        with self._lock:
            records = [
                r
                for r in self._events.values()
                if (status is None or r.status is status) and (source is None or r.source == source)
            ]
        # Insertion order breaks ties between events received in the same instant.
        records.reverse()
        records.sort(key=lambda r: r.received_at, reverse=True)
        return records[:limit]

    def get_subscription(self, subscription_id: str) -> SubscriptionState | None:
        with self._lock:
            return self._subscriptions.get(subscription_id)

    def put_subscription(self, state: SubscriptionState) -> None:
        with self._lock:
            self._subscriptions[state.subscription_id] = state

    def get_customer_link(self, stripe_customer_id: str) -> str | None:
        with self._lock:
            return self._customers.get(stripe_customer_id)

    def put_customer_link(self, stripe_customer_id: str, zentitle_customer_id: str) -> None:
        with self._lock:
            self._customers[stripe_customer_id] = zentitle_customer_id

    def acquire_lock(self, name: str, *, owner: str, lease_seconds: float, now: float) -> bool:
        with self._lock:
            holder = self._locks.get(name)
            if holder is not None and holder[0] != owner and holder[1] > now:
                return False
            self._locks[name] = (owner, now + lease_seconds)
            return True

    def release_lock(self, name: str, *, owner: str) -> None:
        with self._lock:
            holder = self._locks.get(name)
            if holder is not None and holder[0] == owner:
                del self._locks[name]

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None
