"""The status fields of a Subscription and an invoice's `amount_paid`, read in both payload
generations and tolerantly (a field of the wrong type reads as missing)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import GENERATIONS, make_world
from zentitle_stripe.stripe.events import parse_invoice, parse_subscription


def subscription(**fields: Any) -> dict[str, Any]:
    return {"id": "sub_1", "object": "subscription", "customer": "cus_1", **fields}


@pytest.mark.parametrize("api_version", list(GENERATIONS.values()), ids=list(GENERATIONS))
def test_the_emulator_renders_what_the_parser_reads(api_version: str) -> None:
    world = make_world(offerings={"PRO-1Y": {}}, api_version=api_version)
    try:
        sub, trial = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)], trial_days=7)
        rendered = world.stripe_emulator.subscription(sub)
        parsed = parse_subscription(rendered)
        assert parsed.status == "trialing"
        assert parsed.trial_end == rendered["trial_end"] is not None
        assert parsed.current_period_start == rendered["created"]
        # basil moved the period onto the items; before it, it is top-level only
        top_level = "current_period_start" in rendered
        assert top_level is (api_version == GENERATIONS["acacia"])
        assert parse_invoice(trial["data"]["object"]).amount_paid == 0
        update = world.schedule_cancel(sub)
        assert parse_subscription(update["data"]["object"]).cancel_at_period_end is True
        assert update["data"]["previous_attributes"] == {"cancel_at_period_end": False}
        paused, _ = world.pause(sub)
        assert parse_subscription(paused["data"]["object"]).status == "paused"
    finally:
        world.close()


def test_the_period_start_is_read_from_the_first_item_before_the_top_level() -> None:
    items = {"object": "list", "data": [{"id": "si_1", "current_period_start": 200}]}
    assert parse_subscription(subscription(items=items)).current_period_start == 200
    both = subscription(items=items, current_period_start=100)
    assert parse_subscription(both).current_period_start == 200
    old = subscription(current_period_start=100, items={"data": [{"id": "si_1"}]})
    assert parse_subscription(old).current_period_start == 100
    assert parse_subscription(subscription()).current_period_start is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ({"behavior": "void", "resumes_at": None}, "void"),
        ({}, "unknown"),  # there, but unreadable: paused all the same (the harsher reading)
        ("void", None),  # not an object: missing
    ],
)
def test_pause_collection_reads_its_behaviour(value: Any, expected: str | None) -> None:
    assert parse_subscription(subscription(pause_collection=value)).pause_collection == expected


@pytest.mark.parametrize(
    ("fields", "trial_end", "cancel"),
    [
        ({"trial_end": 1_800_000_000, "cancel_at_period_end": True}, 1_800_000_000, True),
        ({"trial_end": "1800000000", "cancel_at_period_end": "true"}, None, False),
        ({"trial_end": -5, "cancel_at_period_end": 1}, None, False),
        ({}, None, False),
    ],
)
def test_trial_end_and_cancel_at_period_end_are_read_strictly(
    fields: dict[str, Any], trial_end: int | None, cancel: bool
) -> None:
    parsed = parse_subscription(subscription(**fields))
    assert (parsed.trial_end, parsed.cancel_at_period_end) == (trial_end, cancel)


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 0), (4900, 4900), (-1, None), ("0", None), (None, None)]
)
def test_amount_paid_is_a_non_negative_integer_or_unknown(value: Any, expected: int | None) -> None:
    invoice = {"id": "in_1", "object": "invoice", "amount_paid": value, "lines": {"data": []}}
    assert parse_invoice(invoice).amount_paid == expected


@pytest.mark.parametrize("api_version", list(GENERATIONS.values()), ids=list(GENERATIONS))
def test_the_subscription_event_factory_renders_each_generation(api_version: str) -> None:
    from zentitle_stripe.testing import LineSpec, subscription_event

    event = subscription_event(
        [LineSpec("price_1", sku="PRO-1Y")],
        event_type="customer.subscription.paused",
        status="paused",
        period_start=1_800_000_000,
        trial_end=1_800_000_000,
        cancel_at_period_end=True,
        previous_attributes={"status": "active"},
        api_version=api_version,
    )
    obj = event["data"]["object"]
    parsed = parse_subscription(obj)
    assert (parsed.status, parsed.trial_end, parsed.cancel_at_period_end) == (
        "paused",
        1_800_000_000,
        True,
    )
    assert parsed.current_period_start == 1_800_000_000
    assert parsed.items[0].price_metadata == {"offering_sku": "PRO-1Y"}
    old = api_version == GENERATIONS["acacia"]
    assert ("current_period_start" in obj) is old
    assert ("current_period_start" in obj["items"]["data"][0]) is not old
    assert ("status_details" in obj) is not old
    assert event["data"]["previous_attributes"] == {"status": "active"}
