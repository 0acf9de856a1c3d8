"""The Stripe emulator's status stories: trials, failed renewals, dunning, pause and
resume, a cancellation scheduled for the period's end.

Each changes the subscription as Stripe would and returns the events Stripe sends for
it, rendered in the emulator's `api_version` (`customer.subscription.updated` with
`data.previous_attributes`). Mixed into
[`StripeEmulator`][zentitle_stripe.testing.StripeEmulator].
"""

from __future__ import annotations

from typing import Any

from ._stripe_resources import _JSON, _advance, _SubscriptionRoutes

__all__: list[str] = []


class _StatusStories(_SubscriptionRoutes):
    """Stories that move a subscription's status (see the module docstring)."""

    def _next_period(self, subscription: _JSON) -> None:
        """Move to the next period (from the current one's end) and the clock with it."""
        start = subscription["current_period_end"]
        first_price = self._prices[subscription["items"][0]["price"]]
        subscription["current_period_start"] = start
        subscription["current_period_end"] = _advance(start, first_price)
        self.now = max(self.now, start)

    def _set_status(self, subscription: _JSON, status: str) -> _JSON:
        """Change the status; the `previous_attributes` of the update it makes."""
        previous = {"status": subscription["status"]}
        subscription["status"] = status
        return previous

    def end_trial(self, subscription_id: str, *, paid: bool = True) -> list[dict[str, Any]]:
        """The trial ends (the clock moves to `trial_end`) and the first real period is
        billed: paid, `[invoice.paid (subscription_cycle), customer.subscription.updated]`
        (`trialing` to `active`); unpaid, `[customer.subscription.updated]` (to
        `past_due`, the invoice open)."""
        with self._lock:
            subscription = self._require(self._subscriptions, subscription_id, "subscription")
            if subscription["status"] != "trialing":
                raise ValueError(f"subscription {subscription_id} is {subscription['status']}")
            self._next_period(subscription)
            previous = self._set_status(subscription, "active" if paid else "past_due")
            events = [self._pay_subscription(subscription, "subscription_cycle")] if paid else []
            return [
                *events,
                self._subscription_event("customer.subscription.updated", subscription, previous),
            ]

    def extend_trial(self, subscription_id: str, days: int) -> dict[str, Any]:
        """Move `trial_end` (and the trial period's end) by `days`; returns the update."""
        with self._lock:
            subscription = self._require(self._subscriptions, subscription_id, "subscription")
            if subscription["status"] != "trialing":
                raise ValueError(f"subscription {subscription_id} is {subscription['status']}")
            previous = {"trial_end": subscription["trial_end"]}
            subscription["trial_end"] += days * 86400
            subscription["current_period_end"] = subscription["trial_end"]
            return self._subscription_event("customer.subscription.updated", subscription, previous)

    def fail_renewal(self, subscription_id: str) -> dict[str, Any]:
        """The renewal's payment fails: the next period starts (the clock moves to it),
        its invoice stays open and the status goes `past_due`; returns the update."""
        with self._lock:
            subscription = self._require(self._subscriptions, subscription_id, "subscription")
            if subscription["status"] != "active":
                raise ValueError(f"subscription {subscription_id} is {subscription['status']}")
            self._next_period(subscription)
            previous = self._set_status(subscription, "past_due")
            return self._subscription_event("customer.subscription.updated", subscription, previous)

    def set_status(self, subscription_id: str, status: str) -> dict[str, Any]:
        """Set the status as Stripe's dunning or expiry does (`unpaid` once retries are
        exhausted, `incomplete_expired`, ...); returns `customer.subscription.updated`."""
        with self._lock:
            subscription = self._require(self._subscriptions, subscription_id, "subscription")
            previous = self._set_status(subscription, status)
            return self._subscription_event("customer.subscription.updated", subscription, previous)

    def pay_overdue(self, subscription_id: str) -> list[dict[str, Any]]:
        """The open invoice of the current period is paid at last (`past_due` or
        `unpaid` to `active`): `[invoice.paid (subscription_cycle), updated]`."""
        with self._lock:
            subscription = self._require(self._subscriptions, subscription_id, "subscription")
            if subscription["status"] not in ("past_due", "unpaid"):
                raise ValueError(f"subscription {subscription_id} is {subscription['status']}")
            previous = self._set_status(subscription, "active")
            paid = self._pay_subscription(subscription, "subscription_cycle")
            return [
                paid,
                self._subscription_event("customer.subscription.updated", subscription, previous),
            ]

    def pause(self, subscription_id: str) -> list[dict[str, Any]]:
        """Pause (`POST /v1/subscriptions/{id}/pause`, endive): status `paused`, no more
        invoices; `[customer.subscription.paused, customer.subscription.updated]`."""
        with self._lock:
            subscription = self._require(self._subscriptions, subscription_id, "subscription")
            previous = self._set_status(subscription, "paused")
            return [
                self._subscription_event("customer.subscription.paused", subscription),
                self._subscription_event("customer.subscription.updated", subscription, previous),
            ]

    def resume(self, subscription_id: str) -> list[dict[str, Any]]:
        """Resume with `billing_cycle_anchor=now` (Stripe's default): a new period starts
        now and its resumption invoice is paid; `[customer.subscription.resumed,
        customer.subscription.updated, invoice.paid]`. Stripe does not document that
        invoice's `billing_reason`; a new period is what `subscription_cycle` means."""
        with self._lock:
            subscription = self._require(self._subscriptions, subscription_id, "subscription")
            if subscription["status"] != "paused":
                raise ValueError(f"subscription {subscription_id} is {subscription['status']}")
            first_price = self._prices[subscription["items"][0]["price"]]
            subscription["current_period_start"] = self.now
            subscription["current_period_end"] = _advance(self.now, first_price)
            previous = self._set_status(subscription, "active")
            return [
                self._subscription_event("customer.subscription.resumed", subscription),
                self._subscription_event("customer.subscription.updated", subscription, previous),
                self._pay_subscription(subscription, "subscription_cycle"),
            ]

    def schedule_cancel(
        self, subscription_id: str, *, at_period_end: bool = True
    ) -> dict[str, Any]:
        """Set (or, with `at_period_end=False`, undo) `cancel_at_period_end`; returns the
        update. Nothing else changes until the period ends."""
        with self._lock:
            subscription = self._require(self._subscriptions, subscription_id, "subscription")
            previous = {"cancel_at_period_end": bool(subscription.get("cancel_at_period_end"))}
            subscription["cancel_at_period_end"] = at_period_end
            subscription["canceled_at"] = self.now if at_period_end else None
            return self._subscription_event("customer.subscription.updated", subscription, previous)

    def end_period(self, subscription_id: str) -> dict[str, Any]:
        """The period of a subscription set to cancel at its end ends: the clock moves
        there and the subscription is deleted; returns `customer.subscription.deleted`."""
        with self._lock:
            subscription = self._require(self._subscriptions, subscription_id, "subscription")
            if not subscription.get("cancel_at_period_end"):
                raise ValueError(f"subscription {subscription_id} is not set to cancel")
            self.now = max(self.now, subscription["current_period_end"])
            subscription.update(
                status="canceled",
                ended_at=self.now,
                cancellation_reason="cancellation_requested",
            )
            return self._cancelled_event(subscription)

    def cancel_subscription(self, subscription_id: str) -> dict[str, Any]:
        """Cancel now; returns `customer.subscription.deleted` with the final Subscription
        (metadata included, e.g. written-back `activation_codes`)."""
        with self._lock:
            subscription = self._require(self._subscriptions, subscription_id, "subscription")
            subscription.update(
                status="canceled",
                canceled_at=self.now,
                ended_at=self.now,
                cancellation_reason="cancellation_requested",
            )
            return self._cancelled_event(subscription)
