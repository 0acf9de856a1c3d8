"""Items reconciliation: make the group's entitlements match the subscription's items.

Desired state is read fresh from Stripe (`GET /v1/subscriptions/{id}`), never from the
event that triggered the run, so the delivery order of `customer.subscription.updated`,
the proration invoice and renewals does not matter: whichever arrives last, each run
converges on what Stripe says now. Desired is `{sku: quantity}` over the licensed items;
actual is the group's live entitlements.

- a SKU added to the subscription is added to the group first
  (`POST .../groups/{id}/extend`, see below), so a cross-grade never
  leaves the customer without a licence in between;
- a SKU no longer sold is disabled (`PATCH .../disable`);
- a quantity change sets seats to the offering's seats x quantity (`PATCH
  /api/v1/entitlements/{id}` `seatCount`, absolute, so safe to repeat); a line just
  added gets its seats the same way, read back first, never taken from the answer.

`extend` is not in the pinned contract (the reference documents it, its answer status is
unknown) and, like a create, not idempotent: each call adds the SKUs again. So it is sent
exactly once, as creates and renews are: the SKUs go to storage and an *extend-sent*
[marker][zentitle_stripe.flows.markers.CreateMarker] (`group-extend:{group}`) is recorded
before the request; after an answer that may be lost (a timeout, a 5xx) the group is read
before anything is sent again, and while a sent extend is unconfirmed for less than the
create window the next attempt waits (503 with `Retry-After`) instead of adding again.

A line added mid-term would run on its plan's own term from today; it is set to the
group's term instead (the latest expiry of the entitlements already there), so the
customer pays for and gets the same period on every line, and the next renewal extends
them together. Nothing is added to a group whose every entitlement is switched off (a
paused or disabled licence): the addition waits for the first reconciliation after the
licence is live again (at the latest, the next renewal).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from ..catalogue import SWITCHED_OFF_ENTITLEMENT_STATUSES as _INACTIVE
from ..catalogue import resolve_sku
from ..exceptions import ProvisioningConfigError, TransientError, ZentitleAPIError
from ..stripe.events import Subscription
from .context import FlowContext, logger
from .first_payment import REFUSED_STATUSES
from .markers import CreateMarker

if TYPE_CHECKING:
    from ..zentitle.models import Entitlement, EntitlementGroup

__all__ = ["ItemChanges", "desired_items", "extend_marker", "reconcile_items"]


class ItemChanges(list[str]):
    """What a reconciliation changed, in words (empty: nothing), with what it left.

    A list, so callers that only report the changes need nothing else.
    """

    held_back: tuple[str, ...] = ()
    """SKUs not added because the licence is switched off (every entitlement disabled)."""
    stale: bool = False
    """Entitlements were disabled or added since the caller's read: read the group again."""


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


def extend_marker(ctx: FlowContext, group_id: str) -> CreateMarker:
    """The extend-sent marker of a group (its SKUs are stored beside it)."""
    return CreateMarker.read(
        ctx, f"group-extend:{group_id}", f"the entitlements added to group {group_id}"
    )


def reconcile_items(
    ctx: FlowContext,
    group: EntitlementGroup,
    desired: Mapping[str, int],
    reads: dict[str, Entitlement] | None = None,
) -> ItemChanges:
    """Add new SKUs, disable removed ones, set seats; what was changed.

    `group` is read with its entitlements (the caller may reuse the read). Entitlements
    read for their seats or expiry are put in `reads` (as they are after any update), so
    a renewal right after need not read them again; it reads the group again when the
    result is `stale`.
    """
    known: dict[str, Entitlement] = reads if reads is not None else {}
    marker = extend_marker(ctx, group.id)
    group, marker, added = _settle_sent_extend(ctx, group, marker)
    live = [e for e in group.entitlements if e.status not in _INACTIVE]
    missing = sorted(set(desired) - {e.sku or "" for e in live})
    held_back: tuple[str, ...] = ()
    if missing and not live:
        held_back, missing = tuple(missing), []
        logger.info("group %s is switched off: not adding %s", group.id, ", ".join(held_back))
    if missing:
        group, marker = _extend(ctx, group, missing, marker)
        added |= set(missing)
    changes = ItemChanges(f"added {sku}" for sku in sorted(added))
    term = _group_term(ctx, group, added, known) if added else None
    disabled = False
    for entitlement in group.entitlements:
        sku = entitlement.sku or ""
        if entitlement.status in _INACTIVE:
            continue
        if sku not in desired:
            ctx.zentitle.disable_entitlement(entitlement.id)
            changes.append(f"disabled {sku}")
            disabled = True
            continue
        change = _set_seats_and_term(
            ctx, entitlement, desired[sku], term if sku in added else None, known
        )
        if change:
            changes.append(change)
    marker.confirm(ctx)  # an extend is confirmed once its lines have their seats and term
    changes.held_back, changes.stale = held_back, disabled or bool(added)
    return changes


def _settle_sent_extend(
    ctx: FlowContext, group: EntitlementGroup, marker: CreateMarker
) -> tuple[EntitlementGroup, CreateMarker, set[str]]:
    """An extend sent earlier and not confirmed: wait while it may still land, then look.

    Returns the group read afresh, the marker (cleared when the extend did not land, so
    what is still missing is sent again) and the SKUs that it did add: they still need
    their seats and term, which is why the marker is only confirmed after those.
    """
    if not marker.pending:
        return group, marker, set()
    marker.wait_for(ctx)  # a 503 while it may still land: never a second extend
    group = ctx.group_with_entitlements(group.id)
    sent = {s for s in (ctx.storage.get_customer_link(_skus_key(group.id)) or "").split(",") if s}
    if sent and sent <= _live_skus(group):
        logger.info("the extend of group %s (%s) landed", group.id, ", ".join(sorted(sent)))
        return group, marker, sent
    logger.warning(
        "an extend of group %s (%s) has not landed within %g s; adding what is still missing",
        group.id,
        ", ".join(sorted(sent)) or "unknown SKUs",
        ctx.create_window,
    )
    return group, marker.withdraw(ctx), set()


def _extend(
    ctx: FlowContext, group: EntitlementGroup, skus: list[str], marker: CreateMarker
) -> tuple[EntitlementGroup, CreateMarker]:
    """Send one extend for `skus`, recorded first; the group as read afterwards.

    The answer (204, or a group) is never trusted: the group is read back and must list
    every SKU, or the marker stays pending and the error (or a retryable one) is raised.
    """
    for sku in skus:
        if ctx.zentitle.find_offering(sku) is None:
            raise ProvisioningConfigError(
                f"the subscription now also sells {sku!r}, but Zentitle2 has no offering "
                "with that SKU; fix the Price's metadata or the offering, then replay this event"
            )
    ctx.fence.check()
    ctx.storage.put_customer_link(_skus_key(group.id), ",".join(skus))
    marker = marker.attempt(ctx)
    try:
        ctx.zentitle.extend_entitlement_group(group.id, skus)
    except ZentitleAPIError as exc:
        if not exc.may_have_landed:
            marker = marker.withdraw(ctx)
            if exc.transient or exc.status not in REFUSED_STATUSES:
                raise
            raise ProvisioningConfigError(
                f"Zentitle2 refused to add {', '.join(skus)} to entitlement group "
                f"{group.id}: {exc.message}; fix the offering, then replay this event"
            ) from exc
        after = ctx.group_with_entitlements(group.id)
        if not set(skus) <= _live_skus(after):
            raise  # not landed yet: the marker makes the next attempt wait, then look
        logger.info("extend of group %s landed despite %s", group.id, exc)
        return after, marker
    after = ctx.group_with_entitlements(group.id)
    if not set(skus) <= _live_skus(after):
        raise TransientError(
            f"Zentitle2 accepted adding {', '.join(skus)} to entitlement group {group.id} "
            "but does not list them yet; retry later (they are not added again)",
            retry_after=10,
        )
    return after, marker


def _group_term(
    ctx: FlowContext, group: EntitlementGroup, added: set[str], known: dict[str, Entitlement]
) -> datetime | None:
    """The latest expiry of the group's live entitlements that were there before."""
    expiries: list[datetime] = []
    for entitlement in group.entitlements:
        if entitlement.status in _INACTIVE or (entitlement.sku or "") in added:
            continue
        current = known.get(entitlement.id) or ctx.zentitle.get_entitlement(entitlement.id)
        known[entitlement.id] = current
        if current.license_type == "subscription" and current.expiry_date is not None:
            expiries.append(current.expiry_date)
    return max(expiries, default=None)


def _set_seats_and_term(
    ctx: FlowContext,
    entitlement: Entitlement,
    quantity: int,
    term: datetime | None,
    known: dict[str, Entitlement],
) -> str | None:
    """One PATCH for the seats `quantity` buys and, for a line just added, the group's
    `term`; what changed, or `None`. Both are absolute values, safe to repeat."""
    sku = entitlement.sku or ""
    target = _target_seats(ctx, sku, quantity)
    if target is None and term is None:
        return None
    current = known.get(entitlement.id) or ctx.zentitle.get_entitlement(entitlement.id)
    seats = target if target is not None and current.seat_count != target else None
    # Only a running term is moved: one not started yet (licence start on activation)
    # has no expiry to align, and Zentitle2 starts it at activation.
    expiry = None
    if term is not None and current.license_type == "subscription" and current.expiry_date:
        expiry = term if abs((current.expiry_date - term).total_seconds()) > 1 else None
    if seats is None and expiry is None:
        known[entitlement.id] = current
        return None
    ctx.zentitle.update_entitlement(entitlement.id, seat_count=seats, expiry_date=expiry)
    known[entitlement.id] = attrs.evolve(
        current,
        seat_count=seats if seats is not None else current.seat_count,
        expiry_date=expiry if expiry is not None else current.expiry_date,
    )
    words = [f"seats set to {seats}"] if seats is not None else []
    words += [f"expiry set to the group's {expiry.date().isoformat()}"] if expiry else []
    return f"{sku} " + " and ".join(words)


def _live_skus(group: EntitlementGroup) -> set[str]:
    return {e.sku or "" for e in group.entitlements if e.status not in _INACTIVE}


def _skus_key(group_id: str) -> str:
    return f"group-extend-skus:{group_id}"


def _target_seats(ctx: FlowContext, sku: str, quantity: int) -> int | None:
    """Seats for `quantity` units (`seat_policy="multiply"`), `None` to leave them."""
    if ctx.seat_policy != "multiply":
        return None
    offering = ctx.zentitle.find_offering(sku)
    if offering is None or not offering.seat_count:
        return None
    return offering.seat_count * max(quantity, 1)
