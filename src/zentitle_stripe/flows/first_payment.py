"""A subscription's first paid invoice: one entitlement group, its seats, its codes.

The licensed lines are read (fetching Prices that the payload does not carry), the
Zentitle2 customer is matched or created, one entitlement group is found by `orderRefId`
or created for every licensed line, seats are set for quantities above one, and the
activation codes are written to the Stripe Subscription. Storage records each step right
after it succeeds, so a retry resumes where the last attempt stopped, and records a create
before it is sent (see [`markers`][zentitle_stripe.flows.markers]), so a retry while
that create may still land waits for it instead of creating a second group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from .._untrusted import shown
from ..catalogue import (
    CODES_METADATA_KEY,
    SKU_METADATA_KEY,
    near_miss_sku,
    product_sku,
    resolve_sku,
)
from ..exceptions import ProvisioningConfigError, ZentitleAPIError
from ..hooks import observe_group, observe_skus
from ..responses import Outcome, OutcomeKind
from ..storage import SubscriptionState
from ..stripe.events import Invoice, InvoiceLine
from .context import FlowContext, logger
from .customers import zentitle_customer
from .markers import CreateMarker, group_marker

if TYPE_CHECKING:
    from ..stripe.models import Product
    from ..zentitle.models import EntitlementGroup

__all__ = [
    "METADATA_VALUE_LIMIT",
    "REFUSED_STATUSES",
    "LicensedLine",
    "licensed_lines",
    "provision",
]

METADATA_VALUE_LIMIT = 500
"""Stripe's limit on one metadata value: the activation codes are cut to fit."""
REFUSED_STATUSES = frozenset({400, 404, 422})
"""Statuses with which Zentitle2 refuses a group for its content (an SKU, the customer):
a set-up error naming the SKUs. Any other failure goes to the failure table as it is."""


@attrs.frozen
class LicensedLine:
    """An invoice line that grants a licence: its SKU and how many units were bought."""

    sku: str
    quantity: int
    price_id: str


def provision(
    ctx: FlowContext, invoice: Invoice, state: SubscriptionState, owner: str
) -> tuple[SubscriptionState, Outcome]:
    """First payment: customer, one group for every licensed line, codes to Stripe."""
    subscription_id = state.subscription_id
    lines = licensed_lines(ctx, invoice)
    if not lines:
        return state, Outcome.ignored(
            f"no line of invoice {invoice.id} has a Price with metadata "
            f"{SKU_METADATA_KEY!r}, so there is nothing to license"
        )
    seats = {line.sku: _offering_seats(ctx, line) for line in lines}
    observe_skus(line.sku for line in lines)  # for outcome hooks (see `hooks`)

    created_group = False
    if state.group_id is None:
        new_customer = False
        customer_id = state.zentitle_customer_id
        if customer_id is None:
            customer_id, new_customer = zentitle_customer(ctx, invoice, owner)
        state = attrs.evolve(state, zentitle_customer_id=customer_id)
        marker = group_marker(ctx, subscription_id)
        # A customer created just now has no groups yet: skip the lookup. Storage holds
        # no group id here; if it knows of no create either, a bounded look suffices.
        group = None
        if not new_customer:
            group = ctx.find_group(subscription_id, customer_id, bounded=not marker.known)
        fresh = False
        if group is None:
            marker.hold_off(ctx)  # an earlier create may still land: wait, do not repeat
            marker = marker.attempt(ctx)
            group, fresh = _create_group(ctx, lines, customer_id, subscription_id, marker)
            created_group = True
        # Seats before recording: a crash in between leaves a group the retry finds
        # and whose seat counts it reads before setting any again.
        _apply_seats(ctx, group, lines, seats, fresh=fresh)
        observe_group(group)  # a created group, for outcome hooks (see `hooks`)
        state = attrs.evolve(
            state, group_id=group.id, activation_codes=tuple(group.activation_codes)
        )
        state = ctx.save(state)  # from here on, a retry never re-creates
        marker.confirm(ctx)

    if not state.codes_written:
        _write_codes(ctx, subscription_id, state.activation_codes)
        # Not yet in renewed_invoices: for a renewal, the renewal flow records it once it
        # has actually extended the licence (a failure there must leave it to a retry).
        state = attrs.evolve(state, codes_written=True)
        state = ctx.save(state)
    skus = ", ".join(line.sku for line in lines)
    verb = "created" if created_group else "found"
    return state, Outcome(
        OutcomeKind.PROVISIONED,
        f"{verb} entitlement group {state.group_id} for subscription {subscription_id} "
        f"with {len(lines)} entitlement(s) ({skus}); activation codes written to the "
        f"subscription's {CODES_METADATA_KEY!r} metadata",
    )


def licensed_lines(ctx: FlowContext, invoice: Invoice) -> list[LicensedLine]:
    """The lines whose Price names an offering SKU; misplaced SKUs are set-up errors."""
    if not invoice.lines_readable and not invoice.lines_has_more:
        raise ProvisioningConfigError(
            f"invoice {invoice.id} carries no readable lines.data, so what it pays for "
            "cannot be known (a malformed or unexpected payload); nothing was granted; "
            "replay this event once the cause is fixed"
        )
    lines: Sequence[InvoiceLine] = invoice.lines
    if invoice.lines_has_more:
        lines = ctx.stripe.list_invoice_lines(invoice.id)
    licensed: list[LicensedLine] = []
    misplaced: list[tuple[str, Product]] = []
    for line in lines:
        if not line.is_subscription:
            continue
        if line.price_id is None:
            raise _unreadable_price(invoice.id, line)
        sku = _sku(ctx, line.price_metadata, line.price_lookup_key)
        if sku is None:
            # basil+ payloads carry only the Price id; an old-shape payload carries a
            # snapshot, which a replay after fixing the Price must not trust.
            price = ctx.stripe.retrieve_price(line.price_id)
            sku = _sku(ctx, price.metadata, price.lookup_key)
        if sku:
            licensed.append(LicensedLine(sku, line.quantity, line.price_id))
        elif line.product_id:
            product = ctx.stripe.retrieve_product(line.product_id)
            if product_sku(product.metadata) is not None:
                misplaced.append((line.price_id, product))
    if misplaced:
        price_id, product = misplaced[0]
        raise ProvisioningConfigError(
            f"metadata {SKU_METADATA_KEY!r} is set on Product {product.id} "
            f"({product.name or 'unnamed'}) but must be on its Price {price_id}: move it to "
            "the Price, then replay this event"
        )
    return licensed


def _unreadable_price(invoice_id: str, line: InvoiceLine) -> ProvisioningConfigError:
    """A subscription line whose Price cannot be read: never a silent "nothing to license".

    Both generations name the Price (`price`/`plan`, or `pricing.price_details.price`);
    a line with neither is a Stripe format this library does not know, so the event
    fails (422, replayable) instead of answering `ignored` and granting nothing.
    """
    return ProvisioningConfigError(
        f"subscription line {shown(line.id) or '(no id)'} of invoice {invoice_id} names no Price "
        "(neither pricing.price_details.price nor price), so its licence cannot be "
        "resolved; nothing was granted; replay this event once the cause is fixed"
    )


def _sku(
    ctx: FlowContext, metadata: Mapping[str, str] | None, lookup_key: str | None
) -> str | None:
    return resolve_sku(metadata, lookup_key, lookup_key_fallback=ctx.lookup_key_fallback)


def _offering_seats(ctx: FlowContext, line: LicensedLine) -> int | None:
    """Check the SKU exists in Zentitle2 (cached) and return the offering's seats."""
    offering = ctx.zentitle.find_offering(line.sku)
    if offering is None:
        known = [o.sku for o in ctx.zentitle.list_offerings() if o.sku]
        near = near_miss_sku(line.sku, known)
        hint = f" (did you mean {near!r}? SKUs match exactly, case-sensitively)" if near else ""
        raise ProvisioningConfigError(
            f"Price {line.price_id} has {SKU_METADATA_KEY} {line.sku!r}, but Zentitle2 has no "
            f"offering with that SKU{hint}; fix the metadata or the offering, then replay "
            "this event"
        )
    return offering.seat_count


def _create_group(
    ctx: FlowContext,
    lines: Sequence[LicensedLine],
    customer_id: str,
    subscription_id: str,
    marker: CreateMarker,
) -> tuple[EntitlementGroup, bool]:
    """Create the subscription's group; True with it when it is certainly new.

    After an answer that may have been lost, the group may exist: look for it by
    `orderRefId` and use it, or fail so that the next attempt looks again (and, the
    `marker` being pending, waits for it). A create that certainly did not land withdraws
    the marker, so the next attempt need not wait.
    """
    try:
        group = ctx.zentitle.create_entitlement_group(
            skus=[line.sku for line in lines],
            customer_id=customer_id,
            order_ref_id=subscription_id,
        )
        return group, True
    except ZentitleAPIError as exc:
        if exc.may_have_landed:
            found = ctx.find_group(subscription_id, customer_id)
            if found is None:
                raise
            logger.info("group create for %s landed despite %s", subscription_id, exc)
            return found, False
        marker.withdraw(ctx)
        if exc.transient or exc.status not in REFUSED_STATUSES:
            raise
        skus = ", ".join(repr(line.sku) for line in lines)
        raise ProvisioningConfigError(
            f"Zentitle2 refused to create the entitlement group for {skus}: {exc.message}"
        ) from exc


def _apply_seats(
    ctx: FlowContext,
    group: EntitlementGroup,
    lines: Sequence[LicensedLine],
    seats: dict[str, int | None],
    *,
    fresh: bool,
) -> None:
    """Quantity N buys N times the offering's seats (`seat_policy="multiply"`).

    A group's entitlements carry no seat count, so a group created just now (`fresh`) is
    known to have the offering's seats; one found again on a retry may have been set
    already, so its seat count is read first and not PATCHed twice.
    """
    wanted = [line for line in lines if line.quantity > 1 and seats.get(line.sku)]
    if ctx.seat_policy != "multiply" or not wanted:
        return
    entitlements = list(group.entitlements or ctx.group_with_entitlements(group.id).entitlements)
    for line in lines:
        entitlement = next((e for e in entitlements if e.sku == line.sku), None)
        if entitlement is None:
            continue
        entitlements.remove(entitlement)  # two lines of one SKU get one entitlement each
        base = seats.get(line.sku)
        if line.quantity <= 1 or not base:
            continue
        target = base * line.quantity
        current = base if fresh else ctx.zentitle.get_entitlement(entitlement.id).seat_count
        if current != target:
            ctx.zentitle.update_entitlement(entitlement.id, seat_count=target)


def _write_codes(ctx: FlowContext, subscription_id: str, codes: Sequence[str]) -> None:
    """Write the codes to the Subscription, dropping the last ones beyond Stripe's limit."""
    value = ",".join(codes)
    while len(value) > METADATA_VALUE_LIMIT and "," in value:
        value = value.rsplit(",", 1)[0]
        logger.warning("activation codes of %s exceed Stripe's limit", subscription_id)
    ctx.stripe.update_subscription_metadata(subscription_id, {CODES_METADATA_KEY: value})
