"""Test your integration offline: ``pytest test_with_emulators.py``.

``EmulatedWorld`` wires the Stripe and Zentitle2 emulators to a real ``Provisioner``
(real clients, real HTTP requests over in-process transports, memory storage).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from zentitle_stripe.testing import EmulatedWorld


@pytest.fixture
def world() -> Iterator[EmulatedWorld]:
    world = EmulatedWorld()
    world.offering("PRO-1Y", interval="year")  # Zentitle2: offering on a 1-year plan
    yield world
    world.close()


def test_first_payment_licenses_once(world: EmulatedWorld) -> None:
    customer = world.customer(email="ada@example.com", name="Ada")
    price = world.price("PRO-1Y")  # Stripe: Price with metadata offering_sku=PRO-1Y
    subscription_id, paid = world.subscribe(customer, [(price, 1)])

    response = world.deliver(paid)  # signed like Stripe, handed to handle_event
    assert response.status == 200
    assert response.outcome.kind.value == "provisioned"
    assert world.deliver(paid).outcome.kind.value == "duplicate"

    (group,) = world.groups(subscription_id)  # orderRefId == subscription id
    assert world.activation_codes(subscription_id) == ",".join(group.activation_codes)


def test_renewal_extends_and_cancellation_disables(world: EmulatedWorld) -> None:
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    world.deliver(paid)
    (before,) = world.entitlements(subscription_id)

    renewal = world.renew(subscription_id)  # next period billed; both clocks move
    assert world.deliver(renewal).outcome.kind.value == "renewed"
    (after,) = world.entitlements(subscription_id)
    assert before.expiry_date is not None
    assert after.expiry_date is not None
    assert after.expiry_date - before.expiry_date >= timedelta(days=365)

    assert world.deliver(world.cancel(subscription_id)).outcome.kind.value == "revoked"
    assert world.active_entitlements(subscription_id) == []


def test_a_lost_answer_never_creates_a_second_group(world: EmulatedWorld) -> None:
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    # Zentitle2 creates the group, then a gateway answers 503 (or the answer is lost).
    world.zentitle_emulator.inject_fault("POST", r"entitlements/groups$", "503_after")

    response = world.deliver(paid)  # the flow looks by orderRefId instead of creating again
    assert response.outcome.kind.value == "provisioned"
    assert "found entitlement group" not in response.outcome.reason  # it is this call's group
    assert len(world.groups(subscription_id)) == 1
    assert world.zentitle_emulator.count("POST", "/api/v1/entitlements/groups") == 1


def test_unknown_sku_is_reported_and_the_event_can_be_replayed(world: EmulatedWorld) -> None:
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1y"), 1)])

    response = world.deliver(paid)
    assert response.status == 422
    assert "did you mean 'PRO-1Y'?" in response.outcome.reason

    world.offering("PRO-1y")  # the fix: here, an offering with the SKU the Price names
    replayed = world.provisioner.replay(paid["id"])
    assert replayed.outcome.kind.value == "provisioned"
    assert len(world.groups(subscription_id)) == 1
