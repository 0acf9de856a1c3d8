"""The half every built-in backend shares: the rules as request objects, and the template.

`StorageBackend` turns each public call with many arguments into a request object that
carries the rule (who may claim an event, what a claim or a finish writes, who may take a
lock), so a backend keeps only its data structure or its SQL. The SQL backends express
the same rules in their statements' `WHERE` clauses, where they must be atomic.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import attrs

from ._base import Claim, ClaimResult, EventRecord, EventStatus, NewEvent, decide_claim

__all__ = ["ClaimRequest", "EventQuery", "Finish", "Lease", "StorageBackend", "holds_claim"]


@attrs.frozen
class ClaimRequest:
    """One `claim_event` call, with the rule that decides it and the record it writes."""

    event: NewEvent
    owner: str
    lease_seconds: float
    now: float
    reclaim_done: bool = False

    @property
    def key(self) -> tuple[str, str]:
        """`(source, event_id)`: event ids are only unique per source."""
        return (self.event.source, self.event.event_id)

    def refusal(self, record: EventRecord | None) -> Claim | None:
        """The answer when the event is not ours to take (duplicate, in progress), else `None`."""
        result = decide_claim(record, now=self.now, reclaim_done=self.reclaim_done)
        if result is ClaimResult.CLAIMED:
            return None
        assert record is not None
        return Claim(result, record)

    def claimed(self, record: EventRecord | None) -> EventRecord:
        """The record once ours: a new one (attempt 1), or `record` taken over (one more
        attempt, payload kept)."""
        expires = self.now + self.lease_seconds
        if record is not None:
            return attrs.evolve(
                record,
                status=EventStatus.PROCESSING,
                attempts=record.attempts + 1,
                updated_at=self.now,
                claimed_by=self.owner,
                lease_expires=expires,
            )
        return EventRecord(
            **attrs.asdict(self.event, recurse=False),
            status=EventStatus.PROCESSING,
            attempts=1,
            received_at=self.now,
            updated_at=self.now,
            claimed_by=self.owner,
            lease_expires=expires,
        )


def holds_claim(record: EventRecord | None, owner: str) -> bool:
    """Whether `owner` still holds the claim on `record` (to finish or extend it)."""
    if record is None:
        return False
    return record.status is EventStatus.PROCESSING and record.claimed_by == owner


@attrs.frozen
class Finish:
    """One `finish_event` call: the claim's owner and what the event ended as."""

    owner: str
    status: EventStatus
    outcome: str
    detail: str
    error: str | None
    now: float
    event_id: str
    source: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.event_id)

    def applies_to(self, record: EventRecord | None) -> bool:
        """Only the holder of a live claim may finish it (a successor may have taken over)."""
        return holds_claim(record, self.owner)

    def finished(self, record: EventRecord) -> EventRecord:
        """`record` finished: outcome written, claim released."""
        return attrs.evolve(
            record,
            status=self.status,
            outcome=self.outcome,
            detail=self.detail,
            last_error=self.error,
            updated_at=self.now,
            claimed_by=None,
            lease_expires=None,
        )


@attrs.frozen
class EventQuery:
    """One `list_events` (or `list_stuck_events`) call: the filters and the page size."""

    status: EventStatus | None = None
    source: str | None = None
    limit: int = 100
    expired_by: float | None = None
    """Only claims whose lease expired by this time (`list_stuck_events`)."""

    def matches(self, record: EventRecord) -> bool:
        return (
            (self.status is None or record.status is self.status)
            and (self.source is None or record.source == self.source)
            and (self.expired_by is None or record.is_stuck(self.expired_by))
        )


@attrs.frozen
class Lease:
    """Who holds a named lock, and until when."""

    owner: str
    expires: float

    def keeps_out(self, owner: str, now: float) -> bool:
        """The lock rule: only someone else's unexpired lease keeps `owner` out."""
        return self.owner != owner and self.expires > now


class StorageBackend(abc.ABC):
    """The half of a [`Storage`][zentitle_stripe.storage.Storage] every built-in shares.

    The calls with many arguments become request objects that carry the rules, so a
    backend implements only `_claim`, `_finish` and `_list` plus the simple methods.
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
        return self._claim(ClaimRequest(event, owner, lease_seconds, now, reclaim_done))

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
        return self._finish(Finish(owner, status, outcome, detail, error, now, event_id, source))

    def list_events(
        self,
        *,
        status: EventStatus | None = None,
        source: str | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        return self._list(EventQuery(status, source, limit))

    def record_settled(
        self, event: NewEvent, *, owner: str, outcome: str, detail: str, now: float
    ) -> bool:
        """Record a first-seen event that needs no work as `DONE` with its outcome, in one
        write (the ingress of an unhandled type or a one-time payment).

        Returns `False` (changing nothing) when the event is already recorded: the caller
        then takes the claim path, which answers a duplicate or takes a failed event
        over. The SQL backends override `_record_settled` with one transaction; this
        default claims and finishes.
        """
        request = ClaimRequest(event, owner, 0.0, now)
        finish = Finish(owner, EventStatus.DONE, outcome, detail, None, now, *reversed(request.key))
        return self._record_settled(request, finish)

    def _record_settled(self, request: ClaimRequest, finish: Finish) -> bool:
        if self.get_event(request.event.event_id, request.event.source) is not None:
            return False
        if self._claim(request).result is not ClaimResult.CLAIMED:
            return False
        return self._finish(finish)

    @abc.abstractmethod
    def get_event(self, event_id: str, source: str = "stripe") -> EventRecord | None:
        """The record of one event, or `None`."""

    # -- stuck events and history (see `storage._history`) ------------------------------

    keeps_history: ClassVar[bool] = True
    """`get_event` and `list_events` return each event's `history` (the contract checks it)."""

    def list_stuck_events(
        self, *, now: float, source: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """Events claimed but never finished whose lease expired by `now` (a crashed or
        stalled worker), most recently received first: what `events --status stuck`
        shows and `replay --failed` takes over."""
        return self._list(EventQuery(EventStatus.PROCESSING, source, limit, expired_by=now))

    @abc.abstractmethod
    def _claim(self, request: ClaimRequest) -> Claim:
        """Apply `request` atomically: `request.refusal`, else store `request.claimed`."""

    @abc.abstractmethod
    def _finish(self, finish: Finish) -> bool:
        """Store `finish.finished(record)` if `finish.applies_to(record)`, atomically."""

    @abc.abstractmethod
    def _list(self, query: EventQuery) -> list[EventRecord]:
        """The records `query` matches, most recently received first."""
