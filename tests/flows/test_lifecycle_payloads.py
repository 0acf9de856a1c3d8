"""Payloads provisioning cannot read are 422 with the reason and stay replayable: a
Stripe format change must never be answered `ignored` and silently grant nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import detail
from zentitle_stripe import OutcomeKind
from zentitle_stripe.storage import EventStatus
from zentitle_stripe.testing import EmulatedWorld

pytestmark = pytest.mark.world(offerings={"PRO-1Y": {}}, generations=True)


def first_payment(world: EmulatedWorld) -> tuple[str, dict[str, Any]]:
    return world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])


def strip_prices(event: dict[str, Any]) -> None:
    """Remove every way a line names its Price, in whichever generation it is."""
    for line in event["data"]["object"]["lines"]["data"]:
        line.pop("price", None)
        line.pop("plan", None)
        if isinstance(line.get("pricing"), dict):
            line["pricing"]["price_details"] = None


def test_a_licensed_line_without_a_readable_price_is_a_replayable_422(
    world: EmulatedWorld,
) -> None:
    subscription_id, paid = first_payment(world)
    strip_prices(paid)
    response = world.deliver(paid)
    assert response.status == 422, detail(response)
    assert response.outcome.kind is OutcomeKind.FAILED
    assert "names no Price" in response.outcome.reason
    assert world.groups(subscription_id) == []
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert record.status is EventStatus.FAILED
    # A redelivery is not a duplicate: it fails the same way until the cause is fixed.
    assert world.deliver(paid).status == 422


@pytest.mark.parametrize("lines", [None, {"object": "list"}, {"data": "x"}])
def test_an_invoice_paid_without_readable_lines_is_a_422_not_ignored(
    world: EmulatedWorld, lines: Any
) -> None:
    subscription_id, paid = first_payment(world)
    paid["data"]["object"]["lines"] = lines
    response = world.deliver(paid)
    assert response.status == 422, detail(response)
    assert "no readable lines.data" in response.outcome.reason
    assert world.groups(subscription_id) == []


def test_a_line_that_is_not_a_subscription_item_is_still_skipped(world: EmulatedWorld) -> None:
    """One-off invoice items on a subscription invoice are not licences, nor errors."""
    subscription_id, paid = first_payment(world)
    lines = paid["data"]["object"]["lines"]["data"]
    extra = {k: v for k, v in lines[0].items() if k not in ("price", "pricing")}
    extra["id"] = "il_oneoff"
    if "parent" in extra:
        extra["parent"] = {"type": "invoice_item_details", "invoice_item_details": {}}
    else:
        extra["type"] = "invoiceitem"
    lines.append(extra)
    response = world.deliver(paid)
    assert response.outcome.kind is OutcomeKind.PROVISIONED, detail(response)
    assert len(world.active_entitlements(subscription_id)) == 1
