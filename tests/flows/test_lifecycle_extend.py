"""A product added to a subscription reaches its Zentitle2 group once, through `extend`.

`POST .../groups/{id}/extend` is not idempotent (each call adds the SKUs again) and its
answer is unknown (the emulator answers 204 by default, the group with
`extend_answer=200`), so the flow records the extend before sending it, looks at the
group after any uncertain answer, and waits while a sent extend may still land. The new
line gets its seats (base x quantity) and the group's term, read back, never taken from
the answer. Every test runs the provisioner on one fake clock, in both Stripe payload
generations.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.support import detail, kind
from tests.support.slow import FakeClock
from zentitle_stripe import OutcomeKind
from zentitle_stripe.flows.markers import CLEARED, DEFAULT_CREATE_WINDOW
from zentitle_stripe.testing import EmulatedWorld

pytestmark = pytest.mark.world(
    offerings={"PRO-1Y": {"seats": 1}, "ADDON-1Y": {"seats": 2}, "ENT-1Y": {"seats": 10}},
    generations=True,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world_options(clock: FakeClock) -> dict[str, Any]:
    return {"clock": clock}


def extends(world: EmulatedWorld) -> int:
    return sum(
        r.method == "POST" and r.path.endswith("/extend") for r in world.zentitle_emulator.requests
    )


def live(world: EmulatedWorld, subscription_id: str) -> dict[str, tuple[int | None, datetime]]:
    """`{sku: (seats, expiry)}` of the live entitlements; one entitlement per SKU."""
    found: dict[str, tuple[int | None, datetime]] = {}
    for e in world.active_entitlements(subscription_id):
        assert e.sku not in found, f"two live entitlements of {e.sku}"
        current = world.zentitle.get_entitlement(e.id)
        assert current.expiry_date is not None
        found[e.sku or ""] = (current.seat_count, current.expiry_date)
    return found


def provisioned(world: EmulatedWorld, *, addon: int = 3) -> tuple[str, dict[str, Any]]:
    """PRO-1Y x1 paid and provisioned; then ADDON-1Y x`addon` added: returns the
    subscription and `customer.subscription.updated` (not delivered)."""
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 200
    updated, _ = world.change_items(
        subscription_id, [(world.price("PRO-1Y"), 1), (world.price("ADDON-1Y"), addon)]
    )
    return subscription_id, updated


@pytest.mark.parametrize("answer", [204, 200, 201])
def test_an_added_product_is_added_once_with_its_seats_whatever_the_answer(
    world: EmulatedWorld, answer: int
) -> None:
    world.zentitle_emulator.extend_answer = answer  # type: ignore[assignment]
    subscription_id, updated = provisioned(world, addon=3)
    response = world.deliver(updated)
    assert kind(response) is OutcomeKind.UPDATED, detail(response)
    assert "added ADDON-1Y" in detail(response)
    state = live(world, subscription_id)
    assert {sku: seats for sku, (seats, _) in state.items()} == {"PRO-1Y": 1, "ADDON-1Y": 6}
    assert extends(world) == 1
    (group,) = world.groups(subscription_id)
    assert world.storage.get_customer_link(f"group-extend:{group.id}") == CLEARED
    for _ in range(2):  # duplicates change nothing and send nothing
        assert kind(world.deliver(updated)) is OutcomeKind.DUPLICATE
    assert extends(world) == 1


def test_added_mid_term_it_takes_the_groups_term_and_renews_with_it(
    world: EmulatedWorld,
) -> None:
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 200
    world.stripe_emulator.now += 100 * 86400
    world.sync_clocks()
    _, proration = world.change_items(
        subscription_id, [(world.price("PRO-1Y"), 1), (world.price("ADDON-1Y"), 1)]
    )
    (pro_seats, pro_expiry), *_ = live(world, subscription_id).values()
    response = world.deliver(proration)  # the proration invoice alone: adds, never extends
    assert kind(response) is OutcomeKind.UPDATED, detail(response)
    state = live(world, subscription_id)
    assert state["PRO-1Y"] == (pro_seats, pro_expiry)  # not extended
    assert state["ADDON-1Y"] == (2, pro_expiry)  # the group's term, not a year from today
    response = world.deliver(world.renew(subscription_id))
    assert kind(response) is OutcomeKind.RENEWED, detail(response)
    renewed = {sku: expiry for sku, (_, expiry) in live(world, subscription_id).items()}
    assert renewed == {"PRO-1Y": pro_expiry.replace(year=pro_expiry.year + 1)} | {
        "ADDON-1Y": pro_expiry.replace(year=pro_expiry.year + 1)
    }
    assert extends(world) == 1


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_every_delivery_order_of_payment_update_proration_and_renewal(
    world: EmulatedWorld, order: tuple[int, ...]
) -> None:
    """The first payment, the update adding a product, its proration invoice and the next
    renewal, delivered in any order, each redelivered until it is answered 200."""
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    updated, proration = world.change_items(
        subscription_id, [(world.price("PRO-1Y"), 2), (world.price("ADDON-1Y"), 2)]
    )
    renewal = world.renew(subscription_id)
    events = [paid, updated, proration, renewal]
    for index in order:
        world.deliver(events[index])
    for event in events:
        assert world.deliver(event).status == 200, detail(world.deliver(event))
    state = live(world, subscription_id)
    assert {sku: seats for sku, (seats, _) in state.items()} == {"PRO-1Y": 2, "ADDON-1Y": 4}
    expiries = {expiry for _, expiry in state.values()}
    assert len(expiries) == 1  # one term for every line
    assert min(expiries) >= world.zentitle_emulator.now + timedelta(days=300)  # renewed
    assert len(world.groups(subscription_id)) == 1
    assert extends(world) <= 1  # none when the group was first made from a later invoice


def test_a_missed_update_adds_the_product_at_the_next_renewal(world: EmulatedWorld) -> None:
    subscription_id, _ = provisioned(world, addon=2)  # the update and its invoice are lost
    response = world.deliver(world.renew(subscription_id))
    assert kind(response) is OutcomeKind.RENEWED, detail(response)
    state = live(world, subscription_id)
    assert state["ADDON-1Y"] == (4, state["PRO-1Y"][1])
    assert extends(world) == 1


def test_a_cross_grade_adds_the_new_product_before_disabling_the_old(
    world: EmulatedWorld,
) -> None:
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 200
    updated, _ = world.change_items(subscription_id, [(world.price("ENT-1Y"), 1)])
    world.zentitle_emulator.reset_requests()
    response = world.deliver(updated)
    assert kind(response) is OutcomeKind.UPDATED, detail(response)
    writes = [
        r.path.rsplit("/", 1)[-1]
        for r in world.zentitle_emulator.requests
        if r.method in ("POST", "PATCH")
    ]
    assert writes.index("extend") < writes.index("disable")
    assert set(live(world, subscription_id)) == {"ENT-1Y"}
    assert live(world, subscription_id)["ENT-1Y"][0] == 10


@pytest.mark.parametrize("fault", ["lost_response", "500_after", "503_after"])
def test_an_answer_lost_after_the_extend_landed_is_looked_up_not_repeated(
    world: EmulatedWorld, fault: str
) -> None:
    subscription_id, updated = provisioned(world)
    world.zentitle_emulator.inject_fault("POST", "/extend$", fault)
    response = world.deliver(updated)
    assert kind(response) is OutcomeKind.UPDATED, detail(response)  # the look found it
    assert live(world, subscription_id)["ADDON-1Y"][0] == 6
    assert extends(world) == 1
    assert kind(world.deliver(updated)) is OutcomeKind.DUPLICATE


@pytest.mark.parametrize("fault", ["503", "504", "timeout"])
def test_an_extend_that_did_not_land_is_waited_for_then_sent_again_once(
    world: EmulatedWorld, clock: FakeClock, fault: str
) -> None:
    subscription_id, updated = provisioned(world)
    world.zentitle_emulator.inject_fault("POST", "/extend$", fault)
    assert world.deliver(updated).status == 503
    assert "ADDON-1Y" not in live(world, subscription_id)
    clock.advance(10)
    waiting = world.deliver(updated)  # it may still land: wait, do not add again
    assert waiting.status == 503, detail(waiting)
    assert int(waiting.headers["Retry-After"]) == round(DEFAULT_CREATE_WINDOW - 10)
    assert "the entitlements added to group" in detail(waiting)
    assert extends(world) == 1
    clock.advance(DEFAULT_CREATE_WINDOW)
    response = world.deliver(updated)  # it did not land: add it, once
    assert kind(response) is OutcomeKind.UPDATED, detail(response)
    assert live(world, subscription_id)["ADDON-1Y"][0] == 6
    assert extends(world) == 2
    assert kind(world.deliver(updated)) is OutcomeKind.DUPLICATE


def test_a_late_extend_is_waited_for_and_then_found(world: EmulatedWorld, clock: FakeClock) -> None:
    subscription_id, updated = provisioned(world)
    emulator = world.zentitle_emulator
    emulator.inject_fault("POST", "/extend$", "late", delay=30)
    assert world.deliver(updated).status == 503
    clock.advance(15)
    assert world.deliver(updated).status == 503  # redelivered before Zentitle2 is done
    emulator.complete_late()
    clock.advance(DEFAULT_CREATE_WINDOW)
    response = world.deliver(updated)
    assert kind(response) is OutcomeKind.UPDATED, detail(response)
    assert "added ADDON-1Y" in detail(response)
    assert live(world, subscription_id)["ADDON-1Y"][0] == 6  # its seats, set after all
    assert extends(world) == 1


def test_a_429_is_sent_again_at_once(world: EmulatedWorld) -> None:
    subscription_id, updated = provisioned(world)
    world.zentitle_emulator.inject_fault("POST", "/extend$", "429")
    assert kind(world.deliver(updated)) is OutcomeKind.UPDATED
    assert extends(world) == 2  # the first was turned away before any work
    assert live(world, subscription_id)["ADDON-1Y"][0] == 6


def test_seats_that_fail_after_the_extend_are_set_later_without_a_second_extend(
    world: EmulatedWorld, clock: FakeClock
) -> None:
    subscription_id, updated = provisioned(world)
    world.zentitle_emulator.inject_fault("PATCH", r"/entitlements/[^/]+$", "500")
    assert world.deliver(updated).status == 503
    assert live(world, subscription_id)["ADDON-1Y"][0] == 2  # added, seats not yet set
    clock.advance(DEFAULT_CREATE_WINDOW)
    response = world.deliver(updated)
    assert kind(response) is OutcomeKind.UPDATED, detail(response)
    assert live(world, subscription_id)["ADDON-1Y"][0] == 6
    assert extends(world) == 1


def test_an_unknown_sku_is_a_replayable_422_and_nothing_is_sent(world: EmulatedWorld) -> None:
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 200
    updated, _ = world.change_items(
        subscription_id, [(world.price("PRO-1Y"), 1), (world.price("GHOST-1Y"), 1)]
    )
    response = world.deliver(updated)
    assert response.status == 422, detail(response)
    assert "'GHOST-1Y'" in detail(response)
    assert "replay" in detail(response)
    assert extends(world) == 0


def test_nothing_is_added_to_a_switched_off_licence_until_it_is_live_again(
    world: EmulatedWorld,
) -> None:
    subscription_id, updated = provisioned(world)
    entitlements = world.active_entitlements(subscription_id)
    for entitlement in entitlements:  # as a pause (or payment trouble) leaves it
        world.zentitle.disable_entitlement(entitlement.id)
    response = world.deliver(updated)
    assert kind(response) is OutcomeKind.IGNORED, detail(response)
    assert "switched off" in detail(response)
    assert "ADDON-1Y" in detail(response)
    assert extends(world) == 0
    for entitlement in entitlements:  # resumed
        world.zentitle.enable_entitlement(entitlement.id)
    response = world.deliver(world.renew(subscription_id))
    assert kind(response) is OutcomeKind.RENEWED, detail(response)
    assert live(world, subscription_id)["ADDON-1Y"][0] == 6
    assert extends(world) == 1


def test_slow_429s_then_a_redelivery_after_the_lease_add_the_product_once() -> None:
    """Zentitle2 answers the extend 429 with `Retry-After: 30` again and again: the first
    worker stops inside its lease (503), Stripe's redelivery after the lease adds it."""
    from tests.flows.test_fencing import SlowWorld

    slow = SlowWorld(FakeClock())
    world = slow.world
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 200
    updated, _ = world.change_items(
        subscription_id, [(world.price("PRO-1Y"), 1), (world.price("ADDON-1Y"), 1)]
    )
    world.zentitle_emulator.inject_fault("POST", "/extend$", "429", times=3)
    slow.deliver_at(slow.clock.elapsed() + 125, updated)
    first = world.deliver(updated)
    slow.clock.run_until(slow.clock.elapsed() + 125)
    assert first.status == 503, first.body
    (redelivery,) = slow.answers
    assert redelivery.outcome.kind is OutcomeKind.UPDATED, redelivery.body
    assert set(live(world, subscription_id)) == {"PRO-1Y", "ADDON-1Y"}
    slow.close()
