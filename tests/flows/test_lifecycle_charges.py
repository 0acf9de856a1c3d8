"""Refunds and disputes (`charge.refunded`, `charge.dispute.created`), per the policy, in
both payload generations: followed fresh from the charge to its invoice's subscription,
in every delivery order with the first payment and renewals, with duplicates and remote
failures; a later payment never silently undoes the revocation."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from tests.support import detail
from zentitle_stripe import OutcomeKind, ops
from zentitle_stripe.flows import Provisioning
from zentitle_stripe.flows.charges import Hold, release_hold
from zentitle_stripe.policy import LifecyclePolicy
from zentitle_stripe.testing import (
    EmulatedWorld,
    charge_dispute_created_event,
    charge_refunded_event,
    make_event,
)

STRICT = LifecyclePolicy(refund="disable", dispute="disable")
WORLD: dict[str, Any] = {"offerings": {"PRO-1Y": {"seats": 1}}, "generations": True}
pytestmark = pytest.mark.world(**WORLD, policy=STRICT)
DEFAULT_POLICY_WORLD = pytest.mark.world(**WORLD, policy=LifecyclePolicy())
"""A test's own marker replaces the module's, so it repeats the module's options."""


def started(world: EmulatedWorld) -> tuple[str, dict[str, Any]]:
    return world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])


def flows(world: EmulatedWorld) -> Provisioning:
    processor = world.provisioner.processor
    assert isinstance(processor, Provisioning)
    return processor


def invoice_of(event: dict[str, Any]) -> str:
    return str(event["data"]["object"]["id"])


def live(world: EmulatedWorld, subscription_id: str) -> int:
    return len(world.active_entitlements(subscription_id))


def revocation(world: EmulatedWorld, kind: str, invoice_id: str) -> dict[str, Any]:
    emulator = world.stripe_emulator
    return (
        emulator.refund_invoice(invoice_id)
        if kind == "refund"
        else emulator.dispute_invoice(invoice_id)
    )


# -- the policy ---------------------------------------------------------------------------


@DEFAULT_POLICY_WORLD
@pytest.mark.parametrize("kind", ["refund", "dispute"])
def test_the_default_ignores_and_says_so_without_a_remote_call(
    world: EmulatedWorld, kind: str
) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    event = revocation(world, kind, invoice_of(paid))
    world.stripe_emulator.reset_requests()

    response = world.deliver(event)

    assert response.outcome.kind is OutcomeKind.IGNORED, detail(response)
    setting = "ZENTITLE_STRIPE_ON_REFUND" if kind == "refund" else "ZENTITLE_STRIPE_ON_DISPUTE"
    assert f"{setting}=ignore" in detail(response)
    assert live(world, subscription_id) == 1
    assert world.stripe_emulator.requests == []


@pytest.mark.parametrize("kind", ["refund", "dispute"])
def test_a_full_refund_or_a_dispute_disables_and_a_duplicate_changes_nothing(
    world: EmulatedWorld, kind: str
) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    event = revocation(world, kind, invoice_of(paid))

    response = world.deliver(event)

    assert response.outcome.kind is OutcomeKind.REVOKED, detail(response)
    assert invoice_of(paid) in detail(response)
    assert "=disable" in detail(response)
    assert live(world, subscription_id) == 0
    assert world.deliver(event).outcome.kind is OutcomeKind.DUPLICATE  # same event id
    again = dict(event, id="evt_redelivered_as_new")
    assert world.deliver(again).outcome.kind is OutcomeKind.DUPLICATE  # same business key


def test_a_partial_refund_does_nothing_and_the_full_one_disables(world: EmulatedWorld) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    partial = world.stripe_emulator.refund_invoice(invoice_of(paid), amount=1000)
    world.stripe_emulator.reset_requests()

    response = world.deliver(partial)

    assert response.outcome.kind is OutcomeKind.IGNORED, detail(response)
    assert "only partly refunded" in detail(response)
    assert world.stripe_emulator.requests == []  # the payload says partial: no call
    assert live(world, subscription_id) == 1
    rest = world.stripe_emulator.refund_invoice(invoice_of(paid))
    assert world.deliver(rest).outcome.kind is OutcomeKind.REVOKED
    assert live(world, subscription_id) == 0


def test_a_refund_reversed_since_is_read_fresh_and_disables_nothing(world: EmulatedWorld) -> None:
    """The event says "refunded in full", Stripe now says otherwise: Stripe wins."""
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    charge_id = world.stripe_emulator.charge_of(invoice_of(paid))
    stale = charge_refunded_event(
        charge_id=charge_id,
        invoice_id=invoice_of(paid),
        api_version=world.stripe_emulator.api_version,
    )
    response = world.deliver(stale)
    assert response.outcome.kind is OutcomeKind.IGNORED, detail(response)
    assert "only partly refunded now" in detail(response)
    assert live(world, subscription_id) == 1


# -- a later payment does not re-enable ----------------------------------------------------


@pytest.mark.parametrize("kind", ["refund", "dispute"])
def test_a_renewal_after_the_revocation_grants_nothing_until_enabled_by_hand(
    world: EmulatedWorld, kind: str
) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    assert world.deliver(revocation(world, kind, invoice_of(paid))).status == 200

    renewal = world.renew(subscription_id)
    response = world.deliver(renewal)

    assert response.outcome.kind is OutcomeKind.IGNORED, detail(response)
    assert "is held" in detail(response)
    assert live(world, subscription_id) == 0
    # The operator gives the licence back by hand: the hold is lifted, renewals extend.
    (entitlement,) = world.entitlements(subscription_id)
    world.zentitle.enable_entitlement(entitlement.id)
    replayed = world.provisioner.replay(renewal["id"])  # the period answered `held`
    assert replayed.outcome.kind is OutcomeKind.RENEWED, detail(replayed)
    following = world.renew(subscription_id)
    assert world.deliver(following).outcome.kind is OutcomeKind.RENEWED
    assert not Hold.read(flows(world), subscription_id).held
    assert live(world, subscription_id) == 1


@pytest.mark.parametrize(
    "event_type", ["customer.subscription.updated", "customer.subscription.resumed"]
)
def test_no_subscription_event_re_enables_a_held_licence(
    world: EmulatedWorld, event_type: str
) -> None:
    """Whatever flow could enable a licence (a resume, a status that is fine again), the
    hold comes first."""
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    assert world.deliver(world.stripe_emulator.dispute_invoice(invoice_of(paid))).status == 200
    subscription = world.stripe_emulator.subscription(subscription_id)
    event = make_event(event_type, subscription, api_version=world.stripe_emulator.api_version)

    response = world.deliver(event)

    assert response.status == 200, detail(response)
    assert response.outcome.kind is OutcomeKind.IGNORED
    assert live(world, subscription_id) == 0


def test_reconcile_reports_no_drift_for_a_held_subscription(world: EmulatedWorld) -> None:
    """Disabled on purpose, so `reconcile` does not call it unlicensed, until released."""
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    assert world.deliver(world.stripe_emulator.refund_invoice(invoice_of(paid))).status == 200

    assert ops.find_drift(world.stripe, world.zentitle, world.storage) == []
    assert release_hold(world.storage, subscription_id) is not None
    [drift] = ops.find_drift(world.stripe, world.zentitle, world.storage)
    assert (drift.kind, drift.subscription_id) == ("unlicensed", subscription_id)


def test_reconcile_catches_up_a_lost_refund_or_dispute(world: EmulatedWorld) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    world.stripe_emulator.refund_invoice(invoice_of(paid))  # its webhook is lost

    report = ops.reconcile(
        world.provisioner, world.stripe, world.zentitle, since_seconds=86400, check_drift=False
    )

    processed = [e for e in report.events if e.action == "processed"]
    assert [(e.type, e.outcome) for e in processed] == [("charge.refunded", "revoked")]
    assert live(world, subscription_id) == 0


@DEFAULT_POLICY_WORLD
def test_reconcile_leaves_refunds_alone_when_the_policy_ignores_them(
    world: EmulatedWorld,
) -> None:
    _, paid = started(world)
    assert world.deliver(paid).status == 200
    world.stripe_emulator.refund_invoice(invoice_of(paid))
    report = ops.reconcile(
        world.provisioner, world.stripe, world.zentitle, since_seconds=86400, check_drift=False
    )
    assert {e.type for e in report.events} == {"invoice.paid"}


def test_a_refund_of_a_renewal_invoice_disables(world: EmulatedWorld) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    renewal = world.renew(subscription_id)
    assert world.deliver(renewal).outcome.kind is OutcomeKind.RENEWED

    response = world.deliver(world.stripe_emulator.refund_invoice(invoice_of(renewal)))

    assert response.outcome.kind is OutcomeKind.REVOKED, detail(response)
    assert invoice_of(renewal) in detail(response)
    assert live(world, subscription_id) == 0


@pytest.mark.parametrize("revoked", ["first", "renewal"])
@pytest.mark.parametrize("kind", ["refund", "dispute"])
@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_every_delivery_order_with_the_first_payment_and_a_renewal(
    world: EmulatedWorld, kind: str, order: tuple[int, ...], revoked: str
) -> None:
    """The first payment, a renewal and a revocation of either invoice, in any order
    (each answered 503 is retried, as Stripe does): never a live licence at the end."""
    subscription_id, paid = started(world)
    renewal = world.renew(subscription_id)
    target = paid if revoked == "first" else renewal
    events = [paid, renewal, revocation(world, kind, invoice_of(target))]
    for index in order:
        world.deliver(events[index])
    for event in events:
        assert world.deliver(event).status == 200
    assert live(world, subscription_id) == 0
    assert len(world.groups(subscription_id)) <= 1


@pytest.mark.parametrize("kind", ["refund", "dispute"])
def test_a_revocation_before_the_first_payment_makes_it_create_nothing(
    world: EmulatedWorld, kind: str
) -> None:
    subscription_id, paid = started(world)

    first = world.deliver(revocation(world, kind, invoice_of(paid)))
    assert first.outcome.kind is OutcomeKind.REVOKED, detail(first)
    assert "no licence yet" in detail(first)

    response = world.deliver(paid)
    assert response.outcome.kind is OutcomeKind.IGNORED, detail(response)
    assert world.groups(subscription_id) == []
    # Lifted by hand (e.g. a dispute won), a replay of the payment provisions it.
    assert release_hold(world.storage, subscription_id) is not None
    assert release_hold(world.storage, subscription_id) is None
    assert world.provisioner.replay(paid["id"]).outcome.kind is OutcomeKind.PROVISIONED


def test_a_cancelled_subscription_refunded_afterwards_stays_off(world: EmulatedWorld) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    assert world.deliver(world.cancel(subscription_id)).status == 200
    response = world.deliver(world.stripe_emulator.refund_invoice(invoice_of(paid)))
    assert response.status == 200, detail(response)
    assert live(world, subscription_id) == 0


# -- what a charge may not lead to ------------------------------------------------------


def test_a_charge_that_paid_no_invoice_changes_nothing(world: EmulatedWorld) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    charge_id = world.stripe_emulator.charge_of(invoice_of(paid))
    world.stripe_emulator.forget_invoice_payments()
    event = charge_dispute_created_event(charge_id=charge_id, payment_intent_id="pi_elsewhere")
    response = world.deliver(event)
    assert response.outcome.kind is OutcomeKind.IGNORED, detail(response)
    assert "paid no invoice" in detail(response)
    assert live(world, subscription_id) == 1


def test_a_one_off_invoice_charge_changes_nothing(world: EmulatedWorld) -> None:
    customer = world.customer()
    one_off = world.stripe_emulator.one_time_payment(customer, world.price("PRO-1Y"))
    assert world.deliver(one_off).status == 200
    response = world.deliver(world.stripe_emulator.refund_invoice(invoice_of(one_off)))
    assert response.outcome.kind is OutcomeKind.IGNORED, detail(response)
    assert "bills no subscription" in detail(response)


def test_a_dispute_naming_nothing_is_a_replayable_422(world: EmulatedWorld) -> None:
    event = charge_dispute_created_event(charge_id="", payment_intent_id=None)
    response = world.deliver(event)
    assert response.status == 422, detail(response)
    assert "names neither a charge nor a payment intent" in detail(response)


@DEFAULT_POLICY_WORLD
def test_an_ignored_event_records_only_a_plain_id(world: EmulatedWorld) -> None:
    event = charge_refunded_event(charge_id="ch_\x00\u202e" + "x" * 300)
    response = world.deliver(event)
    assert response.outcome.kind is OutcomeKind.IGNORED
    assert response.outcome.reason.startswith("a refund: ZENTITLE_STRIPE_ON_REFUND=ignore")


def test_a_dispute_reason_is_recorded_escaped_and_short(world: EmulatedWorld) -> None:
    _, paid = started(world)
    assert world.deliver(paid).status == 200
    charge_id = world.stripe_emulator.charge_of(invoice_of(paid))
    payment_intent = flows(world).stripe.retrieve_charge(charge_id).payment_intent_id
    event = charge_dispute_created_event(
        charge_id=charge_id, payment_intent_id=payment_intent, reason="fraud\u202e" + "y" * 80
    )
    response = world.deliver(event)
    assert response.outcome.kind is OutcomeKind.REVOKED, detail(response)
    assert "\u202e" not in response.outcome.reason
    assert "'fraud\\u202eyyy" in response.outcome.reason
    assert "y" * 40 not in response.outcome.reason


def test_a_dispute_without_its_payment_intent_is_traced_through_the_charge(
    world: EmulatedWorld,
) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    charge_id = world.stripe_emulator.charge_of(invoice_of(paid))
    event = charge_dispute_created_event(charge_id=charge_id, payment_intent_id=None)
    assert world.deliver(event).outcome.kind is OutcomeKind.REVOKED
    assert live(world, subscription_id) == 0


# -- remote failures ----------------------------------------------------------------------


@pytest.mark.parametrize("path", [r"/v1/charges/", r"/v1/invoice_payments", r"/v1/invoices/in_"])
@pytest.mark.parametrize("fault", ["429", "503", "timeout", "bad_body"])
def test_a_stripe_failure_on_the_way_is_retried_never_recorded_done(
    world: EmulatedWorld, path: str, fault: Any
) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    event = world.stripe_emulator.refund_invoice(invoice_of(paid))
    world.stripe_emulator.inject_fault("GET", path, fault)

    failed = world.deliver(event)

    if path == r"/v1/invoice_payments" and world.stripe_emulator.api_version < "2025-03-31":
        assert failed.outcome.kind is OutcomeKind.REVOKED  # the old payload names the invoice
        return
    assert failed.status >= 500, detail(failed)
    assert live(world, subscription_id) == 1
    assert world.deliver(event).outcome.kind is OutcomeKind.REVOKED
    assert live(world, subscription_id) == 0


@pytest.mark.parametrize("fault", ["503", "timeout", "lost_response"])
def test_a_zentitle_failure_while_disabling_is_retried(world: EmulatedWorld, fault: Any) -> None:
    subscription_id, paid = started(world)
    assert world.deliver(paid).status == 200
    event = world.stripe_emulator.dispute_invoice(invoice_of(paid))
    world.zentitle_emulator.inject_fault("PATCH", r"/disable", fault, times=10)

    failed = world.deliver(event)

    assert failed.status >= 500, detail(failed)
    world.zentitle_emulator.clear_faults()
    # The hold is placed first: a payment in between grants nothing.
    assert world.deliver(world.renew(subscription_id)).outcome.kind is OutcomeKind.IGNORED
    assert world.deliver(event).status == 200
    assert live(world, subscription_id) == 0


# -- the remote-call budget (docs/benchmarks.md) ------------------------------------------


def _route(path: str) -> str:
    """A Stripe request's route, ids left out: `/v1/charges/`, `/v1/invoice_payments`..."""
    return re.sub(r"/(ch|in)_\w+$", "/", path)


@pytest.mark.parametrize("kind", ["refund", "dispute"])
def test_the_call_budget_of_a_revocation(world: EmulatedWorld, kind: str) -> None:
    """Stripe: the charge (refunds only), the invoice payment where the charge no longer
    names its invoice, the invoice; Zentitle2: the group, then one disable each; a
    renewal while held reads the group only."""
    world.zentitle_emulator.token_lifetime = 10 * 366 * 24 * 3600  # a renewal moves a year
    world.offering("ADDON-1Y")
    subscription_id, paid = world.subscribe(
        world.customer(), [(world.price("PRO-1Y"), 1), (world.price("ADDON-1Y"), 1)]
    )
    assert world.deliver(paid).status == 200
    event = revocation(world, kind, invoice_of(paid))
    stripe, zentitle = world.stripe_emulator, world.zentitle_emulator
    stripe.reset_requests()
    zentitle.reset_requests()

    assert world.deliver(event).outcome.kind is OutcomeKind.REVOKED

    names_its_invoice = kind == "refund" and stripe.api_version < "2025-03-31"
    expected = ["/v1/charges/"] if kind == "refund" else []
    expected += [] if names_its_invoice else ["/v1/invoice_payments"]
    expected += ["/v1/invoices/"]
    assert [_route(r.path) for r in stripe.requests] == expected
    assert all(r.method == "GET" for r in stripe.requests)
    assert [r.method for r in zentitle.requests] == ["GET", "PATCH", "PATCH"]
    zentitle.reset_requests()
    stripe.reset_requests()
    renewal = world.deliver(world.renew(subscription_id))
    assert renewal.outcome.kind is OutcomeKind.IGNORED
    assert [r.method for r in zentitle.requests] == ["GET"]
    assert stripe.requests == []
