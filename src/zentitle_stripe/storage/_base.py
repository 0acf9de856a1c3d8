"""The storage contract: what a backend must do, the records it keeps, and the claim rule.

[`decide_claim`][zentitle_stripe.storage.decide_claim] is public so that a backend of
your own applies the same rule as the built-in ones; those share the rest of theirs in
`storage._backend`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from ..exceptions import StateConflict

__all__ = [
    "Claim",
    "ClaimResult",
    "EventAttempt",
    "EventRecord",
    "EventStatus",
    "NewEvent",
    "Storage",
    "SubscriptionState",
    "check_state_write",
]


class EventStatus(str, enum.Enum):
    """Where a recorded event stands."""

    PROCESSING = "processing"
    """A worker holds the claim (or held it and crashed: see the lease)."""
    DONE = "done"
    """Finished; a redelivery is a duplicate."""
    FAILED = "failed"
    """Finished with an error; a redelivery or `replay` processes it again."""
    QUEUED = "queued"
    """Recorded in queue mode, waiting for `zentitle-stripe worker` (its `lease_expires`
    is the earliest time of the next attempt)."""


class ClaimResult(str, enum.Enum):
    """The answer to [`Storage.claim_event`][zentitle_stripe.storage.Storage.claim_event]."""

    CLAIMED = "claimed"
    """The caller now owns the event and must call
    [`Storage.finish_event`][zentitle_stripe.storage.Storage.finish_event]."""
    DUPLICATE = "duplicate"
    """The event is already done; do nothing."""
    IN_PROGRESS = "in_progress"
    """Another worker holds an unexpired claim; ask the sender to retry later."""


@attrs.frozen
class NewEvent:
    """A verified event about to be recorded."""

    event_id: str
    source: str
    """`"stripe"` or `"zentitle"`: ids are only unique per source."""
    type: str
    payload: bytes = attrs.field(repr=False)
    """The raw body, exactly as verified, so `replay` can run it again."""
    created: int | None = None
    api_version: str | None = None


# -- attempt history ---------------------------------------------------------------------

ABANDONED = "abandoned"
"""The status of an attempt whose worker's lease expired before it finished (a crash,
or a worker stalled past its lease), so that another worker took the event over."""


@attrs.frozen
class EventAttempt:
    """One finished (or abandoned) attempt at an event, kept in its history.

    The SQL backends record them in the database itself (a trigger on every finish and
    every take-over), the memory backend as it stores the record; a replay therefore
    never loses the outcome of an earlier run.
    """

    attempt: int
    """Which attempt this was (1 for the first delivery)."""
    finished_at: float
    """When it finished, or when a successor took the event over (unix seconds)."""
    owner: str | None
    """The worker that made the attempt (`host/pid/random`)."""
    status: str
    """`"done"`, `"failed"`, or `"abandoned"` (lease expired, taken over)."""
    outcome: str | None = None
    detail: str | None = None
    error: str | None = None


@attrs.frozen
class EventRecord:
    """What storage knows about one event."""

    event_id: str
    source: str
    type: str
    status: EventStatus
    attempts: int
    payload: bytes = attrs.field(repr=False)
    created: int | None = None
    api_version: str | None = None
    outcome: str | None = None
    detail: str | None = None
    last_error: str | None = None
    received_at: float = 0.0
    updated_at: float = 0.0
    claimed_by: str | None = None
    lease_expires: float | None = None
    history: tuple[EventAttempt, ...] = ()
    """Earlier attempts, oldest first, as `get_event` and `list_events` of the built-in
    backends return them (not the record inside a `Claim`)."""

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> EventRecord:
        """Build from a SQL row in `EVENT_COLUMNS` order (the SQL backends share it).

        A done row that still names an owner is an event recorded done at once
        (SQLite's `record_settled`): its one attempt is implied by the row, not written
        apart, so it is read back here as the record's history (and no owner).
        """
        values = dict(zip(EVENT_FIELDS, row, strict=True))
        status = values["status"] = EventStatus(values["status"])
        values["payload"] = bytes(values["payload"])
        if status is EventStatus.DONE and values["claimed_by"] is not None:
            owner, values["claimed_by"] = values["claimed_by"], None
            attempt = (values["attempts"], values["updated_at"], owner, status.value)
            ended = (values["outcome"], values["detail"], values["last_error"])
            values["history"] = (EventAttempt(*attempt, *ended),)
        return cls(**values)

    def to_row(self) -> tuple[Any, ...]:
        """The values in `EVENT_COLUMNS` order (the inverse of `from_row`), for an INSERT."""
        return tuple(
            self.status.value if name == "status" else getattr(self, name) for name in EVENT_FIELDS
        )

    def is_stuck(self, now: float) -> bool:
        """Claimed but never finished, and the claim's lease has expired by `now` (its
        worker crashed or stalled): the next delivery or a `replay` may take it over."""
        return self.status is EventStatus.PROCESSING and (self.lease_expires or 0.0) <= now

    def as_new_event(self) -> NewEvent:
        """The event as first received, to claim it again (`replay`)."""
        return NewEvent(**{name: getattr(self, name) for name in attrs.fields_dict(NewEvent)})


# `history` lives in a table of its own (SQL) and is not a column of the events.
EVENT_FIELDS = tuple(f.name for f in attrs.fields(EventRecord) if f.name != "history")
EVENT_COLUMNS = ", ".join(EVENT_FIELDS)
"""The columns of `EventRecord.from_row` and `EventRecord.to_row`, in field order."""


@attrs.frozen
class Claim:
    """The result of a claim and the record as it stands after it."""

    result: ClaimResult
    record: EventRecord


@attrs.frozen
class SubscriptionState:
    """What the library remembers about one Stripe subscription.

    Remote systems are the truth; this is the index that lets a retry find its way
    (which group was created, whether codes were written back, whether a cancellation
    arrived before the first payment).
    """

    subscription_id: str
    zentitle_customer_id: str | None = None
    group_id: str | None = None
    activation_codes: tuple[str, ...] = ()
    codes_written: bool = False
    canceled: bool = False
    renewed_invoices: tuple[str, ...] = ()
    """Invoice ids whose renewal was applied, newest last (bounded)."""
    trial_until: int | None = None
    """The licence was granted for a trial and expires then (unix seconds); cleared by
    the first paid invoice, so it also says "never paid"."""
    suspended: str | None = None
    """Why the flows disabled the licence for the subscription's status (`paused`,
    `unpaid`, ...); only a licence disabled this way is enabled again. May be set
    before the licence exists, so a late first payment provisions it disabled."""
    grace_until: int | None = None
    """The expiry the `past_due` grace set (unix seconds), so the paid invoice that
    ends the trouble sets the paid period's end instead of adding a period to it."""
    owed_until: int | None = None
    """The end of a period paid while the licence was suspended (unix seconds): the
    renewal renewed nothing (a renew skips a disabled entitlement), so the licence covers
    it once enabled again; cleared then."""
    version: int = attrs.field(default=0, eq=False)
    """How many times this state was stored: 0 for one never stored. A write is
    compare-and-set on it (see
    [`check_state_write`][zentitle_stripe.storage.check_state_write]); two states that
    differ only in version are equal."""

    def to_json(self) -> str:
        data = attrs.asdict(self)
        data["activation_codes"] = list(self.activation_codes)
        data["renewed_invoices"] = list(self.renewed_invoices)
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SubscriptionState:
        data: dict[str, Any] = json.loads(text)
        data["activation_codes"] = tuple(data.get("activation_codes") or ())
        data["renewed_invoices"] = tuple(data.get("renewed_invoices") or ())
        # Stored before states had versions: it was stored, so at least once.
        data.setdefault("version", 1)
        known = {field.name for field in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def stored(self) -> SubscriptionState:
        """This state as a successful write leaves it in storage: one version on."""
        return attrs.evolve(self, version=self.version + 1)


def check_state_write(
    stored: SubscriptionState | None, state: SubscriptionState
) -> SubscriptionState:
    """The compare-and-set rule of
    [`Storage.put_subscription`][zentitle_stripe.storage.Storage.put_subscription].

    `stored` is what storage holds now. The write is refused with
    [`StateConflict`][zentitle_stripe.exceptions.StateConflict] when `state` was read
    before another write (its version is not the stored one; 0 means "nothing stored
    yet"), or when it would clear a recorded cancellation. Returns what to store.
    """
    current = stored.version if stored is not None else 0
    subscription_id = state.subscription_id
    if current != state.version:
        raise StateConflict(
            f"subscription {subscription_id} was stored by another writer (version "
            f"{current}) after this one read it (version {state.version}): the stale "
            "write was refused; the event is retried and reads the newer state",
            retry_after=5,
        )
    if stored is not None and stored.canceled and not state.canceled:
        raise StateConflict(
            f"subscription {subscription_id} is recorded as cancelled and a cancellation "
            "is never cleared: this write, which would clear it, was refused"
        )
    return state.stored()


@runtime_checkable
class Storage(Protocol):
    """Where events, claims and subscription state live.

    Every method is safe to call from several threads at once; backends meant for
    several processes (SQLite, PostgreSQL) must be safe across processes too. Times are
    unix seconds passed in by the caller, so tests control the clock. Backend failures
    are raised as [`StorageError`][zentitle_stripe.exceptions.StorageError].
    Prove a backend with [`StorageContract`][zentitle_stripe.testing.StorageContract].
    """

    def claim_event(
        self,
        event: NewEvent,
        *,
        owner: str,
        lease_seconds: float,
        now: float,
        reclaim_done: bool = False,
    ) -> Claim:
        """Record `event` if it is new, and atomically decide who processes it.

        - new: store it as `PROCESSING` owned by `owner`, attempts 1 -> `CLAIMED`;
        - `DONE`: `DUPLICATE` (unless `reclaim_done`, used by replay -> `CLAIMED`);
        - `PROCESSING` with an unexpired lease: `IN_PROGRESS`;
        - `FAILED`, or `PROCESSING` whose lease expired (a crashed worker): take it
          over, attempts + 1 -> `CLAIMED`.

        The stored payload of an existing event is never overwritten.
        """
        ...

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
        """Mark a claimed event `DONE` or `FAILED` and release the claim.

        Returns `False` (changing nothing) when `owner` no longer holds the claim,
        because a successor took over an expired lease.
        """
        ...

    def get_event(self, event_id: str, source: str = "stripe") -> EventRecord | None:
        """The record of one event, or `None`."""
        ...

    def list_events(
        self,
        *,
        status: EventStatus | None = None,
        source: str | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """Recorded events, most recently received first, optionally filtered.

        "Received" is by the storage's clock (`now` when recorded); a backend may take
        that order from the order it recorded them in (SQLite does), so events recorded
        while the clock was set back may come in the order recorded.
        """
        ...

    def get_subscription(self, subscription_id: str) -> SubscriptionState | None:
        """The state of one subscription, or `None` if never seen."""
        ...

    def put_subscription(self, state: SubscriptionState) -> None:
        """Store `state` if storage still holds the version it was read at, atomically.

        Compare-and-set: apply
        [`check_state_write`][zentitle_stripe.storage.check_state_write] to the stored
        state and the write in one atomic step, and store what it returns (version + 1).
        A stale write, or one clearing `canceled`, raises
        [`StateConflict`][zentitle_stripe.exceptions.StateConflict] and changes nothing.
        """
        ...

    def get_customer_link(self, stripe_customer_id: str) -> str | None:
        """The Zentitle2 customer id linked to a Stripe customer, or `None`."""
        ...

    def put_customer_link(self, stripe_customer_id: str, zentitle_customer_id: str) -> None:
        """Link a Stripe customer to a Zentitle2 customer (insert or replace)."""
        ...

    def acquire_lock(self, name: str, *, owner: str, lease_seconds: float, now: float) -> bool:
        """Take the named lock if it is free, expired, or already `owner`'s.

        Non-blocking: returns `False` when someone else holds an unexpired lease.
        Used to serialise the remote calls of one subscription.
        """
        ...

    def release_lock(self, name: str, *, owner: str) -> None:
        """Release the named lock if `owner` holds it; otherwise do nothing."""
        ...

    def extend_claim(
        self, event_id: str, source: str, *, owner: str, lease_seconds: float, now: float
    ) -> bool:
        """Renew the claim's lease to `now + lease_seconds` while `owner` still holds it.

        Returns `False` (changing nothing) when the event is no longer `PROCESSING` under
        `owner`: a successor took it over, or it was finished.
        """
        ...

    def extend_lock(self, name: str, *, owner: str, lease_seconds: float, now: float) -> bool:
        """Renew the named lock's lease to `now + lease_seconds` while `owner` holds it.

        Returns `False` (changing nothing) when someone else took it over or it was
        released. Unlike `acquire_lock`, never takes a lock `owner` does not hold.
        """
        ...

    def ping(self) -> None:
        """Raise [`StorageError`][zentitle_stripe.exceptions.StorageError] if unusable
        (health checks)."""
        ...

    def close(self) -> None:
        """Release connections; the object is not used afterwards."""
        ...


def decide_claim(record: EventRecord | None, *, now: float, reclaim_done: bool) -> ClaimResult:
    """The claim rule shared by every backend, given the current record."""
    if record is None:
        return ClaimResult.CLAIMED
    if record.status is EventStatus.DONE:
        return ClaimResult.CLAIMED if reclaim_done else ClaimResult.DUPLICATE
    if record.status is EventStatus.PROCESSING and (record.lease_expires or 0.0) > now:
        return ClaimResult.IN_PROGRESS
    return ClaimResult.CLAIMED
