"""Refunds and disputes: `charge.refunded` (in full) and `charge.dispute.created`.

[`LifecyclePolicy.refund`][zentitle_stripe.policy.LifecyclePolicy] and `.dispute` say
what they do: `ignore` (the default) answers `ignored` and logs it, with no remote call;
`disable` follows the charge to the subscription whose invoice it paid and disables the
subscription's licence. A partial refund does nothing (logged).

A charge names no subscription, and since basil not even its invoice, so the link is
followed fresh from Stripe: the Charge (its refund state now, so a refund that failed
meanwhile disables nothing), the invoice (`charge.invoice` where the payload still has
it, else the PaymentIntent's invoice payment, `GET /v1/invoice_payments`), then the
invoice's subscription. A charge that paid no subscription invoice changes nothing.

Disabling places a *hold* in storage (`charge-hold:{subscription}`, written before
anything is disabled): while it stands, no event of the subscription grants, renews or
re-enables anything ([`held_back`][zentitle_stripe.flows.charges.held_back], which every
flow that could give a licence back runs first), so a later paid invoice never silently
undoes the revocation, and a refund or dispute that arrives before the first payment is
provisioned makes that payment create nothing. The hold is lifted once someone enables
an entitlement of the group by hand (in Zentitle2, or `PATCH
/api/v1/entitlements/{id}/enable`): the next event finds a live entitlement, lifts it,
and the flows carry on (a renewal extends the licence again). Without a group there is
nothing to enable: `zentitle-stripe release SUBSCRIPTION` lifts it
([`release_hold`][zentitle_stripe.flows.charges.release_hold]), then `zentitle-stripe
replay` the first `invoice.paid`.
"""

from __future__ import annotations

import re

import attrs

from .._untrusted import shown
from ..catalogue import SWITCHED_OFF_ENTITLEMENT_STATUSES as _INACTIVE
from ..exceptions import InvalidPayloadError
from ..responses import Outcome, OutcomeKind
from ..storage import Storage
from ..stripe.charges import Charge, Dispute, parse_charge, parse_dispute
from ..stripe.events import StripeEvent
from .cancellation import _find_orphan_group, disable_group
from .context import FlowContext, logger
from .markers import group_marker

__all__ = [
    "CHARGE_EVENTS",
    "DISPUTE_EVENT",
    "REFUND_EVENT",
    "Hold",
    "charge_event",
    "charge_ignored",
    "held_back",
    "held_for",
    "release_hold",
]

REFUND_EVENT = "charge.refunded"
DISPUTE_EVENT = "charge.dispute.created"
CHARGE_EVENTS = frozenset({REFUND_EVENT, DISPUTE_EVENT})
"""Handled whatever the policy, so an `ignore` is answered as such, not as an unknown type."""
_SETTINGS = {REFUND_EVENT: "ZENTITLE_STRIPE_ON_REFUND", DISPUTE_EVENT: "ZENTITLE_STRIPE_ON_DISPUTE"}
RELEASED = "released"
"""The value of a lifted hold (the marker table has no delete)."""


@attrs.frozen
class Hold:
    """The refund or dispute that revoked a subscription's licence, if any.

    Stored as `pending|reason` when placed, `disabled|reason` once the group is confirmed
    disabled: only then can a live entitlement mean one enabled by hand.
    """

    subscription_id: str
    reason: str | None = None
    """What revoked it ("charge ch_1 was refunded in full (invoice in_1)"); `None`: no hold."""
    confirmed: bool = False

    @staticmethod
    def key(subscription_id: str) -> str:
        return f"charge-hold:{subscription_id}"

    @classmethod
    def read(cls, ctx: FlowContext, subscription_id: str) -> Hold:
        value = ctx.storage.get_customer_link(cls.key(subscription_id))
        if value is None or value == RELEASED:
            return cls(subscription_id)
        phase, _, reason = value.partition("|")
        return cls(subscription_id, reason or value, confirmed=phase == "disabled")

    @property
    def held(self) -> bool:
        return self.reason is not None

    def place(self, ctx: FlowContext, reason: str, *, confirmed: bool = False) -> Hold:
        ctx.fence.check()
        phase = "disabled" if confirmed else "pending"
        ctx.storage.put_customer_link(self.key(self.subscription_id), f"{phase}|{reason}")
        return attrs.evolve(self, reason=reason, confirmed=confirmed)

    def confirm(self, ctx: FlowContext) -> Hold:
        """Record that the group is disabled (a write only when it was not)."""
        assert self.reason is not None
        return self if self.confirmed else self.place(ctx, self.reason, confirmed=True)

    def lift(self, ctx: FlowContext) -> Hold:
        if self.held:
            ctx.fence.check()
            ctx.storage.put_customer_link(self.key(self.subscription_id), RELEASED)
        return attrs.evolve(self, reason=None, confirmed=False)


def held_for(storage: Storage, subscription_id: str) -> str | None:
    """Why `subscription_id` is held (a refund or dispute disabled it), `None` if not."""
    value = storage.get_customer_link(Hold.key(subscription_id))
    if value is None or value == RELEASED:
        return None
    return value.partition("|")[2] or value


def release_hold(storage: Storage, subscription_id: str) -> str | None:
    """Lift the hold of `subscription_id` by hand (`zentitle-stripe release`: a dispute
    won, a refund reversed); what it was for, or `None` when there was none. It enables
    nothing: enable the entitlements in Zentitle2, or replay the first `invoice.paid`
    when the hold kept it from creating any."""
    reason = held_for(storage, subscription_id)
    if reason is not None:
        storage.put_customer_link(Hold.key(subscription_id), RELEASED)
    return reason


def held_back(ctx: FlowContext, subscription_id: str) -> Outcome | None:
    """The outcome for an event of a held subscription (nothing is done), or `None`
    when the flows may go on: no hold, or one lifted by an entitlement enabled by hand.

    Run under the subscription's lock, before any flow that could create, renew or
    enable a licence.
    """
    hold = Hold.read(ctx, subscription_id)
    if not hold.held:
        return None
    state = ctx.subscription_state(subscription_id)
    if hold.confirmed and state.group_id is not None:
        group = ctx.zentitle.get_entitlement_group(state.group_id)
        if any(e.status not in _INACTIVE for e in group.entitlements):
            hold.lift(ctx)
            logger.warning(
                "subscription %s was held (%s) but entitlement group %s has a live "
                "entitlement again (enabled by hand): the hold is lifted",
                subscription_id,
                hold.reason,
                state.group_id,
            )
            return None
    return Outcome.ignored(
        f"subscription {subscription_id} is held: {hold.reason}; no payment or change "
        "grants, renews or re-enables its licence until an entitlement is enabled again "
        "in Zentitle2 (see the lifecycle docs)"
    )


def charge_ignored(ctx: FlowContext, event: StripeEvent) -> Outcome | None:
    """The logged `ignored` outcome of a refund or dispute the policy ignores, with no
    remote call; `None` when the policy disables."""
    action = ctx.policy.refund if event.type == REFUND_EVENT else ctx.policy.dispute
    if action != "ignore":
        return None
    what = "a refund" if event.type == REFUND_EVENT else "a dispute"
    object_id = event.object.get("id")
    plain = isinstance(object_id, str) and re.fullmatch(r"\w{1,64}", object_id, re.ASCII)
    named = f" ({object_id})" if plain else ""  # only a plain id goes into the record
    reason = (
        f"{what}{named}: {_SETTINGS[event.type]}=ignore (the default) keeps the licence; "
        "set it to disable to revoke licences on refunds and disputes"
    )
    logger.info("event %s: %s", event.id, reason)
    return Outcome.ignored(reason)


@attrs.frozen
class _Target:
    subscription_id: str
    customer_id: str | None
    reason: str


def charge_event(ctx: FlowContext, event: StripeEvent, owner: str) -> Outcome:
    """A refund or dispute, per the policy; the revocation runs under the lock."""
    ignored = charge_ignored(ctx, event)
    if ignored is not None:
        return ignored
    if event.type == REFUND_EVENT:
        target = _refunded(ctx, parse_charge(event.object))
    else:
        target = _disputed(ctx, parse_dispute(event.object))
    if isinstance(target, Outcome):
        logger.info("event %s: %s", event.id, target.reason)
        return target
    with ctx.lock(f"subscription:{target.subscription_id}", owner):
        return _revoke(ctx, target, _SETTINGS[event.type])


def _refunded(ctx: FlowContext, charge: Charge) -> _Target | Outcome:
    if charge.refund_state == "partial":
        return _partial(charge, "")  # a full refund sends its own event
    fresh = ctx.stripe.retrieve_charge(charge.id)
    state = fresh.refund_state
    if state == "partial":
        return _partial(fresh, " now (a refund failed or was reversed since)")
    if state == "unknown":
        raise InvalidPayloadError(
            f"charge {charge.id}: neither the event nor Stripe says how much of it is "
            "refunded (no refunded, amount or amount_refunded)"
        )
    invoice_id = charge.invoice_id or fresh.invoice_id
    payment_intent = fresh.payment_intent_id or charge.payment_intent_id
    return _target(ctx, charge.id, invoice_id, payment_intent, "was refunded in full")


def _disputed(ctx: FlowContext, dispute: Dispute) -> _Target | Outcome:
    invoice_id = None
    payment_intent = dispute.payment_intent_id
    charge_id = dispute.charge_id
    if payment_intent is None and charge_id is not None:
        fresh = ctx.stripe.retrieve_charge(charge_id)
        invoice_id, payment_intent = fresh.invoice_id, fresh.payment_intent_id
    paid_with = charge_id or payment_intent or dispute.id
    reason = shown(dispute.reason, 30) if dispute.reason else "not given"
    what = f"is disputed (dispute {dispute.id}, reason {reason})"
    return _target(ctx, paid_with, invoice_id, payment_intent, what)


def _partial(charge: Charge, when: str) -> Outcome:
    return Outcome.ignored(
        f"charge {charge.id} is only partly refunded{when} ({charge.amount_refunded} of "
        f"{charge.amount_captured or charge.amount}): the licence is kept"
    )


def _target(
    ctx: FlowContext,
    charge_id: str,
    invoice_id: str | None,
    payment_intent: str | None,
    what: str,
) -> _Target | Outcome:
    """Follow the charge to its invoice (fresh), then to the invoice's subscription."""
    if invoice_id is None and payment_intent is not None:
        invoice_id = ctx.stripe.invoice_of_payment_intent(payment_intent)
    if invoice_id is None:
        return Outcome.ignored(
            f"charge {charge_id} {what}, but it paid no invoice (no invoice payment names "
            "its payment intent), so no licence is affected"
        )
    invoice = ctx.stripe.retrieve_invoice(invoice_id)
    if invoice.subscription_id is None:
        return Outcome.ignored(
            f"charge {charge_id} {what}, but invoice {invoice_id} bills no subscription, so "
            "no licence is affected"
        )
    return _Target(
        invoice.subscription_id,
        invoice.customer_id,
        f"charge {charge_id} {what} (invoice {invoice_id})",
    )


def _revoke(ctx: FlowContext, target: _Target, setting: str) -> Outcome:
    """Place the hold first (a payment processed after a crash here grants nothing),
    then disable what is live."""
    subscription_id = target.subscription_id
    hold = Hold.read(ctx, subscription_id)
    first = not hold.held
    if first:
        hold = hold.place(ctx, target.reason)
    state = ctx.subscription_state(subscription_id)
    if state.group_id is None:
        group = _find_orphan_group(ctx, subscription_id, target.customer_id)
        if group is not None:
            state = ctx.save(
                attrs.evolve(
                    state, group_id=group.id, activation_codes=tuple(group.activation_codes)
                )
            )
    if state.group_id is None:
        group_marker(ctx, subscription_id).wait_for(ctx)  # a group that may still land
        return Outcome(
            OutcomeKind.REVOKED if first else OutcomeKind.DUPLICATE,
            f"subscription {subscription_id} has no licence yet and is now held ({setting}="
            f"disable): {hold.reason}, so a later payment creates none",
        )
    # A hold not confirmed yet (placed just now, or by an attempt that may have disabled
    # the licence and lost the answer) is a revocation this attempt finishes: `revoked`.
    finishing = not hold.confirmed
    disabled = disable_group(ctx, state)
    hold.confirm(ctx)
    if not disabled and not finishing:
        return Outcome(
            OutcomeKind.DUPLICATE,
            f"subscription {subscription_id} is already held and its licence disabled: "
            f"{hold.reason}",
        )
    return Outcome(
        OutcomeKind.REVOKED,
        f"disabled {disabled} entitlement(s) of group {state.group_id} of subscription "
        f"{subscription_id} ({setting}=disable): {target.reason}; a later payment does not "
        "re-enable them",
    )
