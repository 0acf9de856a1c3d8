"""Renewals against Zentitle2's contract: the expiry is read where the contract has it
(``GET /api/v1/entitlements/{id}``), an invoice is recorded only once the licence is known
to cover it, and a renew whose answer was lost is looked at, never blindly repeated."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.support import detail
from zentitle_stripe import OutcomeKind
from zentitle_stripe.storage import EventStatus
from zentitle_stripe.testing import EmulatedWorld

pytestmark = pytest.mark.world(
    offerings={
        "PRO-1Y": {"seats": 2},
        "ADDON-1Y": {},
        "GRACE-1Y": {"grace_days": 30},
        "LATER-1Y": {"license_start_type": "activation"},
    },
    generations=True,
)


def licensed(world: EmulatedWorld, *skus: str) -> tuple[str, dict[str, Any]]:
    """A delivered first payment for ``skus``; returns the subscription and that event."""
    subscription_id, paid = world.subscribe(world.customer(), [(world.price(s), 1) for s in skus])
    assert world.deliver(paid).status == 200
    return subscription_id, paid


def expiries(world: EmulatedWorld, subscription_id: str) -> dict[str, datetime | None]:
    return {e.sku or "": e.expiry_date for e in world.entitlements(subscription_id)}


def period_end(invoice_paid: dict[str, Any]) -> datetime:
    end = invoice_paid["data"]["object"]["lines"]["data"][0]["period"]["end"]
    return datetime.fromtimestamp(end, timezone.utc)


def renews(world: EmulatedWorld) -> int:
    return sum(r.path.endswith("/renew") for r in world.zentitle_emulator.requests)


def year_after(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment.replace(year=moment.year + 1)


def test_one_entitlement_is_renewed_from_its_own_expiry(world: EmulatedWorld) -> None:
    """The regression: group reads carry no expiry; the flow must not call that covered."""
    subscription_id, _ = licensed(world, "PRO-1Y")
    (before,) = expiries(world, subscription_id).values()
    response = world.deliver(world.renew(subscription_id))
    assert response.outcome.kind is OutcomeKind.RENEWED, detail(response)
    assert list(expiries(world, subscription_id).values()) == [year_after(before)]


def test_several_entitlements_are_each_renewed_once(world: EmulatedWorld) -> None:
    subscription_id, _ = licensed(world, "PRO-1Y", "ADDON-1Y", "GRACE-1Y")
    before = expiries(world, subscription_id)
    renewal = world.renew(subscription_id)
    assert world.deliver(renewal).outcome.kind is OutcomeKind.RENEWED
    assert world.deliver(renewal).outcome.kind is OutcomeKind.DUPLICATE
    assert expiries(world, subscription_id) == {k: year_after(v) for k, v in before.items()}
    assert world.zentitle_emulator.count("PATCH", "/api/v1/entitlements/") == 3


def test_two_renewals_out_of_order_end_covering_the_last_paid_period(
    world: EmulatedWorld,
) -> None:
    subscription_id, _ = licensed(world, "PRO-1Y")
    second_year, third_year = world.renew(subscription_id), world.renew(subscription_id)
    assert world.deliver(third_year).outcome.kind is OutcomeKind.RENEWED
    assert world.deliver(second_year).outcome.kind is OutcomeKind.DUPLICATE
    (expiry,) = expiries(world, subscription_id).values()
    assert expiry is not None
    assert abs(expiry - period_end(third_year)) < timedelta(days=1)


def test_renewal_after_the_licence_lapsed_restarts_it_from_now(world: EmulatedWorld) -> None:
    """Grace over (or none): Zentitle2 renews from now, which covers the paid period."""
    subscription_id, _ = licensed(world, "PRO-1Y")
    renewal = world.renew(subscription_id)
    late = world.zentitle_emulator.now + timedelta(days=40)  # Stripe retried for days
    world.zentitle_emulator.now = late
    assert world.entitlements(subscription_id)[0].status == "expired"
    response = world.deliver(renewal)
    assert response.outcome.kind is OutcomeKind.RENEWED, detail(response)
    assert list(expiries(world, subscription_id).values()) == [year_after(late)]
    assert renews(world) == 1


def test_renewal_inside_the_grace_period_extends_from_the_old_expiry(
    world: EmulatedWorld,
) -> None:
    subscription_id, _ = licensed(world, "GRACE-1Y")
    (before,) = expiries(world, subscription_id).values()
    renewal = world.renew(subscription_id)
    world.zentitle_emulator.now += timedelta(days=10)  # expired, 20 days of grace left
    assert world.entitlements(subscription_id)[0].status == "gracePeriod"
    assert world.deliver(renewal).outcome.kind is OutcomeKind.RENEWED
    assert list(expiries(world, subscription_id).values()) == [year_after(before)]


@pytest.mark.parametrize("fault", ["503_after", "502_after", "504_after", "lost_response"])
def test_renew_applied_behind_a_lost_answer_adds_exactly_one_period(
    world: EmulatedWorld, fault: str
) -> None:
    subscription_id, _ = licensed(world, "PRO-1Y", "ADDON-1Y")
    before = expiries(world, subscription_id)
    renewal = world.renew(subscription_id)
    world.zentitle_emulator.inject_fault("PATCH", r"/renew$", fault)
    response = world.deliver(renewal)
    assert response.outcome.kind is OutcomeKind.RENEWED, detail(response)
    assert world.deliver(renewal).outcome.kind is OutcomeKind.DUPLICATE
    assert expiries(world, subscription_id) == {k: year_after(v) for k, v in before.items()}
    assert renews(world) == 2  # one each, none repeated


def test_an_expiry_zentitle2_does_not_show_is_retried_never_called_covered(
    world: EmulatedWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``expiryDate`` is optional in the contract: its absence is an unknown, not a yes."""
    subscription_id, _ = licensed(world, "PRO-1Y")
    (before,) = expiries(world, subscription_id).values()
    renewal = world.renew(subscription_id)
    emulator = world.zentitle_emulator
    full = emulator._entitlement_json
    monkeypatch.setattr(
        emulator,
        "_entitlement_json",
        lambda e: {k: v for k, v in full(e).items() if k != "expiryDate"},
    )
    response = world.deliver(renewal)
    assert response.status == 503
    assert "no expiry" in detail(response)
    state = world.storage.get_subscription(subscription_id)
    assert state is not None
    assert renewal["data"]["object"]["id"] not in state.renewed_invoices

    monkeypatch.undo()
    assert world.provisioner.replay(renewal["id"]).outcome.kind is OutcomeKind.RENEWED
    assert list(expiries(world, subscription_id).values()) == [year_after(before)]


def test_an_entitlement_not_activated_yet_is_reported_and_replayable(
    world: EmulatedWorld,
) -> None:
    subscription_id, _ = licensed(world, "LATER-1Y")
    (entitlement,) = world.entitlements(subscription_id)
    assert entitlement.status == "created"
    renewal = world.renew(subscription_id)
    response = world.deliver(renewal)
    assert response.status == 422
    assert "not activated yet" in detail(response)
    assert renews(world) == 0
    record = world.storage.get_event(renewal["id"])
    assert record is not None
    assert record.status is EventStatus.FAILED
