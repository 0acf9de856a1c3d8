"""Trials: `grant` licenses until `trial_end` and the first paid invoice extends it;
`wait` grants nothing until then; a trial that ends unpaid disables. Every delivery order
with the first payment, duplicates, both payload generations."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.support import detail, make_world
from zentitle_stripe import LifecyclePolicy, OutcomeKind
from zentitle_stripe.testing import EmulatedWorld

pytestmark = pytest.mark.world(offerings={"PRO-1Y": {}}, generations=True)

TRIAL_DAYS = 14
DAY = timedelta(days=1)


def on_trial(world: EmulatedWorld) -> tuple[str, dict[str, Any]]:
    return world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)], trial_days=TRIAL_DAYS)


def trial_end(world: EmulatedWorld, subscription_id: str) -> datetime:
    value = world.stripe_emulator.subscription(subscription_id)["trial_end"]
    return datetime.fromtimestamp(value, timezone.utc)


def period_end(world: EmulatedWorld, subscription_id: str) -> datetime:
    item = world.stripe_emulator.subscription(subscription_id)["items"]["data"][0]
    return datetime.fromtimestamp(item["current_period_end"], timezone.utc)


def statuses(world: EmulatedWorld, subscription_id: str) -> list[str | None]:
    return [e.status for e in world.entitlements(subscription_id)]


def expiry(world: EmulatedWorld, subscription_id: str) -> datetime | None:
    (entitlement,) = world.entitlements(subscription_id)
    return world.zentitle.get_entitlement(entitlement.id).expiry_date


def settle(world: EmulatedWorld, events: Sequence[dict[str, Any]], order: Sequence[int]) -> None:
    for index in order:
        world.deliver(events[index])
    for _ in range(2):  # Stripe retries whatever was answered 503
        for event in events:
            response = world.deliver(event)
            assert response.status == 200, detail(response)


def waiting() -> EmulatedWorld:
    return make_world(offerings={"PRO-1Y": {}}, policy=LifecyclePolicy(trial="wait"))


# -- grant ---------------------------------------------------------------------------------


def test_a_trial_licence_expires_at_trial_end_and_the_first_payment_extends_it(
    world: EmulatedWorld,
) -> None:
    subscription_id, trial_paid = on_trial(world)
    assert trial_paid["data"]["object"]["amount_paid"] == 0
    response = world.deliver(trial_paid)
    assert response.outcome.kind is OutcomeKind.PROVISIONED, detail(response)
    assert "trial" in response.outcome.reason
    assert expiry(world, subscription_id) == trial_end(world, subscription_id)
    assert world.activation_codes(subscription_id)
    assert world.deliver(trial_paid).outcome.kind is OutcomeKind.DUPLICATE
    paid, updated = world.end_trial(subscription_id, paid=True)
    response = world.deliver(paid)
    assert response.outcome.kind is OutcomeKind.RENEWED, detail(response)
    assert expiry(world, subscription_id) == period_end(world, subscription_id)
    assert world.deliver(updated).outcome.kind is OutcomeKind.DUPLICATE
    assert world.deliver(trial_paid).outcome.kind is OutcomeKind.DUPLICATE  # never shortens
    assert expiry(world, subscription_id) == period_end(world, subscription_id)
    assert statuses(world, subscription_id) == ["active"]


def test_a_longer_trial_moves_the_expiry(world: EmulatedWorld) -> None:
    subscription_id, trial_paid = on_trial(world)
    assert world.deliver(trial_paid).status == 200
    update = world.extend_trial(subscription_id, 7)
    response = world.deliver(update)
    assert response.outcome.kind is OutcomeKind.UPDATED, detail(response)
    assert expiry(world, subscription_id) == trial_end(world, subscription_id)
    assert world.deliver(update).outcome.kind is OutcomeKind.DUPLICATE


def test_a_trial_expiry_left_unset_by_a_crash_is_set_by_the_retry(world: EmulatedWorld) -> None:
    subscription_id, trial_paid = on_trial(world)
    zentitle = world.zentitle_emulator
    zentitle.inject_fault("PATCH", r"/entitlements/[^/]+$", "500", times=20)
    assert world.deliver(trial_paid).status >= 500  # group created, expiry not yet set
    zentitle.clear_faults()
    response = world.deliver(trial_paid)
    assert response.outcome.kind is OutcomeKind.UPDATED, detail(response)
    assert expiry(world, subscription_id) == trial_end(world, subscription_id)
    assert len(world.groups(subscription_id)) == 1


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_a_paid_trial_converges_in_every_delivery_order(
    world: EmulatedWorld, order: tuple[int, ...]
) -> None:
    subscription_id, trial_paid = on_trial(world)
    paid, updated = world.end_trial(subscription_id, paid=True)
    settle(world, [trial_paid, paid, updated], order)
    assert len(world.groups(subscription_id)) == 1
    assert statuses(world, subscription_id) == ["active"]
    assert abs(expiry(world, subscription_id) - period_end(world, subscription_id)) <= DAY  # type: ignore[operator]


# -- a trial that ends unpaid ----------------------------------------------------------


def unpaid_endings(world: EmulatedWorld, subscription_id: str, how: str) -> list[dict[str, Any]]:
    """The events of a trial that ends without payment, `how`."""
    if how == "past_due":
        return world.end_trial(subscription_id, paid=False)
    if how == "paused":  # trial_settings.end_behavior.missing_payment_method = pause
        return world.pause(subscription_id)[1:]
    if how == "deleted":
        return [world.cancel(subscription_id)]
    ended = world.end_trial(subscription_id, paid=False)
    return [*ended, world.set_status(subscription_id, how)]


ENDINGS = ["past_due", "unpaid", "incomplete_expired", "canceled", "paused", "deleted"]


@pytest.mark.parametrize("how", ENDINGS)
def test_a_trial_that_ends_unpaid_disables(world: EmulatedWorld, how: str) -> None:
    subscription_id, trial_paid = on_trial(world)
    assert world.deliver(trial_paid).status == 200
    kinds = []
    for event in unpaid_endings(world, subscription_id, how):
        response = world.deliver(event)
        assert response.status == 200, detail(response)
        kinds.append(response.outcome.kind)
    assert OutcomeKind.REVOKED in kinds  # then duplicates: every update reads the same state
    assert statuses(world, subscription_id) == ["disabled"]


@pytest.mark.parametrize("how", ENDINGS)
def test_a_trial_that_ends_unpaid_disables_in_every_delivery_order(
    world: EmulatedWorld, how: str
) -> None:
    """Each order on a subscription of its own. A cancellation delivered before the
    trial's invoice is remembered, so that invoice then creates no licence at all."""
    probe, _ = on_trial(world)
    orders = itertools.permutations(range(1 + len(unpaid_endings(world, probe, how))))
    for order in orders:
        subscription_id, trial_paid = on_trial(world)
        events = [trial_paid, *unpaid_endings(world, subscription_id, how)]
        settle(world, events, order)
        cancelled_first = how in ("canceled", "deleted") and order[0] != 0
        assert len(world.groups(subscription_id)) == (0 if cancelled_first else 1)
        assert "active" not in statuses(world, subscription_id), (how, order)


def test_a_trial_paid_after_it_ended_unpaid_is_enabled_and_covered(
    world: EmulatedWorld,
) -> None:
    subscription_id, trial_paid = on_trial(world)
    assert world.deliver(trial_paid).status == 200
    (past_due,) = world.end_trial(subscription_id, paid=False)
    assert world.deliver(past_due).outcome.kind is OutcomeKind.REVOKED
    paid, _ = world.pay_overdue(subscription_id)
    response = world.deliver(paid)
    assert response.outcome.kind is OutcomeKind.RENEWED, detail(response)
    assert statuses(world, subscription_id) == ["active"]
    assert abs(expiry(world, subscription_id) - period_end(world, subscription_id)) <= DAY  # type: ignore[operator]
    assert world.deliver(past_due).status == 200  # late: changes nothing
    assert statuses(world, subscription_id) == ["active"]


# -- wait ----------------------------------------------------------------------------------


@pytest.mark.world(offerings={"PRO-1Y": {}}, generations=True)
def test_wait_grants_nothing_until_the_first_paid_invoice(api_version: str | None) -> None:
    world = make_world(
        offerings={"PRO-1Y": {}}, policy=LifecyclePolicy(trial="wait"), **_version(api_version)
    )
    try:
        subscription_id, trial_paid = on_trial(world)
        response = world.deliver(trial_paid)
        assert response.outcome.kind is OutcomeKind.IGNORED, detail(response)
        assert "trial='wait'" in response.outcome.reason
        assert world.groups(subscription_id) == []
        update = world.extend_trial(subscription_id, 3)
        assert world.deliver(update).outcome.kind is OutcomeKind.IGNORED
        paid, updated = world.end_trial(subscription_id, paid=True)
        response = world.deliver(paid)
        assert response.outcome.kind is OutcomeKind.PROVISIONED, detail(response)
        assert abs(expiry(world, subscription_id) - period_end(world, subscription_id)) <= DAY  # type: ignore[operator]
        assert world.deliver(updated).outcome.kind is OutcomeKind.DUPLICATE
        assert world.deliver(trial_paid).status == 200
        assert len(world.groups(subscription_id)) == 1
    finally:
        world.close()


@pytest.mark.world(offerings={"PRO-1Y": {}}, generations=True)
@pytest.mark.parametrize("paid", [True, False])
def test_wait_converges_in_every_delivery_order(api_version: str | None, paid: bool) -> None:
    world = make_world(
        offerings={"PRO-1Y": {}}, policy=LifecyclePolicy(trial="wait"), **_version(api_version)
    )
    try:
        for order in itertools.permutations(range(3 if paid else 2)):
            subscription_id, trial_paid = on_trial(world)
            events = [trial_paid, *world.end_trial(subscription_id, paid=paid)]
            settle(world, events, order)
            if paid:
                assert statuses(world, subscription_id) == ["active"]
            else:
                assert world.groups(subscription_id) == []
    finally:
        world.close()


def _version(api_version: str | None) -> dict[str, Any]:
    return {"api_version": api_version} if api_version else {}
