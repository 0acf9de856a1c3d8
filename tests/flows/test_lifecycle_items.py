"""Items and quantity changes reach Zentitle2: on the update, on the proration invoice and
on every renewal, in either delivery order, read from Stripe's current state."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.support import detail
from zentitle_stripe import OutcomeKind
from zentitle_stripe.testing import EmulatedWorld

pytestmark = pytest.mark.world(offerings={"PRO-1Y": {"seats": 1}, "ADDON-1Y": {}}, generations=True)


def seats(world: EmulatedWorld, subscription_id: str) -> dict[str, int | None]:
    return {
        e.sku or "": world.zentitle.get_entitlement(e.id).seat_count
        for e in world.active_entitlements(subscription_id)
    }


def started(world: EmulatedWorld, *skus: str) -> tuple[str, dict[str, Any]]:
    return world.subscribe(world.customer(), [(world.price(s), 1) for s in skus])


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_seats_follow_a_quantity_change_in_every_delivery_order(
    world: EmulatedWorld, order: tuple[int, ...]
) -> None:
    """First payment, the update and its proration invoice, delivered in any order."""
    subscription_id, paid = started(world, "PRO-1Y")
    updated, proration = world.change_items(subscription_id, [(world.price("PRO-1Y"), 5)])
    events = [paid, updated, proration]
    for index in order:
        world.deliver(events[index])
    for event in events:  # Stripe retries whatever was answered 503
        assert world.deliver(event).status == 200
    assert seats(world, subscription_id) == {"PRO-1Y": 5}
    assert len(world.groups(subscription_id)) == 1


def test_a_proration_invoice_sets_seats_and_does_not_extend(world: EmulatedWorld) -> None:
    subscription_id, paid = started(world, "PRO-1Y")
    assert world.deliver(paid).status == 200
    (before,) = (
        world.zentitle.get_entitlement(e.id).expiry_date
        for e in world.active_entitlements(subscription_id)
    )
    _, proration = world.change_items(subscription_id, [(world.price("PRO-1Y"), 5)])
    response = world.deliver(proration)
    assert response.outcome.kind is OutcomeKind.UPDATED, detail(response)
    assert seats(world, subscription_id) == {"PRO-1Y": 5}
    (after,) = (
        world.zentitle.get_entitlement(e.id).expiry_date
        for e in world.active_entitlements(subscription_id)
    )
    assert after == before
    assert world.deliver(proration).outcome.kind is OutcomeKind.DUPLICATE


def test_a_missed_update_heals_at_the_next_renewal(world: EmulatedWorld) -> None:
    subscription_id, paid = started(world, "PRO-1Y")
    assert world.deliver(paid).status == 200
    world.change_items(subscription_id, [(world.price("PRO-1Y"), 3)])  # both events lost
    response = world.deliver(world.renew(subscription_id))
    assert response.outcome.kind is OutcomeKind.RENEWED, detail(response)
    assert seats(world, subscription_id) == {"PRO-1Y": 3}


def test_a_renewal_before_the_update_that_preceded_it(world: EmulatedWorld) -> None:
    subscription_id, paid = started(world, "PRO-1Y")
    assert world.deliver(paid).status == 200
    updated, _ = world.change_items(subscription_id, [(world.price("PRO-1Y"), 4)])
    renewal = world.renew(subscription_id)
    assert world.deliver(renewal).outcome.kind is OutcomeKind.RENEWED
    assert world.deliver(updated).outcome.kind is OutcomeKind.DUPLICATE
    assert seats(world, subscription_id) == {"PRO-1Y": 4}


def test_a_removed_product_is_disabled_and_a_duplicate_changes_nothing(
    world: EmulatedWorld,
) -> None:
    subscription_id, paid = started(world, "PRO-1Y", "ADDON-1Y")
    assert world.deliver(paid).status == 200
    updated, _ = world.change_items(subscription_id, [(world.price("PRO-1Y"), 1)])
    response = world.deliver(updated)
    assert response.outcome.kind is OutcomeKind.UPDATED, detail(response)
    assert set(seats(world, subscription_id)) == {"PRO-1Y"}
    assert world.deliver(updated).outcome.kind is OutcomeKind.DUPLICATE


# An added product: tests/flows/test_lifecycle_extend.py (added with the group extend).
