"""Items reconciliation: make the group's entitlements match the subscription's items.

Desired state is read fresh from Stripe (`GET /v1/subscriptions/{id}`), never from the
event that triggered the run, so the delivery order of `customer.subscription.updated`,
the proration invoice and renewals does not matter: whichever arrives last, each run
converges on what Stripe says now. Desired is `{sku: quantity}` over the licensed items;
actual is the group's live entitlements.

- a SKU no longer sold is disabled (`PATCH .../disable`);
- a quantity change sets seats to the offering's seats x quantity (`PATCH
  /api/v1/entitlements/{id}` `seatCount`, absolute, so safe to repeat);
- a SKU added to the subscription has no entitlement yet. The pinned contract
  (2025-10-10) has no operation that adds an entitlement to an existing group (the
  reference mentions `POST .../groups/{id}/extend` with an unknown answer), so this is
  reported as a set-up error (422, replayable) naming the SKU instead of being guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..catalogue import SWITCHED_OFF_ENTITLEMENT_STATUSES as _INACTIVE
from ..catalogue import resolve_sku
from ..exceptions import ProvisioningConfigError
from ..stripe.events import Subscription
from .context import FlowContext

if TYPE_CHECKING:
    from ..zentitle.models import Entitlement, EntitlementGroup

__all__ = ["desired_items", "reconcile_items"]


def desired_items(ctx: FlowContext, subscription: Subscription) -> dict[str, int]:
    """`{sku: quantity}` of the subscription's licensed items (Prices read as needed)."""
    if subscription.items_has_more:
        raise ProvisioningConfigError(
            f"subscription {subscription.id} has more items than one page lists; items "
            "reconciliation reads only the first page, so it refuses rather than guess"
        )
    desired: dict[str, int] = {}
    for item in subscription.items:
        if item.price_id is None:
            raise ProvisioningConfigError(
                f"an item of subscription {subscription.id} names no Price, so its licence "
                "cannot be resolved; replay this event once the cause is fixed"
            )
        fallback = ctx.lookup_key_fallback
        sku = resolve_sku(item.price_metadata, item.price_lookup_key, lookup_key_fallback=fallback)
        if sku is None and item.price_metadata is None:
            price = ctx.stripe.retrieve_price(item.price_id)
            sku = resolve_sku(price.metadata, price.lookup_key, lookup_key_fallback=fallback)
        if sku:
            desired[sku] = desired.get(sku, 0) + item.quantity
    return desired


def reconcile_items(
    ctx: FlowContext,
    group: EntitlementGroup,
    desired: Mapping[str, int],
    reads: dict[str, Entitlement] | None = None,
) -> list[str]:
    """Disable removed SKUs and set seats on quantity changes; what was changed.

    `group` is read with its entitlements (the caller may reuse the read). Raises a
    set-up error naming any desired SKU the group has no live entitlement for (after
    doing everything else, so a replay has only that left). Entitlements read for their
    seats are put in `reads`, so a renewal right after need not read them again.
    """
    group_id = group.id
    changes: list[str] = []
    present: set[str] = set()
    for entitlement in group.entitlements:
        sku = entitlement.sku or ""
        if entitlement.status in _INACTIVE:
            continue
        if sku not in desired:
            ctx.zentitle.disable_entitlement(entitlement.id)
            changes.append(f"disabled {sku}")
            continue
        present.add(sku)
        target = _target_seats(ctx, sku, desired[sku])
        if target is None:
            continue
        current = ctx.zentitle.get_entitlement(entitlement.id)
        if reads is not None:
            reads[entitlement.id] = current  # a seat update leaves the expiry as read
        if current.seat_count != target:
            ctx.zentitle.update_entitlement(entitlement.id, seat_count=target)
            changes.append(f"{sku} seats set to {target}")
    missing = sorted(set(desired) - present)
    if missing:
        raise ProvisioningConfigError(
            f"the subscription now also sells {', '.join(missing)}, but entitlement group "
            f"{group_id} has no live entitlement for it and Zentitle2's API contract has no "
            "call that adds one to an existing group: add it to the group in Zentitle2, "
            "then replay this event" + (f" (already done: {'; '.join(changes)})" if changes else "")
        )
    return changes


def _target_seats(ctx: FlowContext, sku: str, quantity: int) -> int | None:
    """Seats for `quantity` units (`seat_policy="multiply"`), `None` to leave them."""
    if ctx.seat_policy != "multiply":
        return None
    offering = ctx.zentitle.find_offering(sku)
    if offering is None or not offering.seat_count:
        return None
    return offering.seat_count * max(quantity, 1)
