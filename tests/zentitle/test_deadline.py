"""Both clients inside a processing attempt: the fence's deadline bounds every call.

The Zentitle2 client never sleeps a `Retry-After` or a backoff past the deadline, sends
nothing after it, cuts each request's timeouts to the time left and a body still arriving
at it; the Stripe gateway does the same. Outside an attempt (no fence) nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.slow import FakeClock, SlowRemote
from zentitle_stripe.exceptions import LeaseLost, StripeAPIError, ZentitleAPIError
from zentitle_stripe.fencing import Fence, budgeted_timeout, current_fence
from zentitle_stripe.storage import MemoryStorage
from zentitle_stripe.stripe_api import StripeGateway
from zentitle_stripe.testing import StripeEmulator, ZentitleEmulator
from zentitle_stripe.zentitle import ZentitleClient

LEASE = 120.0
BUDGET = 90.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_000_000.0)


@pytest.fixture
def emulator() -> ZentitleEmulator:
    emulator = ZentitleEmulator()
    product = emulator.add_product("Pro")
    plan = emulator.add_plan(product, duration=("year", 1))
    emulator.add_offering(sku="PRO-1Y", product_id=product, plan_id=plan, seat_count=1)
    return emulator


@pytest.fixture
def remote(emulator: ZentitleEmulator, clock: FakeClock) -> SlowRemote:
    return SlowRemote(emulator.transport(), clock, latency=1.0, retry_after=30)


@pytest.fixture
def client(
    emulator: ZentitleEmulator, remote: SlowRemote, clock: FakeClock
) -> Iterator[ZentitleClient]:
    client = emulator.client(transport=remote, sleep=clock.sleep, clock=clock, timeout=2.0)
    yield client
    client.close()


def _fence(clock: FakeClock) -> Fence:
    return Fence(owner="w1", lease_seconds=LEASE, clock=clock, started=clock())


def test_a_trickling_body_is_cut_off_at_the_deadline(
    client: ZentitleClient, remote: SlowRemote, clock: FakeClock
) -> None:
    """Each byte within the 2 s read timeout, the whole body 300 s: cut at 90 s."""
    remote.trickle("GET", r"/offerings$", 300)
    with _fence(clock).active(), pytest.raises(ZentitleAPIError) as info:
        client.list_offerings()
    assert info.value.transient
    assert "time budget" in str(info.value)
    assert clock.elapsed() <= BUDGET + 2.0  # at most one read timeout past the deadline


def test_without_a_fence_a_trickling_body_is_read_whole(
    client: ZentitleClient, remote: SlowRemote, clock: FakeClock
) -> None:
    remote.trickle("GET", r"/offerings$", 300)
    assert [o.sku for o in client.list_offerings()] == ["PRO-1Y"]
    assert clock.elapsed() >= 300  # what an attempt's budget prevents


def test_a_retry_after_longer_than_the_time_left_is_not_slept(
    client: ZentitleClient, emulator: ZentitleEmulator, clock: FakeClock
) -> None:
    emulator.inject_fault("POST", r"/customers$", "429", times=4)
    fence = _fence(clock)
    clock.advance(60)  # 30 s of the budget left: one attempt (1 s), then no time to wait
    with fence.active(), pytest.raises(ZentitleAPIError) as info:
        client.create_customer(name="Acme")
    assert fence.remaining() > 0  # gave up at once instead of waiting 30 s
    assert clock.elapsed() < BUDGET
    error = info.value
    assert (error.status, error.transient, error.may_have_landed) == (429, True, False)
    assert error.retry_after == 30
    assert "asking to wait 30 s" in error.message
    assert "time budget" in error.message
    assert emulator.customers() == []


def test_nothing_is_sent_once_the_deadline_has_passed(
    client: ZentitleClient, emulator: ZentitleEmulator, clock: FakeClock
) -> None:
    client.list_offerings()  # token and offerings fetched
    before = emulator.count()
    fence = _fence(clock)
    clock.advance(BUDGET + 1)
    with fence.active(), pytest.raises(ZentitleAPIError, match="was not sent") as info:
        client.create_customer(name="Acme")
    assert info.value.transient
    assert not info.value.may_have_landed
    assert emulator.count() == before


def test_a_write_after_the_lock_was_taken_over_raises_lease_lost(
    client: ZentitleClient, emulator: ZentitleEmulator, clock: FakeClock
) -> None:
    storage = MemoryStorage()
    fence = _fence(clock)
    assert storage.acquire_lock("subscription:sub_1", owner="w1", lease_seconds=LEASE, now=clock())
    fence.hold_lock(storage, "subscription:sub_1", expires=clock() + LEASE)
    clock.advance(LEASE + 5)  # stalled past the lease; another worker took the lock
    assert storage.acquire_lock("subscription:sub_1", owner="w2", lease_seconds=LEASE, now=clock())
    with fence.active(), pytest.raises(LeaseLost, match="subscription:sub_1"):
        client.create_customer(name="Acme")
    assert emulator.customers() == []


def test_timeouts_are_cut_to_the_time_left(clock: FakeClock) -> None:
    fence = _fence(clock)
    clock.advance(BUDGET - 1.5)
    cut = budgeted_timeout(httpx.Timeout(10.0, connect=0.5), fence)
    assert (cut.connect, cut.read, cut.write, cut.pool) == (0.5, 1.5, 1.5, 1.5)
    assert budgeted_timeout(httpx.Timeout(10.0), None) == httpx.Timeout(10.0)
    assert current_fence() is None  # only inside `active()`


# -- the Stripe gateway ---------------------------------------------------------------------


@pytest.fixture
def stripe_emulator() -> StripeEmulator:
    return StripeEmulator()


@pytest.fixture
def gateway(stripe_emulator: StripeEmulator) -> Iterator[StripeGateway]:
    gateway = StripeGateway(
        stripe_emulator.api_key,
        api_base="http://stripe.emulator",
        max_network_retries=2,
        http_transport=stripe_emulator.transport(),
    )
    yield gateway
    gateway.close()


def test_stripe_calls_are_not_sent_after_the_deadline(
    gateway: StripeGateway, stripe_emulator: StripeEmulator, clock: FakeClock
) -> None:
    customer = stripe_emulator.create_customer(email="a@example.com", name="A")
    fence = _fence(clock)
    with fence.active():
        assert gateway.retrieve_customer(customer).id == customer  # in time: as before
        before = stripe_emulator.count()
        clock.advance(BUDGET)
        with pytest.raises(StripeAPIError) as info:
            gateway.update_customer_metadata(customer, {"k": "v"})
    assert info.value.transient
    assert stripe_emulator.count() == before  # not sent, and not retried either
    assert stripe_emulator.customer(customer).get("metadata", {}).get("k") is None


def test_a_stripe_write_after_the_claim_was_lost_raises_lease_lost(
    gateway: StripeGateway, stripe_emulator: StripeEmulator, clock: FakeClock
) -> None:
    customer = stripe_emulator.create_customer(email="a@example.com", name="A")
    storage = MemoryStorage()
    fence = _fence(clock)
    assert storage.acquire_lock("customer:x", owner="w2", lease_seconds=LEASE, now=clock())
    fence.hold_lock(storage, "customer:x", expires=clock() + 1)  # half used, and not ours
    with fence.active(), pytest.raises(LeaseLost):
        gateway.update_customer_metadata(customer, {"k": "v"})
    assert stripe_emulator.customer(customer).get("metadata", {}).get("k") is None
