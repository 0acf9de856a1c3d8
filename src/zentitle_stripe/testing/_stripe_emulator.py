"""An in-memory Stripe for offline tests and the demo.

It serves the few `/v1` endpoints zentitle-stripe calls, form-encoded and authenticated
like the real API, so tests exercise stripe-python's real HTTP code (over a loopback
uvicorn server from [`serve`][zentitle_stripe.testing.FakeService.serve], or in process
through [`transport`][zentitle_stripe.testing.FakeService.transport]). A story API
(`create_subscription`, `renew_subscription`, `cancel_subscription`, ...) changes the
state and returns the webhook event Stripe would send, rendered by the same factories as
[`zentitle_stripe.testing`][zentitle_stripe.testing] in the shape of the emulator's
`api_version`. The route handlers live in `_stripe_resources.py`, the recording, faults
and serving in `_fake.py`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ._events import NEW_API_VERSION, make_event, sign_stripe_payload
from ._fake import FaultKind, RecordedRequest
from ._stripe_payments import _PaymentRoutes
from ._stripe_resources import (
    _JSON,
    _advance,
    _CatalogueRoutes,
    _CustomerRoutes,
    _EventRoutes,
    _WebhookEndpointRoutes,
)
from ._stripe_stories import _StatusStories

__all__ = ["FaultKind", "RecordedRequest", "StripeEmulator"]


class StripeEmulator(
    _CatalogueRoutes,
    _CustomerRoutes,
    _StatusStories,
    _WebhookEndpointRoutes,
    _EventRoutes,
    _PaymentRoutes,
):
    """An in-memory Stripe; see the module docstring.

    `clock` (shared with the Zentitle2 emulator's type) dates `created` and periods;
    `now` reads and sets it in unix seconds. `embedded_line_limit` caps the lines
    embedded in an invoice (the rest are reachable through `GET /v1/invoices/{id}/lines`),
    as Stripe does. `requests` records every request; `inject_fault` makes the next
    matching requests fail (its `timeout` does the work and holds the answer `delay`
    seconds, or raises `httpx.ReadTimeout` in process).
    """

    def __init__(
        self,
        api_key: str = "sk_test_emulator",
        webhook_secret: str = "whsec_emulator",  # noqa: S107 (a test fixture)
        api_version: str = NEW_API_VERSION,
    ) -> None:
        super().__init__(api_key, webhook_secret, api_version)
        self._routes = [
            (method, re.compile(pattern), handler)
            for method, pattern, handler in [
                ("GET", r"/v1/prices/([^/]+)", self._get_price),
                ("GET", r"/v1/products/([^/]+)", self._get_product),
                ("GET", r"/v1/invoices/([^/]+)/lines", self._list_invoice_lines),
                ("GET", r"/v1/subscriptions/([^/]+)", self._get_subscription),
                ("POST", r"/v1/subscriptions/([^/]+)", self._update_subscription),
                ("GET", r"/v1/customers/([^/]+)", self._get_customer),
                ("POST", r"/v1/customers/([^/]+)", self._update_customer),
                ("GET", r"/v1/events()", self._list_events),
                ("GET", r"/v1/webhook_endpoints()", self._list_endpoints),
                ("POST", r"/v1/webhook_endpoints()", self._create_endpoint),
                ("GET", r"/v1/webhook_endpoints/([^/]+)", self._get_endpoint),
                ("POST", r"/v1/webhook_endpoints/([^/]+)", self._update_endpoint),
                ("DELETE", r"/v1/webhook_endpoints/([^/]+)", self._delete_endpoint),
                ("GET", r"/v1/account()", self._get_account),
                ("GET", r"/v1/prices()", self._list_prices),
                ("GET", r"/v1/subscriptions()", self._list_subscriptions),
                ("GET", r"/v1/charges/([^/]+)", self._get_charge),
                ("GET", r"/v1/invoices/([^/]+)", self._get_invoice),
                ("GET", r"/v1/invoice_payments()", self._list_invoice_payments),
            ]
        ]

    def __repr__(self) -> str:
        return f"StripeEmulator(api_version={self.api_version!r})"

    # -- seeding --------------------------------------------------------------------------

    def create_product(self, name: str, metadata: Mapping[str, str] | None = None) -> str:
        """Add a Product; returns its id."""
        with self._lock:
            product = self._new_object(self._products, "prod", "product", active=True, name=name)
            product["metadata"] = dict(metadata or {})
            return str(product["id"])

    def create_price(
        self,
        product_id: str,
        *,
        metadata: Mapping[str, str] | None = None,
        lookup_key: str | None = None,
        interval: Literal["day", "week", "month", "year"] = "year",
        recurring: bool = True,
        unit_amount: int = 4900,
    ) -> str:
        """Add a Price of `product_id` (recurring every `interval` unless not
        `recurring`); returns its id."""
        with self._lock:
            self._require(self._products, product_id, "product")
            price = self._new_object(
                self._prices,
                "price",
                "price",
                active=True,
                currency="usd",
                lookup_key=lookup_key,
                metadata=dict(metadata or {}),
                product=product_id,
                recurring={"interval": interval, "interval_count": 1, "usage_type": "licensed"}
                if recurring
                else None,
                type="recurring" if recurring else "one_time",
                unit_amount=unit_amount,
                unit_amount_decimal=str(unit_amount),
            )
            return str(price["id"])

    def create_customer(
        self,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Add a Customer; returns its id."""
        with self._lock:
            customer = self._new_object(self._customers, "cus", "customer", email=email, name=name)
            customer["metadata"] = dict(metadata or {})
            return str(customer["id"])

    def archive_price(self, price_id: str) -> None:
        """Make a Price inactive, as archiving it in the Dashboard does."""
        with self._lock:
            self._require(self._prices, price_id, "price")["active"] = False

    def delete_customer(self, customer_id: str) -> None:
        """Delete a Customer; Stripe then serves a `{"deleted": true}` stub for its id."""
        with self._lock:
            self._require(self._customers, customer_id, "customer")
            self._customers[customer_id] = {
                "id": customer_id,
                "object": "customer",
                "deleted": True,
            }

    # -- stories: each returns the webhook event Stripe would send --------------------------

    def create_subscription(
        self,
        customer_id: str,
        items: Sequence[tuple[str, int]],
        *,
        trial_days: int | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Start a subscription on `(price_id, quantity)` items and pay its first invoice;
        returns `(subscription_id, invoice.paid event)`.

        With `trial_days` it starts `trialing`: the first period ends at `trial_end` and
        its invoice (`subscription_create`) is paid at 0, as Stripe bills a trial.
        """
        with self._lock:
            self._require(self._customers, customer_id, "customer")
            if not items:
                raise ValueError("a subscription needs at least one item")
            prices = [self._require(self._prices, price_id, "price") for price_id, _ in items]
            for price in prices:
                if price["recurring"] is None:
                    raise ValueError(f"price {price['id']} is not recurring")
            subscription_id = self._new_id("sub")
            start = self.now
            trial_end = start + trial_days * 86400 if trial_days else None
            subscription: _JSON = {
                "id": subscription_id,
                "customer": customer_id,
                "status": "trialing" if trial_end else "active",
                "created": start,
                "metadata": {},
                "items": [
                    {"id": self._new_id("si"), "price": price_id, "quantity": quantity}
                    for price_id, quantity in items
                ],
                "current_period_start": start,
                "current_period_end": trial_end or _advance(start, prices[0]),
                "canceled_at": None,
                "ended_at": None,
                "cancellation_reason": None,
                "trial_start": start if trial_end else None,
                "trial_end": trial_end,
                "cancel_at_period_end": False,
            }
            self._subscriptions[subscription_id] = subscription
            paid = self._pay_subscription(subscription, "subscription_create", free=bool(trial_end))
            return subscription_id, paid

    def renew_subscription(self, subscription_id: str) -> dict[str, Any]:
        """Start the next period and pay it (`invoice.paid`, `subscription_cycle`).

        The clock moves to the new period's start if it is behind, as the renewal invoice
        is created then.
        """
        with self._lock:
            subscription = self._require(self._subscriptions, subscription_id, "subscription")
            if subscription["status"] != "active":
                raise ValueError(f"subscription {subscription_id} is {subscription['status']}")
            start = subscription["current_period_end"]
            first_price = self._prices[subscription["items"][0]["price"]]
            subscription["current_period_start"] = start
            subscription["current_period_end"] = _advance(start, first_price)
            self.now = max(self.now, start)
            return self._pay_subscription(subscription, "subscription_cycle")

    def change_items(
        self, subscription_id: str, items: Sequence[tuple[str, int]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Replace the items (an upgrade, downgrade or quantity change) mid-period;
        returns `(customer.subscription.updated, invoice.paid)` for the proration
        invoice (`subscription_update`), as Stripe sends them."""
        with self._lock:
            subscription = self._require(self._subscriptions, subscription_id, "subscription")
            for price_id, _ in items:
                self._require(self._prices, price_id, "price")
            kept = {item["price"]: item["id"] for item in subscription["items"]}
            subscription["items"] = [
                {"id": kept.get(price_id) or self._new_id("si"), "price": price_id, "quantity": n}
                for price_id, n in items
            ]
            updated = self._record_event(
                make_event(
                    "customer.subscription.updated",
                    self._render_subscription(subscription),
                    event_id=self._new_id("evt"),
                    api_version=self.api_version,
                    created=self.now,
                )
            )
            return updated, self._pay_subscription(subscription, "subscription_update")

    def one_time_payment(self, customer_id: str, price_id: str) -> dict[str, Any]:
        """Pay a one-off `manual` invoice for `price_id` (no subscription)."""
        with self._lock:
            self._require(self._customers, customer_id, "customer")
            self._require(self._prices, price_id, "price")
            return self._invoice_paid(
                customer_id,
                None,
                [(price_id, 1, None)],
                billing_reason="manual",
                period=(self.now, self.now),
            )

    def sign(self, event: Mapping[str, Any], *, timestamp: int | None = None) -> tuple[bytes, str]:
        """`(body, Stripe-Signature header)` for `event` with the emulator's webhook
        secret; signed at the real time unless `timestamp` is given, as a delivery is."""
        return sign_stripe_payload(event, self.webhook_secret, timestamp=timestamp)

    # -- inspection -----------------------------------------------------------------------

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        """The Subscription as `GET /v1/subscriptions/{id}` returns it."""
        with self._lock:
            return self._render_subscription(
                self._require(self._subscriptions, subscription_id, "subscription")
            )

    def customer(self, customer_id: str) -> dict[str, Any]:
        """The Customer as `GET /v1/customers/{id}` returns it."""
        with self._lock:
            return copy.deepcopy(self._require(self._customers, customer_id, "customer"))

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event generated so far, oldest first."""
        with self._lock:
            return copy.deepcopy(self._events)
