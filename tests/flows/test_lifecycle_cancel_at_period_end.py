"""`cancel_at_period_end`: nothing changes until the period ends, the deletion disables,
and un-cancelling before the end keeps the licence; in both generations, in any delivery
order of the updates with the first payment."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.support import detail
from zentitle_stripe import OutcomeKind
from zentitle_stripe.testing import EmulatedWorld, make_event

pytestmark = pytest.mark.world(offerings={"PRO-1Y": {"seats": 1}}, generations=True)


def scheduled(world: EmulatedWorld, subscription_id: str, cancel: bool) -> dict[str, Any]:
    """The `customer.subscription.updated` Stripe sends when the cancellation at the
    period's end is scheduled (`cancel`) or taken back."""
    subscription = world.stripe_emulator.subscription(subscription_id)
    subscription.update(cancel_at_period_end=cancel, cancel_at=None)
    previous = {"cancel_at_period_end": not cancel}
    event = make_event(
        "customer.subscription.updated",
        subscription,
        api_version=world.stripe_emulator.api_version,
        created=world.stripe_emulator.now,
    )
    event["data"]["previous_attributes"] = previous
    return event


def live(world: EmulatedWorld, subscription_id: str) -> int:
    return len(world.active_entitlements(subscription_id))


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_scheduling_and_taking_back_a_cancellation_keeps_the_licence(
    world: EmulatedWorld, order: tuple[int, ...]
) -> None:
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    events = [
        paid,
        scheduled(world, subscription_id, True),
        scheduled(world, subscription_id, False),
    ]
    for index in order:
        world.deliver(events[index])
    for event in events:  # whatever was answered 503 is retried
        response = world.deliver(event)
        assert response.status == 200, detail(response)
        assert response.outcome.kind is not OutcomeKind.REVOKED
    assert live(world, subscription_id) == 1
    assert world.deliver(world.renew(subscription_id)).outcome.kind is OutcomeKind.RENEWED


def test_the_deletion_at_the_period_end_disables(world: EmulatedWorld) -> None:
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 200
    update = world.deliver(scheduled(world, subscription_id, True))
    assert update.status == 200, detail(update)
    assert live(world, subscription_id) == 1  # nothing changes until the period ends

    world.stripe_emulator.now = world.stripe_emulator.subscription(subscription_id)["items"][
        "data"
    ][0]["current_period_end"]
    deleted = world.deliver(world.cancel(subscription_id))

    assert deleted.outcome.kind is OutcomeKind.REVOKED, detail(deleted)
    assert live(world, subscription_id) == 0
    assert world.deliver(scheduled(world, subscription_id, False)).outcome.kind in (
        OutcomeKind.IGNORED,
        OutcomeKind.DUPLICATE,
    )
    assert live(world, subscription_id) == 0
