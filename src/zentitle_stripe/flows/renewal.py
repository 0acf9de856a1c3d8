"""A paid renewal: extend every live entitlement until it covers the paid period.

Idempotent by comparison, not by counting deliveries: each entitlement's expiry is read
(`GET /api/v1/entitlements/{id}`) and compared with the period's end, so a duplicate, a
retry after a crash between two renews, or a replay renews only what is still short. A
renew whose answer was lost is followed by a read, never by a blind repeat.

A renew whose client gave up may still land later (Zentitle2 has no idempotency keys),
after a redelivery has read the old expiry and renewed again: a second period for one
invoice. So each renew is recorded before it is sent (`renew-sent:{entitlement}`, a
[create marker][zentitle_stripe.flows.markers.CreateMarker]); while one sent less than
the create window ago is unconfirmed, the next attempt waits (503 with `Retry-After`)
instead of reading and renewing.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import attrs

from ..catalogue import SWITCHED_OFF_ENTITLEMENT_STATUSES as _INACTIVE
from ..exceptions import ProvisioningConfigError, TransientError, ZentitleAPIError
from ..responses import Outcome, OutcomeKind
from ..storage import SubscriptionState
from ..stripe.events import Invoice
from .context import FlowContext, day, logger
from .markers import CreateMarker

if TYPE_CHECKING:
    from ..zentitle.models import Entitlement, EntitlementGroup

__all__ = [
    "COVERAGE_SLACK",
    "MAX_REMEMBERED_INVOICES",
    "MAX_RENEWS_PER_EVENT",
    "remember_invoice",
    "renew",
    "renew_until_covered",
]

COVERAGE_SLACK = 24 * 3600
"""An expiry this close to the paid period's end counts as covering it (clock skew,
month-length rounding); far smaller than any billing period, so a real renewal is never
mistaken for one already applied."""
MAX_REMEMBERED_INVOICES = 50
"""How many applied invoice ids a subscription's state keeps, newest last."""
MAX_RENEWS_PER_EVENT = 24
"""Bound on renewals of one entitlement for one invoice (two years of monthly periods)."""


def renew(
    ctx: FlowContext,
    invoice: Invoice,
    state: SubscriptionState,
    *,
    provisioned: Outcome | None = None,
    group: EntitlementGroup | None = None,
    reads: dict[str, Entitlement] | None = None,
) -> Outcome:
    """Extend every live entitlement whose expiry does not yet cover the paid period.

    The group read names the entitlements and their status only (the contract's short
    model has no expiry), so each live one is read on its own. The invoice is recorded as
    applied only once every entitlement is known to cover it; anything that cannot be
    confirmed raises, so the event is retried or reported. `provisioned` is the outcome
    to answer with when the same delivery has just provisioned the licence; `group`
    is the group when the caller has just read it, `reads` entitlements it has just read.
    """
    period_end = invoice.period_end
    if period_end is None or state.group_id is None:
        return provisioned or Outcome.ignored(
            f"invoice {invoice.id} has no subscription period to renew"
        )
    group = group or ctx.group_with_entitlements(state.group_id)
    renewed = [
        entitlement.id
        for entitlement in group.entitlements
        if entitlement.status not in _INACTIVE
        and renew_until_covered(ctx, entitlement.id, period_end, (reads or {}).get(entitlement.id))
    ]
    state = attrs.evolve(
        state, renewed_invoices=remember_invoice(state.renewed_invoices, invoice.id)
    )
    ctx.save(state)
    until = day(period_end)
    if provisioned is not None:
        return provisioned
    if not renewed:
        return Outcome(
            OutcomeKind.DUPLICATE,
            f"entitlements of group {group.id} already cover the period ending {until}",
        )
    return Outcome(
        OutcomeKind.RENEWED,
        f"renewed {len(renewed)} entitlement(s) of group {group.id} to cover the period "
        f"ending {until} (invoice {invoice.id})",
    )


def remember_invoice(invoices: tuple[str, ...], invoice_id: str) -> tuple[str, ...]:
    """The applied invoices with `invoice_id` added, keeping the newest ones."""
    if invoice_id in invoices:
        return invoices
    return (*invoices, invoice_id)[-MAX_REMEMBERED_INVOICES:]


def renew_until_covered(
    ctx: FlowContext, entitlement_id: str, period_end: int, known: Entitlement | None = None
) -> bool:
    """Renew one entitlement until its expiry covers `period_end`; True if renewed.

    Usually one renew does it. When renewals arrive out of order (the later one first),
    one period may not be enough, so renew again, bounded. After a renew (204, no body)
    the new expiry follows from Zentitle2's documented rule
    ([`Entitlement.renewed_expiry`][zentitle_stripe.zentitle.models.Entitlement.renewed_expiry]);
    it is read back only when that prediction falls short or cannot be made, which keeps
    the usual cost at one read and one renew.
    """
    marker = CreateMarker.read(
        ctx, f"renew-sent:{entitlement_id}", f"a renewal of entitlement {entitlement_id}"
    )
    marker.wait_for(ctx)  # a renew sent moments ago may still land: read once it cannot
    in_doubt = marker.pending
    marker = marker.confirm(ctx)  # past the window: the read below shows what landed
    # An earlier read is good enough unless a renew was in doubt: then only a fresh read
    # shows whether it landed.
    current = (
        known
        if known is not None and not in_doubt
        else ctx.zentitle.get_entitlement(entitlement_id)
    )
    if current.status in _INACTIVE or current.license_type == "perpetual":
        return False  # disabled meanwhile, or never expires: nothing to extend
    target = period_end - COVERAGE_SLACK
    # A renew sent by an earlier attempt whose answer was lost, and that the read shows
    # landed, is this delivery's renewal: `renewed`, so its outcome hooks run.
    renewed = in_doubt
    for _ in range(MAX_RENEWS_PER_EVENT):
        expiry = current.expiry_date
        if expiry is None:
            raise _unreadable_expiry(current)
        if expiry.timestamp() >= target:
            return renewed
        predicted = current.renewed_expiry(datetime.fromtimestamp(ctx.clock(), timezone.utc))
        landed_late = _renew_once(ctx, current, marker.attempt(ctx))
        renewed = True
        if landed_late is not None:
            current = landed_late
        elif predicted is not None and predicted.timestamp() >= target:
            return True  # known from the documented rule; a read would only repeat it
        else:
            current = ctx.zentitle.get_entitlement(entitlement_id)
    if current.expiry_date is not None and current.expiry_date.timestamp() >= target:
        return True
    paid = day(period_end)
    raise ProvisioningConfigError(
        f"entitlement {entitlement_id} ({current.sku}) still expires "
        f"{current.expiry_date.date().isoformat() if current.expiry_date else 'never'}, "
        f"before the paid period ends on {paid}, after {MAX_RENEWS_PER_EVENT} renewals: "
        "its Zentitle2 plan period may not match the Stripe price's interval; fix the "
        "plan, then replay this event"
    )


def _renew_once(
    ctx: FlowContext, entitlement: Entitlement, marker: CreateMarker
) -> Entitlement | None:
    """One renew (recorded as sent in `marker`); after a failure that may have landed,
    read back to see if it did.

    Returns the read-back entitlement when the renew landed although its answer was
    lost, `None` after a clean 204; either confirms the marker. A renew that did not land
    re-raises: one refused outright (a 4xx, or never sent) withdraws the marker; one
    that got a 5xx or no answer may still land and keeps it, so the next attempt waits
    out the window before it reads again.
    """
    try:
        ctx.zentitle.renew_entitlement(entitlement.id)
    except ZentitleAPIError as exc:
        if not exc.may_have_landed:
            marker.withdraw(ctx)
            raise
        if entitlement.expiry_date is None:
            raise
        after = ctx.zentitle.get_entitlement(entitlement.id)
        if after.expiry_date is None or after.expiry_date <= entitlement.expiry_date:
            # Not landed *yet*: a 5xx from a gateway, like no answer at all, can come
            # while the backend still works on it, so the marker stays and the next
            # attempt waits out the window before it reads again.
            raise
        logger.info("renew of %s landed despite %s", entitlement.id, exc)
        marker.confirm(ctx)
        return after
    marker.confirm(ctx)
    return None


def _unreadable_expiry(entitlement: Entitlement) -> Exception:
    """Why a renewal cannot be confirmed when Zentitle2 shows no expiry."""
    if entitlement.status == "created" or entitlement.activation_date is None:
        return ProvisioningConfigError(
            f"entitlement {entitlement.id} ({entitlement.sku}) is not activated yet, so it has "
            "no expiry and Zentitle2 cannot renew it (renew needs an activated subscription); "
            "replay this event once it is activated"
        )
    return TransientError(
        f"Zentitle2 shows no expiry for subscription entitlement {entitlement.id} "
        f"({entitlement.sku}, status {entitlement.status}), so the renewal cannot be "
        "confirmed; retry later",
        retry_after=30,
    )
