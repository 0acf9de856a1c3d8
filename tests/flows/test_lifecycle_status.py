"""Status moments: payment trouble (`past_due` grace, `unpaid`, recovery) and pause /
resume, decided on Stripe's current state in every delivery order."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.support import detail, kind, make_world
from zentitle_stripe import LifecyclePolicy, OutcomeKind
from zentitle_stripe.testing import EmulatedWorld

pytestmark = pytest.mark.world(offerings={"PRO-1Y": {}}, generations=True)

GRACE = timedelta(days=7)


def started(world: EmulatedWorld) -> tuple[str, dict[str, Any]]:
    return world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])


def statuses(world: EmulatedWorld, subscription_id: str) -> list[str | None]:
    return [e.status for e in world.entitlements(subscription_id)]


def expiry(world: EmulatedWorld, subscription_id: str) -> datetime | None:
    (entitlement,) = world.entitlements(subscription_id)
    return world.zentitle.get_entitlement(entitlement.id).expiry_date


def period(world: EmulatedWorld, subscription_id: str) -> tuple[datetime, datetime]:
    item = world.stripe_emulator.subscription(subscription_id)["items"]["data"][0]
    start, end = item["current_period_start"], item["current_period_end"]
    return (datetime.fromtimestamp(start, timezone.utc), datetime.fromtimestamp(end, timezone.utc))


def settle(world: EmulatedWorld, events: Sequence[dict[str, Any]], order: Sequence[int]) -> None:
    """Deliver in `order`, then redeliver everything, as Stripe retries a 503."""
    for index in order:
        world.deliver(events[index])
    for _ in range(2):
        for event in events:
            response = world.deliver(event)
            assert response.status == 200, detail(response)


# -- payment trouble ---------------------------------------------------------------------


def test_past_due_keeps_the_licence_for_the_grace_after_the_failed_renewal(
    world: EmulatedWorld,
) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    past_due = world.fail_renewal(subscription_id)
    response = world.deliver(past_due)
    assert response.outcome.kind is OutcomeKind.UPDATED, detail(response)
    start, _ = period(world, subscription_id)
    assert expiry(world, subscription_id) == start + GRACE
    assert statuses(world, subscription_id) == ["active"]
    assert world.deliver(past_due).outcome.kind is OutcomeKind.DUPLICATE
    world.advance(GRACE.total_seconds())  # no payment: Zentitle2 itself ends it
    assert statuses(world, subscription_id) == ["expired"]


def test_unpaid_disables_and_a_later_payment_enables_and_covers_the_period(
    world: EmulatedWorld,
) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    assert world.deliver(world.fail_renewal(subscription_id)).status == 200
    world.advance(3 * 86400)
    unpaid = world.set_status(subscription_id, "unpaid")
    response = world.deliver(unpaid)
    assert response.outcome.kind is OutcomeKind.REVOKED, detail(response)
    assert statuses(world, subscription_id) == ["disabled"]
    assert world.deliver(unpaid).outcome.kind is OutcomeKind.DUPLICATE
    overdue_paid, active = world.pay_overdue(subscription_id)
    response = world.deliver(overdue_paid)
    assert response.outcome.kind is OutcomeKind.RENEWED, detail(response)
    assert statuses(world, subscription_id) == ["active"]
    _, end = period(world, subscription_id)
    assert expiry(world, subscription_id) == end  # exactly: the grace is not added
    assert world.deliver(active).outcome.kind is OutcomeKind.DUPLICATE
    for old in (unpaid, overdue_paid):  # late redeliveries change nothing
        assert world.deliver(old).status == 200
    assert statuses(world, subscription_id) == ["active"]
    assert expiry(world, subscription_id) == end


def test_a_payment_after_past_due_ends_the_grace_with_the_paid_period(
    world: EmulatedWorld,
) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    past_due = world.fail_renewal(subscription_id)
    assert world.deliver(past_due).status == 200
    overdue_paid, _ = world.pay_overdue(subscription_id)
    assert world.deliver(overdue_paid).outcome.kind is OutcomeKind.RENEWED
    _, end = period(world, subscription_id)
    assert expiry(world, subscription_id) == end
    assert world.deliver(past_due).status == 200  # an old update arriving late
    assert expiry(world, subscription_id) == end
    assert world.storage.get_subscription(subscription_id).grace_until is None  # type: ignore[union-attr]


@pytest.mark.parametrize("status", ["incomplete_expired", "unpaid"])
def test_a_status_that_ends_payment_disables_at_once(world: EmulatedWorld, status: str) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    response = world.deliver(world.set_status(subscription_id, status))
    assert response.outcome.kind is OutcomeKind.REVOKED, detail(response)
    assert status in response.outcome.reason
    assert statuses(world, subscription_id) == ["disabled"]


def test_no_grace_disables_as_soon_as_a_renewal_fails() -> None:
    world = make_world(
        offerings={"PRO-1Y": {}}, policy=LifecyclePolicy(past_due_grace=timedelta(0))
    )
    try:
        subscription_id, paid = started(world)
        assert world.deliver(paid).status == 200
        response = world.deliver(world.fail_renewal(subscription_id))
        assert response.outcome.kind is OutcomeKind.REVOKED, detail(response)
        assert statuses(world, subscription_id) == ["disabled"]
    finally:
        world.close()


@pytest.mark.parametrize("order", list(itertools.permutations(range(5))))
def test_payment_trouble_converges_in_every_delivery_order(
    world: EmulatedWorld, order: tuple[int, ...]
) -> None:
    subscription_id, paid = started(world)
    past_due = world.fail_renewal(subscription_id)
    unpaid = world.set_status(subscription_id, "unpaid")
    overdue_paid, active = world.pay_overdue(subscription_id)
    settle(world, [paid, past_due, unpaid, overdue_paid, active], order)
    assert len(world.groups(subscription_id)) == 1
    assert statuses(world, subscription_id) == ["active"]
    _, end = period(world, subscription_id)
    assert abs(expiry(world, subscription_id) - end) <= timedelta(days=1)  # type: ignore[operator]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_unpaid_before_the_first_payment_is_provisioned_disabled(
    world: EmulatedWorld, order: tuple[int, ...]
) -> None:
    subscription_id, paid = started(world)
    past_due = world.fail_renewal(subscription_id)
    unpaid = world.set_status(subscription_id, "unpaid")
    settle(world, [paid, past_due, unpaid], order)
    assert len(world.groups(subscription_id)) == 1
    assert world.activation_codes(subscription_id)  # codes exist, for a later payment
    assert statuses(world, subscription_id) == ["disabled"]


@pytest.mark.parametrize("fault", ["500", "timeout", "lost_response"])
def test_a_failed_disable_or_enable_is_retried_never_recorded_done(
    world: EmulatedWorld, fault: str
) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    world.fail_renewal(subscription_id)  # its update lost: the next one says it all
    unpaid = world.set_status(subscription_id, "unpaid")
    zentitle = world.zentitle_emulator
    zentitle.inject_fault("PATCH", r"/disable$", fault, times=20)
    assert world.deliver(unpaid).status >= 500  # the client's own retries gave up
    zentitle.clear_faults()
    # a lost answer landed: the retry reads that it did (and says so), else it disables
    assert kind(world.deliver(unpaid)) in (OutcomeKind.REVOKED, OutcomeKind.DUPLICATE)
    assert statuses(world, subscription_id) == ["disabled"]
    overdue_paid, _ = world.pay_overdue(subscription_id)
    zentitle.inject_fault("PATCH", r"/enable$", fault, times=20)
    assert world.deliver(overdue_paid).status >= 500
    # not renewed yet: still disabled, or enabled by a lost answer that landed
    assert statuses(world, subscription_id) == [
        "expired" if fault == "lost_response" else "disabled"
    ]
    zentitle.clear_faults()
    response = world.deliver(overdue_paid)
    assert response.outcome.kind is OutcomeKind.RENEWED, detail(response)
    assert statuses(world, subscription_id) == ["active"]


@pytest.mark.parametrize("fault", ["503", "timeout", "bad_body"])
def test_stripe_failing_the_fresh_read_is_retried_and_changes_nothing(
    world: EmulatedWorld, fault: str
) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    unpaid = world.set_status(subscription_id, "unpaid")
    stripe = world.stripe_emulator
    stripe.inject_fault("GET", r"^/v1/subscriptions/", fault, times=5)  # type: ignore[arg-type]
    response = world.deliver(unpaid)
    assert response.status >= 500, detail(response)
    assert statuses(world, subscription_id) == ["active"]  # nothing decided on a guess
    stripe.clear_faults()
    assert world.deliver(unpaid).outcome.kind is OutcomeKind.REVOKED


# -- pause / resume ----------------------------------------------------------------------


def test_pause_disables_and_resume_enables_and_renews(world: EmulatedWorld) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    paused, paused_update = world.pause(subscription_id)
    response = world.deliver(paused)
    assert response.outcome.kind is OutcomeKind.REVOKED, detail(response)
    assert statuses(world, subscription_id) == ["disabled"]
    assert world.deliver(paused_update).outcome.kind is OutcomeKind.DUPLICATE
    world.advance(400 * 86400)  # paused past the paid period
    resumed, resumed_update, resume_paid = world.resume(subscription_id)
    response = world.deliver(resumed)
    assert response.outcome.kind is OutcomeKind.UPDATED, detail(response)
    assert statuses(world, subscription_id) == ["expired"]  # enabled; not paid yet
    assert world.deliver(resume_paid).outcome.kind is OutcomeKind.RENEWED
    assert statuses(world, subscription_id) == ["active"]
    _, end = period(world, subscription_id)
    assert abs(expiry(world, subscription_id) - end) <= timedelta(days=1)  # type: ignore[operator]
    assert world.deliver(resumed_update).outcome.kind is OutcomeKind.DUPLICATE


def test_an_unrelated_update_does_not_undo_a_pause(world: EmulatedWorld) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    for event in world.pause(subscription_id):
        assert world.deliver(event).status == 200
    updated, _ = world.change_items(subscription_id, [(world.price("PRO-1Y"), 1)])
    assert world.deliver(updated).status == 200
    assert world.deliver(paid).status == 200
    assert statuses(world, subscription_id) == ["disabled"]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_a_pause_holds_in_every_delivery_order(
    world: EmulatedWorld, order: tuple[int, ...]
) -> None:
    subscription_id, paid = started(world)
    settle(world, [paid, *world.pause(subscription_id)], order)
    assert len(world.groups(subscription_id)) == 1
    assert statuses(world, subscription_id) == ["disabled"]


@pytest.mark.parametrize("order", list(itertools.permutations(range(5))))
def test_pause_then_resume_converges_in_every_delivery_order(
    world: EmulatedWorld, order: tuple[int, ...]
) -> None:
    """The resume's own `updated` is left out (it reads like `resumed`: same state),
    which keeps this at 5! orders."""
    subscription_id, paid = started(world)
    pause = world.pause(subscription_id)
    world.advance(30 * 86400)
    resumed, _, resume_paid = world.resume(subscription_id)
    settle(world, [paid, *pause, resumed, resume_paid], order)
    assert statuses(world, subscription_id) == ["active"]
    _, end = period(world, subscription_id)
    assert expiry(world, subscription_id) >= end - timedelta(days=1)  # type: ignore[operator]


def test_pause_ignore_keeps_the_licence_and_says_so() -> None:
    world = make_world(offerings={"PRO-1Y": {}}, policy=LifecyclePolicy(pause="ignore"))
    try:
        subscription_id, paid = started(world)
        assert world.deliver(paid).status == 200
        paused, update = world.pause(subscription_id)
        response = world.deliver(paused)
        assert response.outcome.kind is OutcomeKind.IGNORED
        response = world.deliver(update)
        assert response.outcome.kind is OutcomeKind.IGNORED, detail(response)
        assert "pause='ignore'" in response.outcome.reason
        assert statuses(world, subscription_id) == ["active"]
    finally:
        world.close()


# -- cancel_at_period_end (with the emulator's stories: Stripe's state read fresh) ------------


def test_cancel_at_period_end_changes_nothing_until_the_deletion(world: EmulatedWorld) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    scheduled = world.schedule_cancel(subscription_id)
    response = world.deliver(scheduled)
    assert response.outcome.kind is OutcomeKind.DUPLICATE, detail(response)
    assert "cancel at the period's end" in response.outcome.reason
    taken_back = world.schedule_cancel(subscription_id, at_period_end=False)
    assert world.deliver(taken_back).outcome.kind is OutcomeKind.DUPLICATE
    assert statuses(world, subscription_id) == ["active"]
    assert world.deliver(world.renew(subscription_id)).outcome.kind is OutcomeKind.RENEWED
    again = world.schedule_cancel(subscription_id)
    assert world.deliver(again).status == 200
    deleted = world.end_period(subscription_id)
    response = world.deliver(deleted)
    assert response.outcome.kind is OutcomeKind.REVOKED, detail(response)
    assert statuses(world, subscription_id) == ["disabled"]
    for late in (scheduled, taken_back, again):  # old updates never bring it back
        assert world.deliver(late).status == 200
    assert statuses(world, subscription_id) == ["disabled"]


def test_reconcile_catches_up_a_lost_status_change(world: EmulatedWorld) -> None:
    """No invoice comes for an `unpaid` or `paused` subscription, so nothing else would
    heal a lost one; caught up late, it reads Stripe's state as it is then."""
    from zentitle_stripe import ops

    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    world.fail_renewal(subscription_id)  # its webhooks are lost
    world.set_status(subscription_id, "unpaid")
    report = ops.reconcile(
        world.provisioner,
        world.stripe,
        world.zentitle,
        since_seconds=800 * 86400,
        now=world.stripe_emulator.now,
        check_drift=False,
    )
    processed = [(e.type, e.outcome) for e in report.events if e.action == "processed"]
    assert processed == [
        ("customer.subscription.updated", "revoked"),
        ("customer.subscription.updated", "duplicate"),
    ]
    assert statuses(world, subscription_id) == ["disabled"]


def test_a_renewal_paid_while_paused_is_covered_when_enabled_again(
    world: EmulatedWorld,
) -> None:
    """The renewal's invoice arrives after the pause (renewing nothing: the licence is
    off); enabled again, the licence still covers the period that was paid."""
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    renewal = world.renew(subscription_id)
    _, paid_end = period(world, subscription_id)
    paused, _ = world.pause(subscription_id)
    for event in (paused, renewal):
        assert world.deliver(event).status == 200
    assert statuses(world, subscription_id) == ["disabled"]
    resumed, _, _ = world.resume(subscription_id)  # its invoice is not delivered yet
    response = world.deliver(resumed)
    assert response.outcome.kind is OutcomeKind.UPDATED, detail(response)
    assert statuses(world, subscription_id) == ["active"]
    assert abs(expiry(world, subscription_id) - paid_end) <= timedelta(days=1)  # type: ignore[operator]


def test_drift_finds_a_live_licence_of_an_unpaid_subscription(world: EmulatedWorld) -> None:
    from zentitle_stripe import ops

    world.offering("GRACE-1Y", grace_days=30)  # Zentitle2's own grace keeps it live
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("GRACE-1Y"), 1)])
    assert world.deliver(paid).status == 200
    world.fail_renewal(subscription_id)
    world.set_status(subscription_id, "unpaid")  # both updates lost, past reconcile's window
    (drift,) = ops.find_drift(world.stripe, world.zentitle, world.storage)
    assert (drift.kind, drift.subscription_id) == ("orphaned", subscription_id)
    assert "is unpaid" in drift.detail
    assert "customer.subscription.updated" in drift.fix
