"""Trials: a $0 first invoice of a subscription that is `trialing`.

With `trial="grant"` (the default) the trial invoice provisions the group as a first
payment does, then sets each entitlement's expiry to `trial_end`. Zentitle2's group
create takes no expiry (contract 2025-10-10: `skus`, `customerId`, `orderRefId`,
`activationCode` only; the plan gives the term), so the expiry is set right after with
`PATCH /api/v1/entitlements/{id}` `expiryDate`, the one call that sets an arbitrary
expiry and safe to repeat. `trial_until` is stored *before* that, so a retry finishes
it; a later trial extension (`trial_end` moved) moves the expiry too. The first paid
invoice (`subscription_cycle` at `trial_end`) then renews as any renewal does: from an
expiry at `trial_end`, one plan period reaches the paid period's end.

With `trial="wait"` the trial invoice grants nothing; the first paid invoice finds no
licence and provisions it as a first payment.

A trial that ends unpaid is a status moment (`past_due` right after `trial_end`,
`unpaid`, `incomplete_expired`, `canceled`, deletion): see
[`status`][zentitle_stripe.flows.status].
"""

from __future__ import annotations

from datetime import datetime, timezone

import attrs

from ..catalogue import SWITCHED_OFF_ENTITLEMENT_STATUSES as _INACTIVE
from ..responses import Outcome, OutcomeKind
from ..storage import SubscriptionState
from ..stripe.events import Invoice, Subscription
from .context import FlowContext, day
from .first_payment import provision

__all__ = ["EXPIRY_TOLERANCE", "follow_trial_end", "trial_invoice", "trial_of"]

EXPIRY_TOLERANCE = 60
"""An expiry this close to `trial_end` (seconds) is taken as set: Zentitle2 may round."""
_SLACK = 24 * 3600


def trial_of(ctx: FlowContext, invoice: Invoice) -> Subscription | None:
    """The Subscription, read fresh, when `invoice` is a trial's $0 first invoice.

    Only a `subscription_create` invoice that paid 0 (or does not say what it paid) costs
    the read; it is a trial when the subscription has a `trial_end` that the invoice's
    period does not go beyond (a 100%-off first period is not a trial).
    """
    if invoice.billing_reason != "subscription_create" or invoice.amount_paid not in (0, None):
        return None
    assert invoice.subscription_id is not None
    fresh = ctx.stripe.retrieve_subscription(invoice.subscription_id)
    end = invoice.period_end
    if fresh.trial_end is None or (end is not None and end > fresh.trial_end + _SLACK):
        return None
    return fresh


def trial_invoice(
    ctx: FlowContext, invoice: Invoice, state: SubscriptionState, fresh: Subscription, owner: str
) -> Outcome:
    """Grant the trial's licence until `trial_end` (or nothing, with `trial="wait"`)."""
    assert fresh.trial_end is not None
    subscription_id = state.subscription_id
    if ctx.policy.trial == "wait":
        return Outcome.ignored(
            f"invoice {invoice.id} starts a trial of subscription {subscription_id} ending "
            f"{day(fresh.trial_end)}; trial='wait' grants nothing until the first paid invoice"
        )
    if state.renewed_invoices or (state.group_id and state.trial_until is None):
        return Outcome(
            OutcomeKind.DUPLICATE,
            f"subscription {subscription_id} already has a paid licence; its trial invoice "
            f"{invoice.id} changes nothing",
        )
    if state.trial_until != fresh.trial_end:
        state = ctx.save(attrs.evolve(state, trial_until=fresh.trial_end))
    provisioned = None
    if state.group_id is None or not state.codes_written:
        state, provisioned = provision(ctx, invoice, state, owner)
        if state.group_id is None:
            return provisioned  # nothing to license
    changed, unbounded = set_trial_expiry(ctx, state)
    until = day(fresh.trial_end)
    clause = _unbounded(unbounded)
    extra = f"; {clause}" if clause else ""
    if provisioned is not None:
        expires = clause or f"the trial licence expires {until}"
        return Outcome(OutcomeKind.PROVISIONED, f"{provisioned.reason}; {expires}")
    if not changed:
        what = "has nothing more to set to" if unbounded else "already expires at"
        return Outcome(
            OutcomeKind.DUPLICATE,
            f"entitlement group {state.group_id} {what} the trial's end ({until}){extra}",
        )
    return Outcome(
        OutcomeKind.UPDATED,
        f"set {changed} entitlement(s) of group {state.group_id} to expire at the trial's "
        f"end ({until}){extra}",
    )


def _unbounded(count: int) -> str:
    """What an outcome says of the entitlements a trial's end cannot be set on."""
    if not count:
        return ""
    return (
        f"{count} entitlement(s) have no expiry to set to the trial's end (perpetual, or "
        "not activated yet: the term starts at activation), so only the subscription's "
        "status ends the trial for them"
    )


def set_trial_expiry(ctx: FlowContext, state: SubscriptionState) -> tuple[int, int]:
    """Set every live entitlement's expiry to `state.trial_until`: how many changed, and
    how many have no expiry to set (perpetual, or not activated yet)."""
    assert state.group_id is not None
    assert state.trial_until is not None
    target = datetime.fromtimestamp(state.trial_until, timezone.utc)
    changed = unbounded = 0
    for entitlement in ctx.group_with_entitlements(state.group_id).entitlements:
        if entitlement.status in _INACTIVE:
            continue
        current = ctx.zentitle.get_entitlement(entitlement.id)
        if current.license_type == "perpetual" or current.expiry_date is None:
            unbounded += 1  # never expires, or not activated: nothing a trial can bound
            continue
        if abs(current.expiry_date.timestamp() - state.trial_until) > EXPIRY_TOLERANCE:
            ctx.zentitle.update_entitlement(entitlement.id, expiry_date=target)
            changed += 1
    return changed, unbounded


def follow_trial_end(
    ctx: FlowContext, state: SubscriptionState, fresh: Subscription
) -> Outcome | None:
    """A trial moved (`trial_end` changed while `trialing`): move the licence's expiry."""
    if (
        fresh.status != "trialing"
        or fresh.trial_end is None
        or state.trial_until in (None, fresh.trial_end)
        or state.renewed_invoices
        or state.group_id is None
    ):
        return None
    state = ctx.save(attrs.evolve(state, trial_until=fresh.trial_end))
    changed, unbounded = set_trial_expiry(ctx, state)
    return Outcome(
        OutcomeKind.UPDATED,
        f"the trial of subscription {state.subscription_id} now ends "
        f"{day(fresh.trial_end)}: set {changed} entitlement(s) to expire then"
        + (f"; {_unbounded(unbounded)}" if unbounded else ""),
    )
