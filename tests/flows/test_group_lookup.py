"""The group lookup of a first payment: its cost does not grow with the customer's groups.

Zentitle2 cannot filter groups by `orderRefId`, so when storage knows of no create for
the subscription the lookup reads one page of the customer's groups; when a create was
attempted (a marker in storage), it reads them all, since that group must be found.
"""

from __future__ import annotations

import pytest

from tests.flows.test_call_budget import Budget
from zentitle_stripe.flows.context import BOUNDED_GROUP_PAGES

EXISTING = 150  # more than one page of 100


def _seed_groups(budget: Budget, count: int) -> str:
    """`count` groups of other orders for the known customer; returns its Zentitle2 id."""
    customer = budget.world.storage.get_customer_link(budget.customer)
    assert customer is not None
    client = budget.world.zentitle_emulator.client()
    try:
        for i in range(count):
            client.create_entitlement_group(
                skus=["SKU-0"], customer_id=customer, order_ref_id=f"sub_other_{i}"
            )
    finally:
        client.close()
    return customer


@pytest.fixture
def crowded() -> Budget:
    budget = Budget()
    _seed_groups(budget, EXISTING)
    return budget


def test_first_payment_reads_one_page_of_a_crowded_customer(crowded: Budget) -> None:
    subscription, paid = crowded.subscribe(1)
    calls = crowded.deliver(paid, "provisioned")
    assert calls.group_lists == BOUNDED_GROUP_PAGES == 1
    assert len(crowded.world.zentitle_emulator.groups(subscription)) == 1


def test_an_attempted_create_searches_every_page(crowded: Budget) -> None:
    subscription, paid = crowded.subscribe(1)
    # A create attempted long ago that never recorded its group: it may exist anywhere.
    crowded.world.storage.put_customer_link(f"group-create:{subscription}", "0.0")
    calls = crowded.deliver(paid, "provisioned")
    assert calls.group_lists == 2  # 151 groups: two pages
    assert len(crowded.world.zentitle_emulator.groups(subscription)) == 1


def test_the_bounded_look_still_finds_a_group_on_its_page() -> None:
    budget = Budget()
    subscription, paid = budget.subscribe(1)
    customer = _seed_groups(budget, 3)
    client = budget.world.zentitle_emulator.client()
    try:  # another installation (or lost storage) created this subscription's group
        group = client.create_entitlement_group(
            skus=["SKU-0"], customer_id=customer, order_ref_id=subscription
        )
    finally:
        client.close()
    calls = budget.deliver(paid, "provisioned")
    assert calls.group_lists == 1
    assert calls.z_writes == 0
    assert budget.world.storage.get_subscription(subscription).group_id == group.id  # type: ignore[union-attr]
