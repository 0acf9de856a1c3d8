"""Exactly once when the remote is slower than the lease (issue 13, case 1).

A worker whose claim and locks expired must not go on writing: Zentitle2 answering 429
with `Retry-After: 30` again and again, an answer that lands long after the request, a
body that trickles in. Every test runs on one fake clock (the provisioner's, the
Zentitle2 client's and its sleeps); the redelivery or the cancellation "meanwhile" runs
inside the first worker's sleep or request once the clock passes its moment. With the
default lease (120 s) the remote calls of one attempt get 90 s.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import make_world, subscribe_two
from tests.support.slow import FakeClock, SlowRemote
from zentitle_stripe import Outcome, OutcomeKind, Provisioner, WebhookResponse
from zentitle_stripe.exceptions import ConfigurationError, LeaseLost, TransientError
from zentitle_stripe.fencing import Fence
from zentitle_stripe.flows.locks import storage_lock
from zentitle_stripe.ledger import Ledger
from zentitle_stripe.storage import (
    ClaimResult,
    EventStatus,
    MemoryStorage,
    NewEvent,
    SubscriptionState,
)
from zentitle_stripe.testing import EmulatedWorld

LEASE = 120.0
GROUPS = r"/entitlements/groups$"


class SlowWorld:
    """An emulated world whose Zentitle2 answers `latency` seconds late on `clock`."""

    def __init__(self, clock: FakeClock, *, latency: float = 5.0) -> None:
        self.clock = clock
        self.world: EmulatedWorld = make_world(clock=clock)
        self.remote = SlowRemote(
            self.world.zentitle_emulator.transport(), clock, latency=latency, retry_after=30
        )
        self.client = self.world.zentitle_emulator.client(
            transport=self.remote, sleep=clock.sleep, clock=clock
        )
        processor: Any = self.world.provisioner.processor
        processor.zentitle = self.client  # the flows' client: slow, on the fake clock
        processor.sleep = clock.sleep  # lock waits pass fake time too
        self.answers: list[WebhookResponse] = []

    def deliver_at(self, seconds: float, event: dict[str, Any]) -> None:
        """Stripe delivers `event` once the clock passes `seconds` after the start."""
        self.clock.at(seconds, lambda: self.answers.append(self.world.deliver(event)))

    def state(self, subscription_id: str) -> Any:
        return self.world.storage.get_subscription(subscription_id)

    def close(self) -> None:
        self.client.close()
        self.world.close()


@pytest.fixture
def slow() -> Iterator[SlowWorld]:
    world = SlowWorld(FakeClock())
    yield world
    world.close()


def _paid_event_status(slow: SlowWorld, event: dict[str, Any]) -> EventStatus:
    record = slow.world.storage.get_event(event["id"])
    assert record is not None
    return record.status


# -- (a) 429 Retry-After: 30, three times, and Stripe redelivering at 125 s ------------------


def test_slow_429s_and_a_redelivery_after_the_lease_make_one_group(slow: SlowWorld) -> None:
    subscription_id, paid = subscribe_two(slow.world)
    slow.world.zentitle_emulator.inject_fault("POST", GROUPS, "429", times=3)
    slow.deliver_at(125, paid)  # Stripe's retry, once the first claim's lease is over

    first = slow.world.deliver(paid)
    first_took = slow.clock.elapsed()
    slow.clock.run_until(125)

    assert len(slow.world.groups(subscription_id)) == 1
    assert len(slow.world.zentitle_emulator.customers()) == 1
    # The first worker stopped within its time budget (no 30 s wait past it), inside
    # its lease, and asked Stripe to retry; the redelivery did the work.
    assert first.status == 503, first.body
    assert first_took <= 0.75 * LEASE
    (redelivery,) = slow.answers
    assert redelivery.status == 200, redelivery.body
    assert redelivery.outcome.kind is OutcomeKind.PROVISIONED
    (group,) = slow.world.groups(subscription_id)
    assert slow.world.activation_codes(subscription_id) == ",".join(group.activation_codes)
    assert _paid_event_status(slow, paid) is EventStatus.DONE
    assert slow.world.deliver(paid).outcome.kind is OutcomeKind.DUPLICATE


def test_a_redelivery_while_the_worker_still_holds_its_lease_is_turned_away(
    slow: SlowWorld,
) -> None:
    subscription_id, paid = subscribe_two(slow.world)
    slow.world.zentitle_emulator.inject_fault("POST", GROUPS, "429", times=1)
    slow.deliver_at(40, paid)  # during the first worker's 30 s wait

    first = slow.world.deliver(paid)

    assert first.status == 200, first.body
    (redelivery,) = slow.answers
    assert redelivery.status == 409  # in progress elsewhere: Stripe retries later
    assert len(slow.world.groups(subscription_id)) == 1


# -- (b) a cancellation arriving meanwhile -------------------------------------------------


def test_a_cancellation_during_slow_retries_is_kept(slow: SlowWorld) -> None:
    subscription_id, paid = subscribe_two(slow.world)
    slow.world.zentitle_emulator.inject_fault("POST", GROUPS, "429", times=3)
    slow.deliver_at(125, slow.world.cancel(subscription_id))

    first = slow.world.deliver(paid)
    slow.clock.run_until(125)
    again = slow.world.deliver(paid)  # Stripe's retry of the payment, after the cancellation

    state = slow.state(subscription_id)
    assert state.canceled  # never cleared by the first, stale worker
    assert slow.world.active_entitlements(subscription_id) == []
    assert len(slow.world.groups(subscription_id)) <= 1
    assert first.status == 503, first.body
    (cancellation,) = slow.answers
    assert cancellation.outcome.kind is OutcomeKind.REVOKED, cancellation.body
    assert again.outcome.kind is OutcomeKind.IGNORED, again.body


def test_a_create_answered_after_the_lease_writes_nothing_over_the_cancellation(
    slow: SlowWorld,
) -> None:
    """The group is created at once but its answer takes 150 s: meanwhile the lock's
    lease (renewed in storage right before the create) ran out and the cancellation
    took it, found the group and disabled it."""
    subscription_id, paid = subscribe_two(slow.world)
    slow.remote.answer_late("POST", GROUPS, 150)
    slow.deliver_at(140, slow.world.cancel(subscription_id))

    first = slow.world.deliver(paid)
    again = slow.world.deliver(paid)

    state = slow.state(subscription_id)
    assert state.canceled
    assert first.status == 503, first.body  # it stopped: lease lost, or out of time
    (cancellation,) = slow.answers
    assert cancellation.outcome.kind is OutcomeKind.REVOKED, cancellation.body
    assert again.outcome.kind is OutcomeKind.IGNORED, again.body
    (group,) = slow.world.groups(subscription_id)
    assert state.group_id == group.id
    assert slow.world.active_entitlements(subscription_id) == []
    assert len(slow.world.entitlements(subscription_id)) == 2  # there, but disabled
    assert not slow.world.activation_codes(subscription_id)  # no codes for a cancelled one


# -- (c) a body trickling in for longer than the lease -------------------------------------


def test_a_trickling_answer_is_cut_off_at_the_time_budget(slow: SlowWorld) -> None:
    """Every byte comes within the read timeout, the whole body would take 300 s."""
    subscription_id, paid = subscribe_two(slow.world)
    slow.remote.trickle("GET", r"/api/v1/offerings$", 300)

    response = slow.world.deliver(paid)

    # Cut at the 90 s budget (plus at most one 1 s chunk), well inside the lease.
    assert slow.clock.elapsed() <= 0.75 * LEASE + 2
    assert response.status == 503, response.body
    assert "time budget" in response.body.decode()
    assert slow.world.groups(subscription_id) == []
    assert _paid_event_status(slow, paid) is EventStatus.FAILED
    assert slow.world.deliver(paid).outcome.kind is OutcomeKind.PROVISIONED  # fast now


# -- the fence, the ledger and the locks on their own --------------------------------------


def _claimed(storage: MemoryStorage, clock: FakeClock, owner: str = "w1") -> NewEvent:
    event = NewEvent(event_id="evt_1", source="stripe", type="invoice.paid", payload=b"{}")
    claim = storage.claim_event(event, owner=owner, lease_seconds=LEASE, now=clock())
    assert claim.result is ClaimResult.CLAIMED
    return event


def _fence_on(storage: MemoryStorage, clock: FakeClock) -> Fence:
    fence = Fence(owner="w1", lease_seconds=LEASE, clock=clock, started=clock())
    fence.hold_claim(storage, "evt_1", "stripe", expires=clock() + LEASE)
    assert storage.acquire_lock("subscription:sub_1", owner="w1", lease_seconds=LEASE, now=clock())
    fence.hold_lock(storage, "subscription:sub_1", expires=clock() + LEASE)
    return fence


def _lease_ends(storage: MemoryStorage) -> float | None:
    record = storage.get_event("evt_1")
    assert record is not None
    return record.lease_expires


def test_the_fence_renews_a_lease_once_half_of_it_is_used() -> None:
    clock, storage = FakeClock(), MemoryStorage()
    _claimed(storage, clock)
    fence = _fence_on(storage, clock)
    clock.advance(50)
    fence.check()  # 70 s left of each lease: nothing to renew
    assert _lease_ends(storage) == clock.start + LEASE
    clock.advance(15)
    fence.check()
    assert _lease_ends(storage) == clock.now + LEASE
    # The renewed lock keeps another worker out past the first lease.
    assert not storage.acquire_lock(
        "subscription:sub_1", owner="w2", lease_seconds=LEASE, now=clock.start + LEASE + 1
    )


def test_the_fence_stops_a_worker_whose_claim_was_taken_over() -> None:
    clock, storage = FakeClock(), MemoryStorage()
    event = _claimed(storage, clock)
    fence = _fence_on(storage, clock)
    clock.advance(LEASE + 1)  # stalled past the lease
    successor = storage.claim_event(event, owner="w2", lease_seconds=LEASE, now=clock())
    assert successor.result is ClaimResult.CLAIMED
    with pytest.raises(LeaseLost, match="claim on stripe event evt_1"):
        fence.check()
    record = storage.get_event("evt_1")
    assert record is not None
    assert record.claimed_by == "w2"  # untouched


def test_a_backend_that_cannot_renew_is_trusted_until_its_lease_ends() -> None:
    class OldBackend:
        """A backend written before `extend_claim` and `extend_lock` existed."""

    clock = FakeClock()
    fence = Fence(owner="w1", lease_seconds=LEASE, clock=clock, started=clock())
    old: Any = OldBackend()
    fence.hold_lock(old, "subscription:sub_1", expires=clock() + LEASE)
    clock.advance(LEASE - 1)
    fence.check()  # cannot renew, but still ours
    clock.advance(2)
    with pytest.raises(LeaseLost, match="subscription:sub_1"):
        fence.check()


def test_an_outcome_finished_after_the_claim_was_lost_is_not_recorded() -> None:
    clock, storage = FakeClock(), MemoryStorage()
    ledger = Ledger(storage, lease_seconds=LEASE, config_error_status=422, clock=clock)
    event = NewEvent(event_id="evt_1", source="stripe", type="invoice.paid", payload=b"{}")

    def stalled(owner: str) -> Outcome:
        clock.advance(LEASE + 1)  # a stall no remote call saw (a paused process)
        taken = storage.claim_event(event, owner="w2", lease_seconds=LEASE, now=clock())
        assert taken.result is ClaimResult.CLAIMED
        return Outcome(OutcomeKind.PROVISIONED, "done, it thinks")

    response = ledger.run(event, stalled, started=0.0)

    assert response.status == 503
    assert b"another worker took it over" in response.body
    record = storage.get_event("evt_1")
    assert record is not None
    assert (record.status, record.claimed_by, record.outcome) == (
        EventStatus.PROCESSING,
        "w2",
        None,
    )


def test_a_time_budget_at_or_above_the_lease_is_refused() -> None:
    with pytest.raises(ValueError, match="below the lease"):
        Ledger(
            MemoryStorage(), lease_seconds=60, config_error_status=422, clock=time.time, budget=60
        )


def test_a_lock_wait_on_a_fake_sleep_ends_after_lock_wait_fake_seconds() -> None:
    clock, storage = FakeClock(), MemoryStorage()
    assert storage.acquire_lock(
        "subscription:sub_1", owner="other", lease_seconds=LEASE, now=clock()
    )
    started = time.monotonic()
    lock = storage_lock(
        storage,
        "subscription:sub_1",
        "w1",
        lease_seconds=LEASE,
        lock_wait=10.0,
        clock=clock,
        sleep=clock.sleep,
    )
    with pytest.raises(TransientError, match="another event holds the lock"), lock:
        pass
    assert 10.0 <= clock.elapsed() < 10.5
    assert time.monotonic() - started < 1.0  # no real spinning for the whole wait


# -- compare-and-set state writes ---------------------------------------------------------


class RacingStorage(MemoryStorage):
    """Another writer stores the subscription right before this worker's next write."""

    def __init__(self) -> None:
        super().__init__()
        self.race_next = False

    def put_subscription(self, state: SubscriptionState) -> None:
        if self.race_next:
            self.race_next = False
            current = self.get_subscription(state.subscription_id)
            super().put_subscription(current or SubscriptionState(state.subscription_id))
        super().put_subscription(state)


@pytest.mark.world(generations=True)
def test_a_stale_state_write_is_refused_loudly_and_the_retry_completes(
    api_version: str,
) -> None:
    storage = RacingStorage()
    world = make_world(api_version=api_version, storage=storage)
    try:
        subscription_id, paid = subscribe_two(world)
        storage.race_next = True
        response = world.deliver(paid)
        assert response.status == 503, response.body
        assert b"stale write was refused" in response.body
        assert world.deliver(paid).outcome.kind is OutcomeKind.PROVISIONED
        (group,) = world.groups(subscription_id)
        state = storage.get_subscription(subscription_id)
        assert state is not None
        assert (state.group_id, state.codes_written) == (group.id, True)
    finally:
        world.close()


def test_a_state_stored_before_versions_reads_as_stored_once() -> None:
    legacy = '{"subscription_id":"sub_1","canceled":true,"group_id":"egr_1"}'
    state = SubscriptionState.from_json(legacy)
    assert state.version == 1
    assert state == SubscriptionState("sub_1", group_id="egr_1", canceled=True)  # no version
    assert SubscriptionState.from_json(state.stored().to_json()).version == 2


def test_a_strict_check_asks_storage_even_with_most_of_the_lease_left() -> None:
    """A worker on a host whose clock runs behind (or paused between its last look and
    the write) still thinks it has time; before a create or renew it must not trust that."""
    clock, storage = FakeClock(), MemoryStorage()
    event = _claimed(storage, clock)
    fence = _fence_on(storage, clock)
    clock.advance(10)
    # Another worker, its clock a lease ahead, takes the claim over.
    successor = storage.claim_event(event, owner="w2", lease_seconds=LEASE, now=clock() + LEASE + 1)
    assert successor.result is ClaimResult.CLAIMED
    fence.check()  # the local view: 110 s left, no storage call, no error
    with pytest.raises(LeaseLost, match="claim on stripe event evt_1"):
        fence.check(strict=True)


def test_a_strict_check_renews_every_lease_it_still_holds() -> None:
    clock, storage = FakeClock(), MemoryStorage()
    _claimed(storage, clock)
    fence = _fence_on(storage, clock)
    clock.advance(10)
    fence.check(strict=True)
    assert _lease_ends(storage) == clock.now + LEASE


@pytest.mark.parametrize("lease", [float("nan"), float("inf"), 0.0, -1.0])
def test_a_lease_that_is_not_a_positive_finite_number_is_refused(lease: float) -> None:
    """`nan` passes every lease comparison, so it would switch the fence off silently."""
    with pytest.raises(ConfigurationError, match="lease_seconds"):
        Provisioner(storage=MemoryStorage(), webhook_secrets=["whsec_test"], lease_seconds=lease)


def test_claim_owners_are_unique_in_a_process_and_in_a_forked_one() -> None:
    # Numbered, not drawn per event: unique by the counter within a process, and a
    # forked worker (the `worker` command's processes) gets its own pid and start.
    from zentitle_stripe.ledger import new_owner

    owners = [new_owner() for _ in range(1000)]
    assert len(set(owners)) == 1000
    host, pid, number = owners[0].rsplit("/", 2)
    assert (pid, len(number)) == (str(os.getpid()), 12)
    read, write = os.pipe()
    with warnings.catch_warnings():  # 3.12+: "multi-threaded, fork() may deadlock"
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write, new_owner().encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    theirs = os.read(read, 200).decode()
    os.close(read)
    assert os.WEXITSTATUS(status) == 0
    assert theirs.rsplit("/", 2)[:2] == [host, str(child)]
    assert theirs not in owners
