"""What the library needs from Stripe, as protocols a fake can implement.

basil+ webhook payloads carry only price *ids*, so provisioning must fetch Prices (to read
`offering_sku`), page through long invoices and write activation codes back to the
Subscription: [`StripeAPI`][zentitle_stripe.stripe.api.StripeAPI]. The operations commands
need a few calls more: [`StripeOpsAPI`][zentitle_stripe.stripe.api.StripeOpsAPI].
[`StripeGateway`][zentitle_stripe.stripe.gateway.StripeGateway] implements both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from .charges import Charge
from .events import Invoice, InvoiceLine, Subscription
from .models import Account, Customer, KeyMode, Price, Product, WebhookEndpoint

__all__ = ["StripeAPI", "StripeOpsAPI"]


class StripeAPI(Protocol):
    """The Stripe operations provisioning uses; every failure is a `StripeAPIError`."""

    def retrieve_price(self, price_id: str) -> Price:
        """Fetch a Price (`GET /v1/prices/{id}`); implementations may cache it."""
        ...

    def retrieve_product(self, product_id: str) -> Product:
        """Fetch a Product (`GET /v1/products/{id}`) to diagnose a SKU set on it."""
        ...

    def list_invoice_lines(self, invoice_id: str) -> list[InvoiceLine]:
        """Every line of an invoice (`GET /v1/invoices/{id}/lines`, all pages)."""
        ...

    def retrieve_subscription(self, subscription_id: str) -> Subscription:
        """Fetch a Subscription with full item Prices (`GET /v1/subscriptions/{id}`)."""
        ...

    def update_subscription_metadata(
        self, subscription_id: str, metadata: Mapping[str, str]
    ) -> None:
        """Merge keys into the Subscription's metadata (`POST /v1/subscriptions/{id}`);
        keys not given are kept, `""` removes a key."""
        ...

    def retrieve_customer(self, customer_id: str) -> Customer:
        """Fetch a Customer (`GET /v1/customers/{id}`), possibly a deleted stub."""
        ...

    def update_customer_metadata(self, customer_id: str, metadata: Mapping[str, str]) -> None:
        """Merge keys into the Customer's metadata (`POST /v1/customers/{id}`)."""
        ...

    def retrieve_charge(self, charge_id: str) -> Charge:
        """Fetch a Charge (`GET /v1/charges/{id}`): its refund state, fresh."""
        ...

    def retrieve_invoice(self, invoice_id: str) -> Invoice:
        """Fetch an Invoice (`GET /v1/invoices/{id}`): which subscription it bills."""
        ...

    def invoice_of_payment_intent(self, payment_intent_id: str) -> str | None:
        """The invoice a PaymentIntent paid (`GET /v1/invoice_payments?payment[...]`),
        `None` when it paid none: since basil a Charge no longer names its invoice."""
        ...


@runtime_checkable
class StripeOpsAPI(Protocol):
    """The extra Stripe calls of the operations commands (`doctor`, `connect`,
    `reconcile`), kept apart from [`StripeAPI`][zentitle_stripe.stripe.api.StripeAPI] so
    provisioning fakes stay small."""

    @property
    def mode(self) -> KeyMode:
        """`test`/`live`/`unknown`, from the key prefix."""
        ...

    def retrieve_account(self) -> Account:
        """The key's account (`GET /v1/account`): a cheap authenticated call."""
        ...

    def list_prices(self, *, active: bool = True, recurring: bool = True) -> Iterator[Price]:
        """Prices, all pages (`GET /v1/prices?active=&type=recurring`)."""
        ...

    def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        """Every webhook endpoint of the account (`GET /v1/webhook_endpoints`)."""
        ...

    def create_webhook_endpoint(
        self, url: str, enabled_events: Sequence[str], *, api_version: str | None = None
    ) -> WebhookEndpoint:
        """Create an endpoint (`POST /v1/webhook_endpoints`); the result has the secret."""
        ...

    def update_webhook_endpoint(
        self,
        endpoint_id: str,
        *,
        enabled_events: Sequence[str] | None = None,
        disabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Change an endpoint's events and/or status (`POST /v1/webhook_endpoints/{id}`)."""
        ...

    def list_events(
        self, types: Sequence[str], *, created_gte: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Events as plain JSON, newest first, all pages (`GET /v1/events`)."""
        ...

    def list_subscriptions(self, *, status: str = "active") -> Iterator[Subscription]:
        """Subscriptions with `status` (or `all`), all pages (`GET /v1/subscriptions`)."""
        ...

    def retrieve_subscription(self, subscription_id: str) -> Subscription:
        """Fetch a Subscription (`GET /v1/subscriptions/{id}`)."""
        ...

    def retrieve_product(self, product_id: str) -> Product:
        """Fetch a Product (`GET /v1/products/{id}`)."""
        ...

    def retrieve_customer(self, customer_id: str) -> Customer:
        """Fetch a Customer (`GET /v1/customers/{id}`)."""
        ...
