"""Customer matching finishes every side effect it owes (issue 13, case 3).

Once the Stripe-to-Zentitle2 link is stored, matching used to return at once, so a
contact whose create failed, or a Stripe `zentitle_customer_id` write that failed, was
never done; with storage lost later, nothing found the customer again and a second one
was made. Each side effect is now recorded when done, and any later run of the same
buyer (a redelivery, or another subscription) finishes the ones that are not.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support import detail, kind, subscribe_two
from zentitle_stripe import OutcomeKind, Provisioner
from zentitle_stripe.storage import MemoryStorage
from zentitle_stripe.testing import EmulatedWorld

pytestmark = pytest.mark.world(generations=True)

EMAIL = "buyer@example.com"
CONTACTS = r"/api/v1/customers/[^/]+/contacts$"
STRIPE_CUSTOMER = r"^/v1/customers/cus_"


def stripe_customer_of(paid: dict[str, Any]) -> str:
    customer: str = paid["data"]["object"]["customer"]
    return customer


def contact_owners(world: EmulatedWorld) -> list[str | None]:
    return [c.customer_id for c in world.zentitle.search_contacts(EMAIL)]


def linked_in_stripe(world: EmulatedWorld, stripe_customer: str) -> str | None:
    metadata = world.stripe_emulator.customer(stripe_customer).get("metadata") or {}
    value = metadata.get("zentitle_customer_id")
    return str(value) if value is not None else None


def second_subscription(world: EmulatedWorld, stripe_customer: str) -> dict[str, Any]:
    return world.subscribe(stripe_customer, [(world.price("PRO-1Y"), 1)])[1]


@pytest.mark.parametrize("fault", ["500", "503"])
@pytest.mark.parametrize("finisher", ["redelivery", "second subscription"])
def test_a_failed_contact_create_is_finished_by_a_later_run(
    world: EmulatedWorld, fault: str, finisher: str
) -> None:
    subscription_id, paid = subscribe_two(world, email=EMAIL)
    stripe_customer = stripe_customer_of(paid)
    world.zentitle_emulator.inject_fault("POST", CONTACTS, fault)
    first = world.deliver(paid)
    assert first.status == 503, detail(first)
    (customer,) = world.zentitle_emulator.customers()
    assert world.storage.get_customer_link(stripe_customer) == customer.id  # linked...
    assert contact_owners(world) == []  # ...but no contact
    # The other side effect was not held back by the failure.
    assert linked_in_stripe(world, stripe_customer) == customer.id

    later = paid if finisher == "redelivery" else second_subscription(world, stripe_customer)
    assert world.deliver(later).status == 200
    assert contact_owners(world) == [customer.id]  # before the fix: never created

    assert world.deliver(paid).status == 200
    assert contact_owners(world) == [customer.id]  # exactly once
    assert [c.id for c in world.zentitle_emulator.customers()] == [customer.id]
    assert len(world.groups(subscription_id)) == 1


@pytest.mark.parametrize("finisher", ["redelivery", "second subscription"])
def test_a_failed_stripe_link_is_finished_by_a_later_run(
    world: EmulatedWorld, finisher: str
) -> None:
    subscription_id, paid = subscribe_two(world, email=EMAIL)
    stripe_customer = stripe_customer_of(paid)
    world.stripe_emulator.inject_fault("POST", STRIPE_CUSTOMER, "503")
    first = world.deliver(paid)
    assert first.status == 503, detail(first)
    (customer,) = world.zentitle_emulator.customers()
    assert linked_in_stripe(world, stripe_customer) is None
    assert contact_owners(world) == [customer.id]

    later = paid if finisher == "redelivery" else second_subscription(world, stripe_customer)
    assert world.deliver(later).status == 200
    assert linked_in_stripe(world, stripe_customer) == customer.id  # before the fix: never

    assert world.deliver(paid).status == 200
    assert contact_owners(world) == [customer.id]
    assert len(world.groups(subscription_id)) == 1


def test_both_failing_at_once_are_both_finished(world: EmulatedWorld) -> None:
    _, paid = subscribe_two(world, email=EMAIL)
    stripe_customer = stripe_customer_of(paid)
    world.zentitle_emulator.inject_fault("POST", CONTACTS, "500")
    world.stripe_emulator.inject_fault("POST", STRIPE_CUSTOMER, "500")
    assert world.deliver(paid).status == 503

    response = world.deliver(paid)

    assert kind(response) is OutcomeKind.PROVISIONED, detail(response)
    (customer,) = world.zentitle_emulator.customers()
    assert contact_owners(world) == [customer.id]
    assert linked_in_stripe(world, stripe_customer) == customer.id


def test_with_the_link_back_done_losing_storage_finds_the_same_customer(
    world: EmulatedWorld,
) -> None:
    """The reason the Stripe link is owed: with storage lost, it is what finds the
    customer again (and the contact search does too)."""
    _, paid = subscribe_two(world, email=EMAIL)
    stripe_customer = stripe_customer_of(paid)
    world.stripe_emulator.inject_fault("POST", STRIPE_CUSTOMER, "503")
    assert world.deliver(paid).status == 503
    assert world.deliver(paid).status == 200
    (customer,) = world.zentitle_emulator.customers()

    fresh = Provisioner(
        webhook_secrets=[world.stripe_emulator.webhook_secret],
        storage=MemoryStorage(),  # storage lost
        zentitle=world.zentitle,
        stripe=world.stripe,
    )
    second_id, event = world.subscribe(stripe_customer, [(world.price("PRO-1Y"), 1)])
    body, header = world.stripe_emulator.sign(event, timestamp=int(time.time()))
    assert fresh.handle_event(body, header).status == 200
    assert [c.id for c in world.zentitle_emulator.customers()] == [customer.id]
    (group,) = world.groups(second_id)
    assert group.customer_id == customer.id


def test_a_deleted_stripe_customer_is_not_written_to(world: EmulatedWorld) -> None:
    _, paid = subscribe_two(world, email=EMAIL)
    stripe_customer = stripe_customer_of(paid)
    world.stripe_emulator.inject_fault("POST", STRIPE_CUSTOMER, "503")
    assert world.deliver(paid).status == 503
    world.stripe_emulator.delete_customer(stripe_customer)
    world.stripe_emulator.reset_requests()

    assert world.deliver(paid).status == 200
    assert world.stripe_emulator.count("POST", "/v1/customers/") == 0
    assert world.storage.get_customer_link(f"stripe-link-done:{stripe_customer}") == "done"


def test_a_link_from_before_the_markers_is_completed_once_then_costs_nothing(
    world: EmulatedWorld,
) -> None:
    """A link stored by an earlier version (no markers): the next run checks both side
    effects once (a contact search, a Stripe read), then never again."""
    _, paid = subscribe_two(world, email=EMAIL)
    stripe_customer = stripe_customer_of(paid)
    made = world.zentitle_emulator.add_customer("Ada Buyer", account_ref_id=stripe_customer)
    world.storage.put_customer_link(stripe_customer, made)

    assert world.deliver(paid).status == 200
    assert contact_owners(world) == [made]
    assert linked_in_stripe(world, stripe_customer) == made

    later = second_subscription(world, stripe_customer)
    world.zentitle_emulator.reset_requests()
    world.stripe_emulator.reset_requests()
    assert world.deliver(later).status == 200
    assert world.zentitle_emulator.count("GET", "/api/v1/customers") == 0
    assert world.stripe_emulator.count("GET", "/v1/customers/") == 0
