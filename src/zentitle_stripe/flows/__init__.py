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

One module per event or concern: `first_payment`, `renewal`, `cancellation`, `items`,
`status` (payment trouble, pause), `trials`, `payments`, `charges` (refunds and disputes),
`customers` (customer matching), `locks`, `activation` (activation e-mail details) and
`context` (what they share).
[`Provisioning`][zentitle_stripe.flows.Provisioning] only dispatches to them.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ..catalogue import CODES_METADATA_KEY, CUSTOMER_METADATA_KEY, SKU_METADATA_KEY
from ..exceptions import InvalidPayloadError, TransientError
from ..responses import Outcome, OutcomeKind
from ..storage import SubscriptionState
from ..stripe.events import Invoice, StripeEvent, Subscription, parse_invoice, parse_subscription
from .activation import ActivationDetails, activation_details
from .cancellation import disable_group, subscription_deleted
from .charges import (
    CHARGE_EVENTS,
    DISPUTE_EVENT,
    REFUND_EVENT,
    charge_event,
    charge_ignored,
    held_back,
)
from .context import FlowContext
from .context import logger as logger
from .customers import pending_key as _pending  # noqa: F401
from .first_payment import METADATA_VALUE_LIMIT as _METADATA_VALUE_LIMIT  # noqa: F401
from .first_payment import LicensedLine as _LicensedLine  # noqa: F401
from .first_payment import provision
from .items import desired_items, reconcile_items
from .payments import combined, paid_period, status_notes
from .renewal import COVERAGE_SLACK as COVERAGE_SLACK
from .renewal import MAX_REMEMBERED_INVOICES as MAX_REMEMBERED_INVOICES
from .renewal import MAX_RENEWS_PER_EVENT as MAX_RENEWS_PER_EVENT
from .renewal import remember_invoice as _remember  # noqa: F401
from .renewal import renew
from .status import apply_decision, decide
from .trials import follow_trial_end, trial_invoice, trial_of

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
"""Items, quantity and status changes; a missed one heals at the next renewal."""
PAUSED_EVENT = "customer.subscription.paused"
RESUMED_EVENT = "customer.subscription.resumed"
_PAYING = frozenset({"active", "trialing", "past_due"})


class Provisioning(FlowContext):
    """The [`EventProcessor`][zentitle_stripe.provisioner.EventProcessor] for licences.

    `invoice.paid` provisions (first payment, or a trial's licence) or renews
    (`subscription_cycle`); `customer.subscription.updated`, `.paused` and `.resumed`
    reconcile items and status; `customer.subscription.deleted` revokes. Which handler an
    event type reaches is the table `HANDLERS`. `lookup_key_fallback` lets a Price's
    `lookup_key` stand in for a missing `offering_sku`; `seat_policy` says whether a
    line quantity of N means N times the offering's seats.

    It is the flows' `FlowContext` (the clients, storage and settings they share), so a
    client set on it is the one every flow uses.
    """

    @property
    def event_types(self) -> frozenset[str]:
        """The event types the lifecycle policy acts on."""
        return (_HANDLED & frozenset(self.policy.events())) | _ALWAYS

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
        if event.type in _PAUSE_EVENTS:
            return self._pause_ignored(event)
        if event.type != "invoice.paid":
            return None
        try:
            invoice = parse_invoice(event.object)
        except (InvalidPayloadError, ValueError, TypeError):
            return None
        return _one_time(invoice) if invoice.subscription_id is None else None

    def process(self, event: StripeEvent, *, owner: str) -> Outcome:
        """Run the flow of one verified, claimed event (see `HANDLERS`)."""
        return HANDLERS[event.type](self, event, owner)

    # -- invoice.paid ---------------------------------------------------------------------

    def _on_invoice_paid(self, event: StripeEvent, owner: str) -> Outcome:
        invoice = parse_invoice(event.object)
        if invoice.subscription_id is None:
            return _one_time(invoice)
        with self.lock(f"subscription:{invoice.subscription_id}", owner):
            held = held_back(self, invoice.subscription_id)  # a refund or dispute
            return held or self._invoice_paid(invoice, invoice.subscription_id, owner)

    def _invoice_paid(self, invoice: Invoice, subscription_id: str, owner: str) -> Outcome:
        """A payment, between two looks at the status when one is in play.

        A licence suspended for its status is enabled *before* a payment that ends the
        suspension (a renew skips disabled entitlements), and the status is applied
        again *after* a payment that provisioned or renewed while Stripe says
        `unpaid`, `paused`, ... (a late first payment is provisioned, then disabled).
        Without a suspension or a trial, no extra Stripe read is made.
        """
        state = self.subscription_state(subscription_id)
        trial = trial_of(self, invoice) if not state.canceled else None
        fresh = trial
        before: Outcome | None = None
        if state.suspended is not None and _provisioned(state) and not state.canceled:
            fresh = fresh or self.stripe.retrieve_subscription(subscription_id)
            decision = decide(self, state, fresh)
            if decision.action in ("live", "grace"):
                before = apply_decision(self, state, fresh, decision)
                state = self.subscription_state(subscription_id)
        if trial is not None:
            outcome = trial_invoice(self, invoice, state, trial, owner)
        else:
            outcome = self._payment(invoice, subscription_id, state, owner, fresh)
        state = self.subscription_state(subscription_id)
        after: Outcome | None = None
        if not state.canceled and (fresh is not None or state.suspended is not None):
            fresh = fresh or self.stripe.retrieve_subscription(subscription_id)
            decision = decide(self, state, fresh)
            if _provisioned(state) or decision.action in ("suspend", "cancel"):
                after = apply_decision(self, state, fresh, decision)
        return combined(outcome, before, after)

    def _payment(
        self,
        invoice: Invoice,
        subscription_id: str,
        state: SubscriptionState,
        owner: str,
        fresh: Subscription | None = None,
    ) -> Outcome:
        """Which flow a payment takes: first payment, renewal, or nothing to do (`fresh`:
        the Subscription when this delivery has read it already)."""
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
            return paid_period(self, invoice, state, fresh)
        if invoice.billing_reason == "subscription_update":
            # A proration invoice pays for a change, not a new term: never extends.
            fresh = fresh or self.stripe.retrieve_subscription(subscription_id)
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

    # -- customer.subscription.* ----------------------------------------------------------

    def _on_subscription_deleted(self, event: StripeEvent, owner: str) -> Outcome:
        subscription = parse_subscription(event.object)
        with self.lock(f"subscription:{subscription.id}", owner):
            return subscription_deleted(self, subscription.id, subscription.customer_id)

    def _on_subscription_changed(self, event: StripeEvent, owner: str) -> Outcome:
        ignored = self._pause_ignored(event)
        if ignored is not None:
            return ignored
        subscription = parse_subscription(event.object)
        with self.lock(f"subscription:{subscription.id}", owner):
            held = held_back(self, subscription.id)  # a refund or dispute
            return held or self._subscription_changed(subscription.id)

    def _pause_ignored(self, event: StripeEvent) -> Outcome | None:
        """`.paused` / `.resumed` with `pause="ignore"`: answered and logged as such,
        with no remote call; `None` otherwise."""
        if event.type not in _PAUSE_EVENTS or self.policy.pause != "ignore":
            return None
        logger.info("event %s (%s): pause='ignore' keeps the licence", event.id, event.type)
        return Outcome.ignored(
            f"{event.type}: ZENTITLE_STRIPE_ON_PAUSE=ignore keeps the licence as it is; set "
            "it to disable to disable licences while a subscription is paused"
        )

    def _subscription_changed(self, subscription_id: str) -> Outcome:
        """Status, trial end and items as Stripe has them now.

        Fresh state, not the event's snapshot, so an older update delivered late never
        undoes a newer one, and `updated`, `paused` and `resumed` all converge on the
        same answer. A suspension (or cancellation) is remembered even before the first
        payment is provisioned; any other change to a paying subscription without a
        licence yet is retried (503) until the first payment is, so a change made
        between checkout and the first `invoice.paid` is not lost.
        """
        state = self.subscription_state(subscription_id)
        if state.canceled:
            return Outcome.ignored(f"subscription {subscription_id} is cancelled")
        fresh = self.stripe.retrieve_subscription(subscription_id)
        decision = decide(self, state, fresh)
        if decision.action in ("suspend", "cancel"):
            outcome = apply_decision(self, state, fresh, decision)
            assert outcome is not None
            return outcome
        if not _provisioned(state):
            if fresh.status == "trialing" and self.policy.trial == "wait":
                return Outcome.ignored(
                    f"subscription {subscription_id} is on trial and trial='wait': no "
                    "licence until the first paid invoice"
                )
            if fresh.status in _PAYING:
                raise TransientError(
                    f"subscription {subscription_id} changed before its first payment was "
                    "provisioned; retry once it is",
                    retry_after=60,
                )
            return Outcome.ignored(
                f"subscription {subscription_id} ({fresh.status}) has no licence to update"
            )
        assert state.group_id is not None
        status = apply_decision(self, state, fresh, decision)
        trial = follow_trial_end(self, self.subscription_state(subscription_id), fresh)
        items = self._reconciled(subscription_id, state.group_id, desired_items(self, fresh))
        outcome = combined(items, status, trial)
        notes = status_notes(fresh, decision)
        if notes and outcome.kind is OutcomeKind.DUPLICATE:
            if fresh.status == "paused":  # pause='ignore': say so, and log it
                logger.info("subscription %s paused; pause='ignore' keeps its licence", fresh.id)
                return Outcome.ignored(f"{outcome.reason}; {notes}")
            return Outcome(OutcomeKind.DUPLICATE, f"{outcome.reason}; {notes}")
        return attrs.evolve(outcome, reason=f"{outcome.reason}; {notes}") if notes else outcome

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


Handler = Callable[[Provisioning, StripeEvent, str], Outcome]
HANDLERS: dict[str, Handler] = {
    "invoice.paid": Provisioning._on_invoice_paid,
    "customer.subscription.deleted": Provisioning._on_subscription_deleted,
    UPDATED_EVENT: Provisioning._on_subscription_changed,
    PAUSED_EVENT: Provisioning._on_subscription_changed,
    RESUMED_EVENT: Provisioning._on_subscription_changed,
    REFUND_EVENT: charge_event,
    DISPUTE_EVENT: charge_event,
}
"""Event type -> the flow it runs, with `(provisioning, event, owner)`. Add a row to
handle another event type (and name it in `LifecyclePolicy.events` so `connect`
subscribes the endpoint to it)."""
_HANDLED = frozenset(HANDLERS)
"""The event types these flows implement; the policy chooses among them."""
_PAUSE_EVENTS = frozenset({PAUSED_EVENT, RESUMED_EVENT})
_ALWAYS = CHARGE_EVENTS | _PAUSE_EVENTS
"""Handled whatever the policy, so that an `ignore` is answered as such (and logged),
not as an unknown event type."""


def _provisioned(state: SubscriptionState) -> bool:
    return state.group_id is not None and state.codes_written


def _one_time(invoice: Invoice) -> Outcome:
    return Outcome.ignored(
        f"invoice {invoice.id} is a one-time payment (no subscription): "
        "licences are only granted for subscriptions"
    )
