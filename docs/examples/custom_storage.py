"""A custom storage backend: every method of the ``Storage`` protocol over plain dicts.

The shape carries over to any key-value store (Redis, DynamoDB, ...): one atomic
decision per claim and per lock, subscription state kept as the JSON text
``SubscriptionState.to_json()`` makes. This one lives in one process only.
"""

from __future__ import annotations

import threading

import attrs

from zentitle_stripe.storage import (
    Claim,
    ClaimResult,
    EventRecord,
    EventStatus,
    NewEvent,
    SubscriptionState,
    check_state_write,
    decide_claim,
)


class DictStorage:
    """A `zentitle_stripe.storage.Storage` in dicts, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # makes each decision below atomic
        self._events: dict[tuple[str, str], EventRecord] = {}
        self._subscriptions: dict[str, str] = {}  # id -> SubscriptionState JSON
        self._customers: dict[str, str] = {}
        self._locks: dict[str, tuple[str, float]] = {}  # name -> (owner, expires)

    # --8<-- [start:claim]
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
            # The claim rule every backend shares: duplicate, in progress, or ours.
            result = decide_claim(record, now=now, reclaim_done=reclaim_done)
            if result is not ClaimResult.CLAIMED:
                assert record is not None
                return Claim(result, record)
            if record is not None:
                # FAILED, an expired lease (a crashed worker) or a replay: take it over,
                # keeping the payload first recorded.
                record = attrs.evolve(
                    record,
                    status=EventStatus.PROCESSING,
                    attempts=record.attempts + 1,
                    updated_at=now,
                    claimed_by=owner,
                    lease_expires=now + lease_seconds,
                )
            else:
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
                or record.claimed_by != owner  # a successor took over the expired lease
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

    def extend_claim(
        self, event_id: str, source: str, *, owner: str, lease_seconds: float, now: float
    ) -> bool:
        key = (source, event_id)
        with self._lock:
            record = self._events.get(key)
            if (
                record is None
                or record.status is not EventStatus.PROCESSING
                or record.claimed_by != owner  # a successor took over: stop writing
            ):
                return False
            self._events[key] = attrs.evolve(record, lease_expires=now + lease_seconds)
            return True

    # --8<-- [end:claim]

    # --8<-- [start:read]
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
                record
                for record in reversed(self._events.values())  # newest insertion first
                if (status is None or record.status is status)
                and (source is None or record.source == source)
            ]
        records.sort(key=lambda record: record.received_at, reverse=True)  # stable
        return records[:limit]

    # --8<-- [end:read]

    # --8<-- [start:state]
    def get_subscription(self, subscription_id: str) -> SubscriptionState | None:
        with self._lock:
            text = self._subscriptions.get(subscription_id)
        return SubscriptionState.from_json(text) if text is not None else None

    def put_subscription(self, state: SubscriptionState) -> None:
        with self._lock:
            text = self._subscriptions.get(state.subscription_id)
            stored = SubscriptionState.from_json(text) if text is not None else None
            # Compare-and-set: raises StateConflict for a stale write or one that would
            # clear a cancellation; returns the state to store, one version on.
            new = check_state_write(stored, state)
            self._subscriptions[state.subscription_id] = new.to_json()

    def get_customer_link(self, stripe_customer_id: str) -> str | None:
        with self._lock:
            return self._customers.get(stripe_customer_id)

    def put_customer_link(self, stripe_customer_id: str, zentitle_customer_id: str) -> None:
        with self._lock:
            self._customers[stripe_customer_id] = zentitle_customer_id

    # --8<-- [end:state]

    # --8<-- [start:locks]
    def acquire_lock(self, name: str, *, owner: str, lease_seconds: float, now: float) -> bool:
        with self._lock:
            holder = self._locks.get(name)
            if holder is not None and holder[0] != owner and holder[1] > now:
                return False  # someone else holds an unexpired lease
            self._locks[name] = (owner, now + lease_seconds)
            return True

    def release_lock(self, name: str, *, owner: str) -> None:
        with self._lock:
            holder = self._locks.get(name)
            if holder is not None and holder[0] == owner:
                del self._locks[name]

    def extend_lock(self, name: str, *, owner: str, lease_seconds: float, now: float) -> bool:
        with self._lock:
            holder = self._locks.get(name)
            if holder is None or holder[0] != owner:
                return False  # taken over or released: the caller stops writing
            self._locks[name] = (owner, now + lease_seconds)
            return True

    def ping(self) -> None:
        """Raise ``StorageError`` here when the backend is unreachable."""

    def close(self) -> None:
        """Release connections; nothing to do for dicts."""

    # --8<-- [end:locks]
