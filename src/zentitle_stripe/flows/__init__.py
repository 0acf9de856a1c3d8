"""The provisioning flows: Stripe payments in, Zentitle2 licences out, exactly once.

Neither Stripe nor Zentitle2 offers a transaction across both, and Zentitle2 has no
idempotency keys, so every flow is written to be *resumable*: each remote write is
preceded by a check that finds its earlier effect (the entitlement group by `orderRefId`,
the renewal by comparing each entitlement's expiry, read with
`GET /api/v1/entitlements/{id}`, with the paid period), and storage records each step
right after it succeeds. A crash at any point leaves state that the next delivery of the
same event (or a `replay`) completes without doing anything twice. A create or renew whose
answer was lost (a timeout, or a 5xx that a gateway may send after the backend acted) is
followed by a look, never by a blind repeat.

All work for one subscription runs under a per-subscription lock in storage, so a payment
and a cancellation of the same subscription never interleave their remote calls, even
across processes.

One module per event or concern: `first_payment`, `renewal`, `cancellation`,
`customers` (customer matching), `locks`, `activation` (activation e-mail details) and
`context` (what they share). [`Provisioning`][zentitle_stripe.flows.Provisioning] only
dispatches to them.
"""

from __future__ import annotations

from ..catalogue import CODES_METADATA_KEY, CUSTOMER_METADATA_KEY, REQUIRED_EVENTS, SKU_METADATA_KEY
from ..exceptions import InvalidPayloadError
from ..responses import Outcome, OutcomeKind
from ..stripe.events import Invoice, StripeEvent, parse_invoice, parse_subscription
from .activation import ActivationDetails, activation_details
from .cancellation import disable_group, subscription_deleted
from .context import FlowContext
from .context import logger as logger
from .customers import pending_key as _pending  # noqa: F401
from .first_payment import METADATA_VALUE_LIMIT as _METADATA_VALUE_LIMIT  # noqa: F401
from .first_payment import LicensedLine as _LicensedLine  # noqa: F401
from .first_payment import provision
from .renewal import COVERAGE_SLACK as COVERAGE_SLACK
from .renewal import MAX_REMEMBERED_INVOICES as MAX_REMEMBERED_INVOICES
from .renewal import MAX_RENEWS_PER_EVENT as MAX_RENEWS_PER_EVENT
from .renewal import remember_invoice as _remember  # noqa: F401
from .renewal import renew

__all__ = [
    "CODES_METADATA_KEY",
    "CUSTOMER_METADATA_KEY",
    "SKU_METADATA_KEY",
    "ActivationDetails",
    "Provisioning",
    "activation_details",
]
# Also importable from here under their names from before the split (tests reach some):
# COVERAGE_SLACK, MAX_RENEWS_PER_EVENT, MAX_REMEMBERED_INVOICES, logger and the private
# _pending, _remember, _LicensedLine and _METADATA_VALUE_LIMIT.


class Provisioning(FlowContext):
    """The [`EventProcessor`][zentitle_stripe.provisioner.EventProcessor] for licences.

    `invoice.paid` provisions (first payment) or renews (`subscription_cycle`);
    `customer.subscription.deleted` revokes. `lookup_key_fallback` lets a Price's
    `lookup_key` stand in for a missing `offering_sku`; `seat_policy` says whether a
    line quantity of N means N times the offering's seats.

    It is the flows' `FlowContext` (the clients, storage and settings they share), so a
    client set on it is the one every flow uses.
    """

    event_types = frozenset(REQUIRED_EVENTS)

    def clear_caches(self) -> None:
        """Forget cached Prices and offerings, so a replay after a set-up fix sees the fix."""
        for client in (self.stripe, self.zentitle):
            clear = getattr(client, "clear_caches", None)
            if callable(clear):
                clear()

    def settled(self, event: StripeEvent) -> Outcome | None:
        """The outcome of an event that needs no work (a one-time payment), so that it is
        recorded done without a claim; `None` for any other (and for unusable data,
        which the claimed path reports)."""
        if event.type != "invoice.paid":
            return None
        try:
            invoice = parse_invoice(event.object)
        except (InvalidPayloadError, ValueError, TypeError):
            return None
        return _one_time(invoice) if invoice.subscription_id is None else None

    def process(self, event: StripeEvent, *, owner: str) -> Outcome:
        """Run the flow of one verified, claimed event, under its subscription's lock."""
        if event.type == "invoice.paid":
            invoice = parse_invoice(event.object)
            if invoice.subscription_id is None:
                return _one_time(invoice)
            with self.lock(f"subscription:{invoice.subscription_id}", owner):
                return self._invoice_paid(invoice, invoice.subscription_id, owner)
        subscription = parse_subscription(event.object)
        with self.lock(f"subscription:{subscription.id}", owner):
            return subscription_deleted(self, subscription.id, subscription.customer_id)

    def _invoice_paid(self, invoice: Invoice, subscription_id: str, owner: str) -> Outcome:
        """Which flow a payment takes: first payment, renewal, or nothing to do."""
        state = self.subscription_state(subscription_id)
        if state.canceled:
            disabled = disable_group(self, state) if state.group_id else 0
            return Outcome.ignored(
                f"subscription {subscription_id} is cancelled, so its payment grants no "
                f"licence{f' (disabled {disabled} entitlements)' if disabled else ''}"
            )
        if invoice.id in state.renewed_invoices:
            return Outcome(
                OutcomeKind.DUPLICATE, f"invoice {invoice.id} was already applied to the licences"
            )
        if state.group_id is None or not state.codes_written:
            state, outcome = provision(self, invoice, state, owner)
            if invoice.billing_reason != "subscription_cycle":
                return outcome
            # A renewal that found no licence: the licence now exists; make sure it also
            # covers this period (a new group does already, so this renews nothing).
            return renew(self, invoice, state, provisioned=outcome)
        if invoice.billing_reason == "subscription_cycle":
            return renew(self, invoice, state)
        if invoice.billing_reason == "subscription_create":
            return Outcome(
                OutcomeKind.DUPLICATE,
                f"subscription {subscription_id} already has entitlement group {state.group_id}",
            )
        return Outcome.ignored(
            f"invoice {invoice.id} has billing_reason {invoice.billing_reason!r}, which does "
            "not change licences (only the first payment and renewals do)"
        )


def _one_time(invoice: Invoice) -> Outcome:
    return Outcome.ignored(
        f"invoice {invoice.id} is a one-time payment (no subscription): "
        "licences are only granted for subscriptions"
    )
