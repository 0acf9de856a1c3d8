"""Subscription status moments: payment trouble, pause, a trial that ends unpaid.

Every decision here is made on the Subscription as Stripe has it *now*
(`GET /v1/subscriptions/{id}`), never on the event's snapshot, so the delivery order of
`customer.subscription.updated`, `.paused`, `.resumed` and the invoices does not matter:
an old update delivered late converges on the newest state, as the items
reconciliation does. [`decide`][zentitle_stripe.flows.status.decide] maps that state
(and the [`LifecyclePolicy`][zentitle_stripe.policy.LifecyclePolicy]) to one of:

- *live*: `active`, `trialing`, and `paused` with `pause="ignore"`; a licence this module
  disabled is enabled again (`PATCH .../enable`);
- *grace*: `past_due` after a paid period: the licence is kept until the failed
  renewal (the current period's start) plus `past_due_grace`, by moving each live
  entitlement's expiry there (`PATCH /api/v1/entitlements/{id}` `expiryDate`, the only
  call that sets an arbitrary expiry). Zentitle2 itself ends the licence then, so no
  clock is read and an update processed late sets the same expiry. A grace of 0 is
  *suspend*;
- *suspend*: `unpaid`, `incomplete_expired`, `paused` with `pause="disable"`, and
  `past_due` when the period that failed is the first one after a trial (the trial
  ended unpaid): every live entitlement is disabled (`PATCH .../disable`) and the reason
  remembered in `SubscriptionState.suspended`, also before the licence exists, so a late
  first payment provisions it and disables it;
- *cancel*: `canceled`, as `customer.subscription.deleted` does.

Only a licence disabled here is enabled again: an entitlement an operator disabled, or
one items reconciliation disabled for a removed product, stays disabled.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal

import attrs

from ..catalogue import SWITCHED_OFF_ENTITLEMENT_STATUSES as _INACTIVE
from ..responses import Outcome, OutcomeKind
from ..storage import SubscriptionState
from ..stripe.events import Subscription
from .cancellation import disable_group, subscription_deleted
from .context import FlowContext, day, logger
from .items import desired_items
from .markers import DONE
from .renewal import COVERAGE_SLACK, renew_until_covered

if TYPE_CHECKING:
    from ..zentitle.models import Entitlement, EntitlementGroup

__all__ = [
    "TRIAL_SLACK",
    "Decision",
    "apply_decision",
    "cover_after_grace",
    "decide",
    "enable_group",
    "suspend",
]

Action = Literal["live", "grace", "suspend", "cancel"]

TRIAL_SLACK = 24 * 3600
"""A current period starting this close to `trial_end` is the first one after the
trial, so a `past_due` then means the trial ended without payment."""
_SUSPENDING = {
    "unpaid": "unpaid (payment retries exhausted)",
    "incomplete_expired": "incomplete_expired (first payment never completed)",
}
_DISABLE_SENT = "disable-sent"


@attrs.frozen
class Decision:
    """What the subscription's status asks of its licence; `until` for *grace*."""

    action: Action
    reason: str
    until: int | None = None


def decide(ctx: FlowContext, state: SubscriptionState, fresh: Subscription) -> Decision:
    """The decision for the subscription's current status (see the module docstring)."""
    status = fresh.status or "unknown"
    if status == "canceled":
        return Decision("cancel", "canceled")
    if status in _SUSPENDING:
        return Decision("suspend", _SUSPENDING[status])
    if status == "paused":
        if ctx.policy.pause == "disable":
            return Decision("suspend", "paused")
        return Decision("live", "paused, and pause='ignore' keeps the licence")
    if status == "past_due":
        if _trial_ended_unpaid(state, fresh):
            return Decision("suspend", "past_due: the trial ended without payment")
        start = fresh.current_period_start
        if start is None:
            return Decision("live", "past_due (no period start to count a grace from)")
        grace = int(ctx.policy.past_due_grace.total_seconds())
        if grace == 0:
            return Decision("suspend", "past_due (past_due_grace is 0)")
        until = start + grace
        return Decision("grace", f"past_due, kept until {day(until)}", until)
    if status not in ("active", "trialing", "incomplete"):
        logger.warning("subscription %s has status %r, unknown here", fresh.id, status)
    return Decision("live", status)


def _trial_ended_unpaid(state: SubscriptionState, fresh: Subscription) -> bool:
    """Whether the renewal that failed is the first one after a trial.

    From Stripe's state: the current period starts at `trial_end`. Without a period
    start, from storage: the licence was granted for a trial and no invoice was paid.
    """
    if fresh.trial_end is None:
        return False
    if fresh.current_period_start is None:
        return state.trial_until is not None and not state.renewed_invoices
    return abs(fresh.current_period_start - fresh.trial_end) <= TRIAL_SLACK


def apply_decision(
    ctx: FlowContext, state: SubscriptionState, fresh: Subscription, decision: Decision
) -> Outcome | None:
    """Make the licence match `decision`; the outcome, or `None` when nothing changed.

    The caller holds the subscription's lock and knows the group is provisioned
    (`state.group_id` and codes written) unless the decision is *suspend* or *cancel*,
    which are remembered without one.
    """
    subscription_id = state.subscription_id
    if decision.action == "cancel":
        return subscription_deleted(ctx, subscription_id, fresh.customer_id)
    if decision.action == "suspend":
        return suspend(ctx, state, decision.reason)
    assert state.group_id is not None
    changes: list[str] = []
    if state.suspended is not None:
        was = state.suspended
        enabled = enable_group(ctx, state, fresh)
        _cover_owed(ctx, state)
        state = ctx.save(attrs.evolve(state, suspended=None, owed_until=None))
        changes.append(
            f"enabled {enabled} entitlement(s) disabled while {was}"
            if enabled
            else f"no longer {was} (its entitlements were enabled already)"
        )
    if decision.action == "grace" and decision.until is not None:
        extended = _extend_for_grace(ctx, state, decision.until)
        if extended:
            changes.append(f"kept {extended} entitlement(s) until {day(decision.until)}")
    if not changes:
        return None
    return Outcome(
        OutcomeKind.UPDATED,
        f"entitlement group {state.group_id} of subscription {subscription_id} "
        f"({decision.reason}): " + "; ".join(changes),
    )


def suspend(ctx: FlowContext, state: SubscriptionState, reason: str) -> Outcome:
    """Remember why, then disable every live entitlement of the group (if any yet)."""
    subscription_id = state.subscription_id
    if state.suspended != reason:
        state = ctx.save(attrs.evolve(state, suspended=reason))
    if state.group_id is None or not state.codes_written:
        return Outcome(
            OutcomeKind.REVOKED,
            f"subscription {subscription_id} is {reason} and has no licence yet; this is "
            "remembered, so a late first payment provisions its licence disabled",
        )
    # A disable sent by an earlier attempt and never confirmed (its answer lost, or a
    # crash) is a suspension this attempt finishes: `revoked`, so its hooks run. The
    # marker is written only when a disable is about to be sent, so a redelivery that
    # finds the group disabled and the marker confirmed stays `duplicate`.
    marker = _disable_marker(subscription_id)
    finishing = ctx.storage.get_customer_link(marker) == _DISABLE_SENT

    def sending() -> None:
        if not finishing:
            ctx.fence.check()
            ctx.storage.put_customer_link(marker, _DISABLE_SENT)

    disabled = disable_group(ctx, state, before_first=sending)
    if disabled or finishing:
        ctx.fence.check()
        ctx.storage.put_customer_link(marker, DONE)
    if not disabled and not finishing:
        return Outcome(
            OutcomeKind.DUPLICATE,
            f"entitlements of group {state.group_id} are already disabled "
            f"(subscription {subscription_id} is {reason})",
        )
    done = (
        f"disabled {disabled} entitlement(s) of group {state.group_id}"
        if disabled
        else f"the entitlements of group {state.group_id} were disabled by an earlier "
        "attempt whose answer was lost"
    )
    return Outcome(OutcomeKind.REVOKED, f"{done} (subscription {subscription_id} is {reason})")


def _disable_marker(subscription_id: str) -> str:
    """The key of the marker saying a suspension's disable was sent and not confirmed.

    It holds `disable-sent` from right before the first disable until every disable
    was answered, then `done` (see [`markers`][zentitle_stripe.flows.markers]).
    """
    return f"suspend-disable:{subscription_id}"


def enable_group(ctx: FlowContext, state: SubscriptionState, fresh: Subscription) -> int:
    """Enable the group's disabled entitlements, one per SKU the subscription still sells.

    An entitlement of a SKU that also has a live one (a removed-then-re-added product)
    or that the subscription no longer sells stays disabled: items reconciliation
    disabled it, not a status. Only `disabled` is enabled: `customerDisabled` is the
    customer's switch and `exported` is gone.
    """
    assert state.group_id is not None
    group = ctx.group_with_entitlements(state.group_id)
    wanted = set(desired_items(ctx, fresh))
    live = {e.sku for e in group.entitlements if e.status not in _INACTIVE}
    enabled = 0
    for entitlement in _disabled(group):
        if entitlement.sku in wanted and entitlement.sku not in live:
            ctx.fence.check()
            ctx.zentitle.enable_entitlement(entitlement.id)
            live.add(entitlement.sku)
            enabled += 1
    return enabled


def _cover_owed(ctx: FlowContext, state: SubscriptionState) -> None:
    """After enabling: cover a period paid while the licence was off (`owed_until`).

    That renewal renewed nothing (a renew skips a disabled entitlement) though it was
    recorded as applied; this makes up for it by the renewal's own rule (read, compare,
    renew until covered, bounded). Nothing is read when nothing is owed.
    """
    if state.owed_until is None or state.group_id is None:
        return
    for entitlement in ctx.group_with_entitlements(state.group_id).entitlements:
        if entitlement.status not in _INACTIVE:
            renew_until_covered(ctx, entitlement.id, state.owed_until)


def _disabled(group: EntitlementGroup) -> list[Entitlement]:
    return [e for e in group.entitlements if e.status == "disabled"]


def _extend_for_grace(ctx: FlowContext, state: SubscriptionState, until: int) -> int:
    """Move each live entitlement's expiry to `until` where it is earlier; how many.

    Recorded first (`grace_until`), so the payment that ends the trouble knows the
    expiry is the grace's, not a paid period's (see `cover_after_grace`).
    """
    group_id = state.group_id
    assert group_id is not None
    if state.grace_until != until:
        state = ctx.save(attrs.evolve(state, grace_until=until))
    target = datetime.fromtimestamp(until, timezone.utc)
    extended = 0
    for entitlement in ctx.group_with_entitlements(group_id).entitlements:
        if entitlement.status in _INACTIVE:
            continue
        current = ctx.zentitle.get_entitlement(entitlement.id)
        if current.license_type == "perpetual" or current.expiry_date is None:
            continue
        if current.expiry_date < target:
            ctx.zentitle.update_entitlement(entitlement.id, expiry_date=target)
            extended += 1
    return extended


def cover_after_grace(
    ctx: FlowContext, group: EntitlementGroup, period_end: int, reads: dict[str, Entitlement]
) -> int:
    """The paid invoice that ends `past_due`: set the paid period's end as the expiry.

    A renew would add a whole period to the grace's expiry and overshoot by the grace,
    so each live entitlement short of `period_end` gets it set (PATCH, absolute, safe to
    repeat); the renewal that follows then finds it covered. Usage-count features are
    not reset by this (a renew would), which is the cost of an exact expiry. `reads` are
    entitlements read just now (used, and updated with what was set).
    """
    target = datetime.fromtimestamp(period_end, timezone.utc)
    covered = 0
    for entitlement in group.entitlements:
        if entitlement.status in _INACTIVE:
            continue
        current = reads.get(entitlement.id) or ctx.zentitle.get_entitlement(entitlement.id)
        reads[entitlement.id] = current
        if current.license_type == "perpetual" or current.expiry_date is None:
            continue
        if current.expiry_date.timestamp() < period_end - COVERAGE_SLACK:
            ctx.zentitle.update_entitlement(entitlement.id, expiry_date=target)
            reads[entitlement.id] = attrs.evolve(current, expiry_date=target)
            covered += 1
    return covered
