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

One module per event or concern: `first_payment`, `renewal`, `cancellation`, `charges`
(refunds and disputes), `customers` (customer matching), `locks`, `activation`
(activation e-mail details) and `context` (what they share).
[`Provisioning`][zentitle_stripe.flows.Provisioning] only dispatches to them.
"""

from __future__ import annotations

from ..catalogue import CODES_METADATA_KEY, CUSTOMER_METADATA_KEY, REQUIRED_EVENTS, SKU_METADATA_KEY
from ..exceptions import InvalidPayloadError, TransientError
from ..responses import Outcome, OutcomeKind
from ..stripe.events import Invoice, StripeEvent, parse_invoice, parse_subscription
from ..zentitle.models import Entitlement
from .activation import ActivationDetails, activation_details
from .cancellation import disable_group, subscription_deleted
from .charges import CHARGE_EVENTS, charge_event, charge_ignored, held_back
from .context import FlowContext
from .context import logger as logger
from .customers import pending_key as _pending  # noqa: F401
from .first_payment import METADATA_VALUE_LIMIT as _METADATA_VALUE_LIMIT  # noqa: F401
from .first_payment import LicensedLine as _LicensedLine  # noqa: F401
from .first_payment import provision
from .items import desired_items, reconcile_items
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


UPDATED_EVENT = "customer.subscription.updated"
"""Items and quantity changes; a missed one heals at the next renewal."""
_PAYING = frozenset({"active", "trialing", "past_due"})
_HANDLED = frozenset((*REQUIRED_EVENTS, UPDATED_EVENT))
"""The event types these flows implement; the policy chooses among them."""


class Provisioning(FlowContext):
    """The [`EventProcessor`][zentitle_stripe.provisioner.EventProcessor] for licences.

    `invoice.paid` provisions (first payment) or renews (`subscription_cycle`);
    `customer.subscription.deleted` revokes. `lookup_key_fallback` lets a Price's
    `lookup_key` stand in for a missing `offering_sku`; `seat_policy` says whether a
    line quantity of N means N times the offering's seats.

    It is the flows' `FlowContext` (the clients, storage and settings they share), so a
    client set on it is the one every flow uses.
    """

    @property
    def event_types(self) -> frozenset[str]:
        """The event types the lifecycle policy acts on."""
        return (_HANDLED & frozenset(self.policy.events())) | CHARGE_EVENTS

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
        if event.type in CHARGE_EVENTS:
            return charge_ignored(self, event)
        if event.type != "invoice.paid":
            return None
        try:
            invoice = parse_invoice(event.object)
        except (InvalidPayloadError, ValueError, TypeError):
            return None
        return _one_time(invoice) if invoice.subscription_id is None else None

    def process(self, event: StripeEvent, *, owner: str) -> Outcome:
        """Run the flow of one verified, claimed event, under its subscription's lock."""
        if event.type in CHARGE_EVENTS:
            return charge_event(self, event, owner)
        if event.type == "invoice.paid":
            invoice = parse_invoice(event.object)
            if invoice.subscription_id is None:
                return _one_time(invoice)
            with self.lock(f"subscription:{invoice.subscription_id}", owner):
                held = held_back(self, invoice.subscription_id)  # a refund or dispute
                return held or self._invoice_paid(invoice, invoice.subscription_id, owner)
        subscription = parse_subscription(event.object)
        with self.lock(f"subscription:{subscription.id}", owner):
            if event.type == UPDATED_EVENT:
                return held_back(self, subscription.id) or self._items_changed(subscription.id)
            return subscription_deleted(self, subscription.id, subscription.customer_id)

    def _items_changed(self, subscription_id: str) -> Outcome:
        """Reconcile the group with the subscription's items as Stripe has them now.

        Fresh state, not the event's snapshot, so an older update delivered late never
        undoes a newer one. Before the first payment is provisioned there is no group:
        a paying subscription's update is retried (503) until it is, so a change made
        between checkout and the first `invoice.paid` is not lost.
        """
        state = self.subscription_state(subscription_id)
        if state.canceled:
            return Outcome.ignored(f"subscription {subscription_id} is cancelled")
        fresh = self.stripe.retrieve_subscription(subscription_id)
        if state.group_id is None or not state.codes_written:
            if fresh.status in _PAYING:
                raise TransientError(
                    f"subscription {subscription_id} changed before its first payment was "
                    "provisioned; retry once it is",
                    retry_after=60,
                )
            return Outcome.ignored(
                f"subscription {subscription_id} ({fresh.status}) has no licence to update"
            )
        return self._reconciled(subscription_id, state.group_id, desired_items(self, fresh))

    def _reconciled(self, subscription_id: str, group_id: str, desired: dict[str, int]) -> Outcome:
        changes = reconcile_items(self, self.group_with_entitlements(group_id), desired)
        if not changes and changes.held_back:
            return Outcome.ignored(
                f"entitlement group {group_id} of subscription {subscription_id} is switched "
                f"off, so {', '.join(changes.held_back)} is not added to it now; the first "
                "reconciliation once it is live again (at the latest the next renewal) adds it"
            )
        if not changes:
            return Outcome(
                OutcomeKind.DUPLICATE,
                f"entitlement group {group_id} already matches subscription {subscription_id}",
            )
        return Outcome(
            OutcomeKind.UPDATED,
            f"entitlement group {group_id} of subscription {subscription_id}: "
            + "; ".join(changes),
        )

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
            # Every renewal reconciles the items too, so a missed update heals here.
            fresh = self.stripe.retrieve_subscription(subscription_id)
            group = self.group_with_entitlements(state.group_id)
            reads: dict[str, Entitlement] = {}
            if reconcile_items(self, group, desired_items(self, fresh), reads).stale:
                group = self.group_with_entitlements(state.group_id)  # statuses changed
            return renew(self, invoice, state, group=group, reads=reads)
        if invoice.billing_reason == "subscription_update":
            # A proration invoice pays for a change, not a new term: never extends.
            fresh = self.stripe.retrieve_subscription(subscription_id)
            return self._reconciled(subscription_id, state.group_id, desired_items(self, fresh))
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
