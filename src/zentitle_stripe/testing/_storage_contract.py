"""The test suite every [`Storage`][zentitle_stripe.storage.Storage] backend must pass.

Subclass it in a pytest module and say how to make a fresh, empty backend:

```python
class TestMyStorage(StorageContract):
    def make_storage(self) -> Storage:
        return MyStorage(...)
```

It needs no pytest import (pytest finds `test_*` methods and calls
`setup_method`/`teardown_method`), so importing `zentitle_stripe.testing` never
requires pytest.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import attrs

from ..exceptions import StateConflict
from ..storage import (
    ClaimResult,
    EventStatus,
    NewEvent,
    Storage,
    SubscriptionState,
)
from ._history_contract import HistoryContract
from ._hook_contract import HookContract

__all__ = ["StorageContract"]

NOW = 1_800_000_000.0
LEASE = 30.0


def _event(
    event_id: str = "evt_1", source: str = "stripe", payload: bytes = b'{"id":1}'
) -> NewEvent:
    return NewEvent(
        event_id=event_id,
        source=source,
        type="invoice.paid",
        payload=payload,
        created=1_799_999_000,
        api_version="2026-10-28.endive",
    )


@contextmanager
def pytest_raises(error: type[Exception], match: str | None = None) -> Iterator[None]:
    """`pytest.raises`, without importing pytest (see the module docstring)."""
    try:
        yield
    except error as exc:
        if match is not None and not re.search(match, str(exc)):
            raise AssertionError(f"{exc} does not match {match!r}") from exc
        return
    raise AssertionError(f"{error.__name__} was not raised")


class _LeaseAndStateRules:
    """The rules for renewing leases and for compare-and-set state writes; a part of
    [`StorageContract`][zentitle_stripe.testing.StorageContract], which runs them."""

    storage: Storage

    def _finish(
        self, event_id: str = "evt_1", owner: str = "w1", status: EventStatus = EventStatus.DONE
    ) -> bool:
        raise NotImplementedError  # StorageContract's

    # -- subscription state ---------------------------------------------------------------

    def _version(self, subscription_id: str) -> int | None:
        state = self.storage.get_subscription(subscription_id)
        return None if state is None else state.version

    def test_subscription_write_is_compare_and_set(self) -> None:
        first = SubscriptionState("sub_1", group_id="egr_1")
        self.storage.put_subscription(first)
        with pytest_raises(StateConflict):  # a second "first write": someone was faster
            self.storage.put_subscription(SubscriptionState("sub_1", group_id="egr_2"))
        read = self.storage.get_subscription("sub_1")
        assert read is not None
        self.storage.put_subscription(attrs.evolve(read, codes_written=True))
        with pytest_raises(StateConflict):  # `read` is stale now
            self.storage.put_subscription(attrs.evolve(read, group_id="egr_3"))
        after = self.storage.get_subscription("sub_1")
        assert after == SubscriptionState("sub_1", group_id="egr_1", codes_written=True)
        assert self._version("sub_1") == 2

    def test_only_one_of_many_concurrent_state_writers_wins(self) -> None:
        self.storage.put_subscription(SubscriptionState("sub_1"))
        read = self.storage.get_subscription("sub_1")
        assert read is not None
        barrier = threading.Barrier(8)

        def write(i: int) -> bool:
            barrier.wait()
            try:
                self.storage.put_subscription(attrs.evolve(read, group_id=f"egr_{i}"))
            except StateConflict:
                return False
            return True

        with ThreadPoolExecutor(8) as pool:
            won = list(pool.map(write, range(8)))
        assert won.count(True) == 1
        stored = self.storage.get_subscription("sub_1")
        assert stored is not None
        assert stored.group_id == f"egr_{won.index(True)}"
        assert stored.version == 2

    def test_a_recorded_cancellation_is_never_cleared(self) -> None:
        self.storage.put_subscription(SubscriptionState("sub_1"))
        stale = self.storage.get_subscription("sub_1")
        assert stale is not None
        self.storage.put_subscription(attrs.evolve(stale, canceled=True))
        with pytest_raises(StateConflict):  # a stale writer that never saw it
            self.storage.put_subscription(attrs.evolve(stale, group_id="egr_1"))
        current = self.storage.get_subscription("sub_1")
        assert current is not None
        with pytest_raises(StateConflict, match="cancel"):  # even a current one
            self.storage.put_subscription(attrs.evolve(current, canceled=False))
        self.storage.put_subscription(attrs.evolve(current, group_id="egr_1"))
        kept = self.storage.get_subscription("sub_1")
        assert kept is not None
        assert kept.canceled
        assert kept.group_id == "egr_1"

    # -- renewing leases ----------------------------------------------------------------

    def _extend_claim(self, owner: str, now: float) -> bool:
        return self.storage.extend_claim(
            "evt_1", "stripe", owner=owner, lease_seconds=LEASE, now=now
        )

    def test_claim_is_extended_only_while_its_owner_holds_it(self) -> None:
        assert not self._extend_claim("w1", NOW)  # nothing claimed yet
        self.storage.claim_event(_event(), owner="w1", lease_seconds=LEASE, now=NOW)
        assert not self._extend_claim("intruder", NOW + 1)
        assert self._extend_claim("w1", NOW + 20)
        record = self.storage.get_event("evt_1")
        assert record is not None
        assert record.lease_expires == NOW + 20 + LEASE
        busy = self.storage.claim_event(_event(), owner="w2", lease_seconds=LEASE, now=NOW + 40)
        assert busy.result is ClaimResult.IN_PROGRESS  # the renewed lease keeps w2 out
        later = NOW + 20 + LEASE + 1
        taken = self.storage.claim_event(_event(), owner="w2", lease_seconds=LEASE, now=later)
        assert taken.result is ClaimResult.CLAIMED
        assert not self._extend_claim("w1", later)  # w1 stalled: it lost the claim
        record = self.storage.get_event("evt_1")
        assert record is not None
        assert (record.claimed_by, record.lease_expires) == ("w2", later + LEASE)
        assert self._finish(owner="w2")
        assert not self._extend_claim("w2", later + 1)  # finished: nothing to extend

    def test_lock_is_extended_only_while_its_owner_holds_it(self) -> None:
        lock = "subscription:sub_1"
        assert not self.storage.extend_lock(lock, owner="a", lease_seconds=10, now=NOW)
        assert self.storage.acquire_lock(lock, owner="a", lease_seconds=10, now=NOW)
        assert not self.storage.extend_lock(lock, owner="b", lease_seconds=10, now=NOW + 1)
        assert self.storage.extend_lock(lock, owner="a", lease_seconds=10, now=NOW + 8)
        assert not self.storage.acquire_lock(lock, owner="b", lease_seconds=10, now=NOW + 12)
        assert self.storage.acquire_lock(lock, owner="b", lease_seconds=10, now=NOW + 19)
        assert not self.storage.extend_lock(lock, owner="a", lease_seconds=10, now=NOW + 19)
        assert not self.storage.acquire_lock(lock, owner="a", lease_seconds=10, now=NOW + 20)
        self.storage.release_lock(lock, owner="b")
        assert not self.storage.extend_lock(lock, owner="b", lease_seconds=10, now=NOW + 21)


class StorageContract(_LeaseAndStateRules, HistoryContract, HookContract):
    """Behaviour the provisioner relies on; override
    [`make_storage`][zentitle_stripe.testing.StorageContract.make_storage]."""

    storage: Storage

    def make_storage(self) -> Storage:
        """Return a new, empty backend."""
        raise NotImplementedError

    def setup_method(self, method: object = None) -> None:
        self.storage = self.make_storage()

    def teardown_method(self, method: object = None) -> None:
        self.storage.close()

    def _finish(
        self, event_id: str = "evt_1", owner: str = "w1", status: EventStatus = EventStatus.DONE
    ) -> bool:
        return self.storage.finish_event(
            event_id,
            "stripe",
            owner=owner,
            status=status,
            outcome="provisioned" if status is EventStatus.DONE else "failed",
            detail="detail text",
            error=None if status is EventStatus.DONE else "boom",
            now=NOW + 1,
        )

    # -- claims -------------------------------------------------------------------------

    def test_new_event_is_recorded_and_claimed(self) -> None:
        claim = self.storage.claim_event(_event(), owner="w1", lease_seconds=LEASE, now=NOW)
        assert claim.result is ClaimResult.CLAIMED
        record = self.storage.get_event("evt_1")
        assert record is not None
        assert record.status is EventStatus.PROCESSING
        assert record.attempts == 1
        assert record.claimed_by == "w1"
        assert record.type == "invoice.paid"
        assert record.created == 1_799_999_000
        assert record.api_version == "2026-10-28.endive"
        assert record.payload == b'{"id":1}'
        assert record.received_at == NOW

    def test_payload_bytes_survive_exactly(self) -> None:
        raw = bytes(range(256)) + "é\u2028".encode()
        self.storage.claim_event(_event(payload=raw), owner="w1", lease_seconds=LEASE, now=NOW)
        record = self.storage.get_event("evt_1")
        assert record is not None
        assert record.payload == raw

    def test_finished_event_is_a_duplicate(self) -> None:
        self.storage.claim_event(_event(), owner="w1", lease_seconds=LEASE, now=NOW)
        assert self._finish()
        claim = self.storage.claim_event(_event(), owner="w2", lease_seconds=LEASE, now=NOW + 2)
        assert claim.result is ClaimResult.DUPLICATE
        assert claim.record.status is EventStatus.DONE
        assert claim.record.outcome == "provisioned"
        assert claim.record.detail == "detail text"
        assert claim.record.attempts == 1

    def test_event_held_by_another_worker_is_in_progress(self) -> None:
        self.storage.claim_event(_event(), owner="w1", lease_seconds=LEASE, now=NOW)
        claim = self.storage.claim_event(_event(), owner="w2", lease_seconds=LEASE, now=NOW + 5)
        assert claim.result is ClaimResult.IN_PROGRESS
        record = self.storage.get_event("evt_1")
        assert record is not None
        assert record.claimed_by == "w1"

    def test_expired_lease_is_taken_over_and_old_owner_cannot_finish(self) -> None:
        self.storage.claim_event(_event(), owner="w1", lease_seconds=LEASE, now=NOW)
        later = NOW + LEASE + 1
        claim = self.storage.claim_event(_event(), owner="w2", lease_seconds=LEASE, now=later)
        assert claim.result is ClaimResult.CLAIMED
        assert claim.record.attempts == 2
        assert claim.record.claimed_by == "w2"
        assert not self._finish(owner="w1")
        assert self._finish(owner="w2")
        record = self.storage.get_event("evt_1")
        assert record is not None
        assert record.status is EventStatus.DONE

    def test_failed_event_is_claimed_again_with_its_error_kept_until_then(self) -> None:
        self.storage.claim_event(_event(), owner="w1", lease_seconds=LEASE, now=NOW)
        assert self._finish(status=EventStatus.FAILED)
        failed = self.storage.get_event("evt_1")
        assert failed is not None
        assert failed.status is EventStatus.FAILED
        assert failed.last_error == "boom"
        assert failed.claimed_by is None
        claim = self.storage.claim_event(_event(), owner="w2", lease_seconds=LEASE, now=NOW + 2)
        assert claim.result is ClaimResult.CLAIMED
        assert claim.record.attempts == 2

    def test_reclaim_done_lets_replay_run_a_finished_event(self) -> None:
        self.storage.claim_event(_event(), owner="w1", lease_seconds=LEASE, now=NOW)
        self._finish()
        claim = self.storage.claim_event(
            _event(), owner="replay", lease_seconds=LEASE, now=NOW + 2, reclaim_done=True
        )
        assert claim.result is ClaimResult.CLAIMED
        assert claim.record.attempts == 2

    def test_redelivery_never_overwrites_the_stored_payload(self) -> None:
        self.storage.claim_event(_event(payload=b"first"), owner="w1", lease_seconds=LEASE, now=NOW)
        self._finish(status=EventStatus.FAILED)
        self.storage.claim_event(_event(payload=b"second"), owner="w2", lease_seconds=1, now=NOW)
        record = self.storage.get_event("evt_1")
        assert record is not None
        assert record.payload == b"first"

    def test_finish_without_a_claim_changes_nothing(self) -> None:
        assert not self._finish(event_id="evt_unknown")
        self.storage.claim_event(_event(), owner="w1", lease_seconds=LEASE, now=NOW)
        assert not self._finish(owner="intruder")
        self._finish()
        assert not self._finish()  # already finished

    def test_same_id_from_two_sources_are_two_events(self) -> None:
        self.storage.claim_event(_event(), owner="w1", lease_seconds=LEASE, now=NOW)
        claim = self.storage.claim_event(
            _event(source="zentitle"), owner="w1", lease_seconds=LEASE, now=NOW
        )
        assert claim.result is ClaimResult.CLAIMED
        assert self.storage.get_event("evt_1", "zentitle") is not None
        assert self.storage.get_event("evt_1", "other") is None

    def test_only_one_of_many_concurrent_claims_wins(self) -> None:
        barrier = threading.Barrier(8)

        def claim(i: int) -> ClaimResult:
            barrier.wait()
            return self.storage.claim_event(
                _event(), owner=f"w{i}", lease_seconds=LEASE, now=NOW
            ).result

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(claim, range(8)))
        assert results.count(ClaimResult.CLAIMED) == 1
        assert results.count(ClaimResult.IN_PROGRESS) == 7

    # -- listing ------------------------------------------------------------------------

    def test_list_events_filters_orders_and_limits(self) -> None:
        for i in range(5):
            self.storage.claim_event(
                _event(f"evt_{i}"), owner="w", lease_seconds=LEASE, now=NOW + i
            )
        self._finish("evt_1", owner="w", status=EventStatus.FAILED)
        self._finish("evt_3", owner="w", status=EventStatus.FAILED)
        self.storage.claim_event(
            _event("evt_z", source="zentitle"), owner="w", lease_seconds=LEASE, now=NOW + 9
        )
        ids = [r.event_id for r in self.storage.list_events()]
        assert ids == ["evt_z", "evt_4", "evt_3", "evt_2", "evt_1", "evt_0"]
        failed = self.storage.list_events(status=EventStatus.FAILED)
        assert [r.event_id for r in failed] == ["evt_3", "evt_1"]
        assert [r.event_id for r in self.storage.list_events(limit=2)] == ["evt_z", "evt_4"]
        assert [r.event_id for r in self.storage.list_events(source="zentitle")] == ["evt_z"]
        assert self.storage.get_event("nope") is None

    # -- subscriptions and customers -----------------------------------------------------

    def test_subscription_state_round_trips_and_is_replaced(self) -> None:
        assert self.storage.get_subscription("sub_1") is None
        state = SubscriptionState(
            subscription_id="sub_1",
            zentitle_customer_id="cust_1",
            group_id="egr_1",
            activation_codes=("AAAA-BBBB", "CCCC-DDDD"),
            codes_written=True,
            canceled=False,
            renewed_invoices=("in_1", "in_2"),
        )
        self.storage.put_subscription(state)
        stored = self.storage.get_subscription("sub_1")
        assert stored == state
        assert stored is not None
        assert stored.version == 1
        canceled = attrs.evolve(SubscriptionState("sub_1", canceled=True), version=1)
        self.storage.put_subscription(canceled)
        assert self.storage.get_subscription("sub_1") == canceled
        assert self._version("sub_1") == 2

    def test_customer_links(self) -> None:
        assert self.storage.get_customer_link("cus_1") is None
        self.storage.put_customer_link("cus_1", "cust_a")
        self.storage.put_customer_link("cus_2", "cust_b")
        self.storage.put_customer_link("cus_1", "cust_c")
        assert self.storage.get_customer_link("cus_1") == "cust_c"
        assert self.storage.get_customer_link("cus_2") == "cust_b"

    # -- locks ----------------------------------------------------------------------------

    def test_lock_excludes_others_until_released_or_expired(self) -> None:
        lock = "subscription:sub_1"
        assert self.storage.acquire_lock(lock, owner="a", lease_seconds=10, now=NOW)
        assert not self.storage.acquire_lock(lock, owner="b", lease_seconds=10, now=NOW + 1)
        assert self.storage.acquire_lock(lock, owner="a", lease_seconds=10, now=NOW + 1)
        self.storage.release_lock(lock, owner="b")  # not b's: no effect
        assert not self.storage.acquire_lock(lock, owner="b", lease_seconds=10, now=NOW + 2)
        self.storage.release_lock(lock, owner="a")
        assert self.storage.acquire_lock(lock, owner="b", lease_seconds=10, now=NOW + 3)
        assert self.storage.acquire_lock(lock, owner="c", lease_seconds=10, now=NOW + 14)
        assert self.storage.acquire_lock("subscription:sub_2", owner="a", lease_seconds=10, now=NOW)

    def test_only_one_of_many_concurrent_lockers_wins(self) -> None:
        barrier = threading.Barrier(8)

        def take(i: int) -> bool:
            barrier.wait()
            return self.storage.acquire_lock("l", owner=f"w{i}", lease_seconds=10, now=NOW)

        with ThreadPoolExecutor(8) as pool:
            assert sum(pool.map(take, range(8))) == 1

    def test_ping(self) -> None:
        self.storage.ping()
