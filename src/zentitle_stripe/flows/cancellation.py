"""A cancelled subscription (`customer.subscription.deleted`): its licences are disabled.

The cancellation is remembered before anything else, so a late or retried payment of
the same subscription grants no licence afterwards. A group whose create may still land
is waited for (503, see [`markers`][zentitle_stripe.flows.markers]), so it is disabled
once it appears.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ..catalogue import SWITCHED_OFF_ENTITLEMENT_STATUSES as _INACTIVE
from ..responses import Outcome, OutcomeKind
from ..storage import SubscriptionState
from .context import FlowContext
from .markers import group_marker

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..zentitle.models import EntitlementGroup

__all__ = ["disable_group", "subscription_deleted"]


def subscription_deleted(
    ctx: FlowContext, subscription_id: str, customer_id: str | None
) -> Outcome:
    """Remember the cancellation, then disable every live entitlement of the group."""
    state = ctx.subscription_state(subscription_id)
    # Remember first: a late or retried payment must not create a licence after this.
    state = attrs.evolve(state, canceled=True)
    if state.group_id is None:
        group = _find_orphan_group(ctx, subscription_id, customer_id)
        if group is not None:
            state = attrs.evolve(
                state, group_id=group.id, activation_codes=tuple(group.activation_codes)
            )
    state = ctx.save(state)
    if state.group_id is None:
        # A group create that may still land would escape the cancellation: look again.
        group_marker(ctx, subscription_id).wait_for(ctx)
        return Outcome(
            OutcomeKind.REVOKED,
            f"subscription {subscription_id} had no licence yet; the cancellation is "
            "remembered so a late payment creates none",
        )
    disabled = disable_group(ctx, state)
    return Outcome(
        OutcomeKind.REVOKED,
        f"disabled {disabled} entitlement(s) of group {state.group_id} "
        f"(subscription {subscription_id} cancelled)",
    )


def disable_group(
    ctx: FlowContext,
    state: SubscriptionState,
    *,
    before_first: Callable[[], object] | None = None,
) -> int:
    """Disable the live entitlements of the subscription's group; how many were.

    `before_first` runs once, right before the first disable is sent (not at all when
    nothing is live), so a caller can record the disable as sent only when it is.
    """
    assert state.group_id is not None
    group = ctx.group_with_entitlements(state.group_id)
    disabled = 0
    for entitlement in group.entitlements:
        if entitlement.status not in _INACTIVE:
            if disabled == 0 and before_first is not None:
                before_first()
            ctx.zentitle.disable_entitlement(entitlement.id)
            disabled += 1
    return disabled


def _find_orphan_group(
    ctx: FlowContext, subscription_id: str, customer_id: str | None
) -> EntitlementGroup | None:
    """A group created by an attempt that crashed before recording it."""
    zentitle_customer = ctx.storage.get_customer_link(customer_id) if customer_id else None
    if zentitle_customer is None:
        return None  # no customer was ever resolved, so no group can exist
    return ctx.find_group(subscription_id, zentitle_customer)
