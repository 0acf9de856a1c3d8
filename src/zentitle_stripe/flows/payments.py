"""What a payment does once its flow is chosen, and how the steps of one delivery are
reported together.

[`paid_period`][zentitle_stripe.flows.payments.paid_period] is the renewal path of
`invoice.paid` (`subscription_cycle`): items reconciled, a `past_due` grace ended
exactly, the period covered, a trial ended.
"""

from __future__ import annotations

import attrs

from ..responses import Outcome, OutcomeKind
from ..storage import SubscriptionState
from ..stripe.events import Invoice, Subscription
from ..zentitle.models import Entitlement
from .context import FlowContext, day
from .items import desired_items, reconcile_items
from .renewal import renew
from .status import Decision, cover_after_grace

__all__ = ["combined", "paid_period", "status_notes"]


def paid_period(
    ctx: FlowContext,
    invoice: Invoice,
    state: SubscriptionState,
    fresh: Subscription | None,
) -> Outcome:
    """A paid period: reconcile the items, end a grace exactly, renew, end a trial.

    `fresh` is the Subscription when the delivery has read it already (else it is read).
    """
    subscription_id = state.subscription_id
    assert state.group_id is not None
    # Every renewal reconciles the items too, so a missed update heals here.
    fresh = fresh or ctx.stripe.retrieve_subscription(subscription_id)
    group = ctx.group_with_entitlements(state.group_id)
    reads: dict[str, Entitlement] = {}
    if reconcile_items(ctx, group, desired_items(ctx, fresh), reads).stale:
        group = ctx.group_with_entitlements(state.group_id)  # statuses changed
    period_end = invoice.period_end
    covered = 0
    if state.grace_until is not None and period_end is not None:
        covered = cover_after_grace(ctx, group, period_end, reads)
    outcome = renew(ctx, invoice, state, group=group, reads=reads)
    state = ctx.subscription_state(subscription_id)
    ended_grace = period_end is not None and period_end > (state.grace_until or period_end)
    owed = state.owed_until
    if state.suspended is not None and period_end is not None:
        owed = max(owed or 0, period_end)  # renewed nothing: made up for once enabled
    if state.trial_until is not None or ended_grace or owed != state.owed_until:
        # Paid: the licence is no longer a trial's, nor (past it) a grace's.
        grace_until = None if ended_grace else state.grace_until
        ctx.save(attrs.evolve(state, trial_until=None, grace_until=grace_until, owed_until=owed))
    if covered and outcome.kind is OutcomeKind.DUPLICATE:
        until = day(period_end or 0)
        return Outcome(
            OutcomeKind.RENEWED,
            f"set {covered} entitlement(s) of group {state.group_id} to expire {until}, "
            f"the end of the period invoice {invoice.id} paid after a failed renewal",
        )
    return outcome


def combined(main: Outcome, *others: Outcome | None) -> Outcome:
    """`main`, with what the other steps changed appended. Their kind wins over a `main`
    that changed nothing, and a revocation wins over all: a first payment provisioned and
    disabled at once (the subscription is `unpaid`) is reported `revoked`, so an outcome
    hook does not send activation codes for a licence that is off."""
    changed = [o for o in others if o is not None and o.kind is not OutcomeKind.DUPLICATE]
    if not changed:
        return main
    reasons = [o.reason for o in changed]
    if main.kind not in (OutcomeKind.DUPLICATE, OutcomeKind.IGNORED):
        reasons.insert(0, main.reason)
    kinds = [main.kind, *(o.kind for o in changed)]
    if OutcomeKind.REVOKED in kinds:
        kind = OutcomeKind.REVOKED
    elif main.kind in (OutcomeKind.DUPLICATE, OutcomeKind.IGNORED):
        kind = changed[0].kind
    else:
        kind = main.kind
    return Outcome(kind, "; ".join(reasons))


def status_notes(fresh: Subscription, decision: Decision) -> str:
    """What the outcome should also say about the subscription's state."""
    notes = []
    if decision.action == "live" and fresh.status == "paused":
        notes.append(f"subscription {fresh.id} is {decision.reason}")
    if fresh.cancel_at_period_end:
        notes.append(
            f"subscription {fresh.id} is set to cancel at the period's end: nothing changes "
            "until then"
        )
    return "; ".join(notes)
