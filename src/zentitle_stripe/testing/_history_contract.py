"""The part of [`StorageContract`][zentitle_stripe.testing.StorageContract] about attempt
history and stuck events (it inherits these tests).

A backend of your own keeps history once it says so (`keeps_history = True` on the
class); until then its records must carry none, and the history tests check only that.
Stuck events are listed through `zentitle_stripe.storage.stuck_events`, which uses the
backend's `list_stuck_events` when it has one and filters `processing` events otherwise.
"""

from __future__ import annotations

from ..storage import ClaimResult, EventRecord, EventStatus, NewEvent, Storage, stuck_events

__all__ = ["HistoryContract"]

T0 = 1_900_000_000.0
LEASE = 30.0

Attempt = tuple[int, "str | None", str, "str | None"]


class HistoryContract:
    """Attempt history and stuck events, for every backend."""

    storage: Storage

    def _claim(
        self, event_id: str, owner: str, now: float, *, source: str = "stripe", replay: bool = False
    ) -> ClaimResult:
        event = NewEvent(event_id=event_id, source=source, type="invoice.paid", payload=b"{}")
        return self.storage.claim_event(
            event, owner=owner, lease_seconds=LEASE, now=now, reclaim_done=replay
        ).result

    def _end(self, event_id: str, owner: str, status: EventStatus, now: float) -> bool:
        done = status is EventStatus.DONE
        return self.storage.finish_event(
            event_id,
            "stripe",
            owner=owner,
            status=status,
            outcome="provisioned" if done else "failed",
            detail=f"{status.value} detail",
            error=None if done else "boom",
            now=now,
        )

    def _keeps_history(self) -> bool:
        if getattr(self.storage, "keeps_history", False):
            return True
        assert all(r.history == () for r in self.storage.list_events(limit=1000))
        return False

    def _record(self, event_id: str, source: str = "stripe") -> EventRecord:
        record = self.storage.get_event(event_id, source)
        assert record is not None
        return record

    def _attempts(self, event_id: str) -> list[Attempt]:
        return [(a.attempt, a.owner, a.status, a.outcome) for a in self._record(event_id).history]

    def test_history_keeps_every_finished_attempt_through_a_replay(self) -> None:
        self._claim("evt_h", "w1", T0)
        assert self._record("evt_h").history == ()
        self._end("evt_h", "w1", EventStatus.FAILED, T0 + 1)
        self._claim("evt_h", "w2", T0 + 2)
        self._end("evt_h", "w2", EventStatus.DONE, T0 + 3)
        assert self._claim("evt_h", "replay", T0 + 4, replay=True) is ClaimResult.CLAIMED
        self._end("evt_h", "replay", EventStatus.DONE, T0 + 5)
        if not self._keeps_history():
            return
        assert self._attempts("evt_h") == [
            (1, "w1", "failed", "failed"),
            (2, "w2", "done", "provisioned"),
            (3, "replay", "done", "provisioned"),
        ]
        first, second, _ = self._record("evt_h").history
        assert (first.finished_at, first.detail, first.error) == (T0 + 1, "failed detail", "boom")
        assert (second.finished_at, second.error) == (T0 + 3, None)

    def test_a_take_over_records_the_abandoned_attempt_and_a_stale_finish_nothing(
        self,
    ) -> None:
        self._claim("evt_t", "w1", T0)
        later = T0 + LEASE + 1
        assert self._claim("evt_t", "w2", later) is ClaimResult.CLAIMED
        assert not self._end("evt_t", "w1", EventStatus.DONE, later + 1)  # back too late
        assert self._end("evt_t", "w2", EventStatus.DONE, later + 2)
        if not self._keeps_history():
            return
        assert self._attempts("evt_t") == [
            (1, "w1", "abandoned", None),
            (2, "w2", "done", "provisioned"),
        ]
        abandoned = self._record("evt_t").history[0]
        assert abandoned.finished_at == later
        assert "lease expired" in (abandoned.detail or "")

    def test_listed_events_carry_the_same_history_as_get_event(self) -> None:
        for i in range(3):
            self._claim(f"evt_{i}", "w", T0)
            self._end(f"evt_{i}", "w", EventStatus.FAILED, T0 + 1)
        self._claim("evt_1", "w", T0, source="zentitle")
        listed = self.storage.list_events()
        for record in listed:
            assert record.history == self._record(record.event_id, record.source).history
        if self._keeps_history():
            assert sorted(len(r.history) for r in listed) == [0, 1, 1, 1]

    def test_stuck_events_are_the_claims_whose_lease_expired(self) -> None:
        # Received in the order of the clock (a listing's order is the clock's, which
        # a backend may take from the order events were recorded in).
        self._claim("evt_z", "wz", T0, source="zentitle")
        for i in range(4):
            self._claim(f"evt_{i}", f"w{i}", T0 + i)
        self._end("evt_0", "w0", EventStatus.FAILED, T0 + 1)

        def stuck(now: float, **filters: str | int) -> list[str]:
            found = stuck_events(self.storage, now=now, **filters)  # type: ignore[arg-type]
            assert all(r.is_stuck(now) for r in found)
            return [r.event_id for r in found]

        # At T0 + LEASE + 2 the claims made at T0, +1 and +2 have expired, +3 has not.
        at = T0 + LEASE + 2
        assert stuck(at) == ["evt_2", "evt_1", "evt_z"]
        assert stuck(at, source="stripe", limit=1) == ["evt_2"]
        assert stuck(at, source="zentitle") == ["evt_z"]
        assert stuck(T0 + 1) == []
        self._claim("evt_1", "next", at)
        assert stuck(at) == ["evt_2", "evt_z"]

    # -- settled events (`record_settled`, optional) --------------------------------------

    def _settle(self, event_id: str, now: float) -> bool | None:
        """`record_settled` of the backend, or `None` when it has none (optional)."""
        record = getattr(self.storage, "record_settled", None)
        if not callable(record):
            return None
        event = NewEvent(event_id=event_id, source="stripe", type="customer.updated", payload=b"{}")
        settled: bool = record(event, owner="w1", outcome="ignored", detail="not ours", now=now)
        return settled

    def test_a_settled_event_is_recorded_done_with_its_attempt(self) -> None:
        if self._settle("evt_s", T0) is not True:
            return  # no record_settled: the ledger claims and finishes instead
        record = self._record("evt_s")
        assert record.status is EventStatus.DONE
        assert (record.attempts, record.outcome, record.detail) == (1, "ignored", "not ours")
        assert record.claimed_by is None
        assert record.lease_expires is None
        assert record.payload == b"{}"
        if self._keeps_history():
            assert self._attempts("evt_s") == [(1, "w1", "done", "ignored")]
        assert self._claim("evt_s", "w2", T0 + 1) is ClaimResult.DUPLICATE

    def test_settling_a_recorded_event_changes_nothing(self) -> None:
        assert self._claim("evt_s", "w1", T0) is ClaimResult.CLAIMED
        if self._settle("evt_s", T0 + 1) is None:
            return
        assert self._settle("evt_s", T0 + 1) is False
        assert self._record("evt_s").claimed_by == "w1"
        assert self._end("evt_s", "w1", EventStatus.FAILED, T0 + 2)
        assert self._settle("evt_s", T0 + 3) is False
        record = self._record("evt_s")
        assert (record.status, record.attempts) == (EventStatus.FAILED, 1)
