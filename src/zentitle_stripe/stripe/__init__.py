"""The Stripe side: verify and read Stripe's webhooks, and call Stripe's API.

| module | what it holds |
|---|---|
| [`signature`][zentitle_stripe.stripe.signature] | `Stripe-Signature` verification |
| [`events`][zentitle_stripe.stripe.events] | the webhook payloads, read in either generation |
| [`models`][zentitle_stripe.stripe.models] | typed API results (`Price`, `Customer`, ...) |
| [`api`][zentitle_stripe.stripe.api] | the `StripeAPI` / `StripeOpsAPI` protocols |
| [`gateway`][zentitle_stripe.stripe.gateway] | `StripeGateway`, over stripe-python |

Inside this package `import stripe` still means stripe-python (imports are absolute).
`StripeGateway` is imported on first use, so verifying and parsing webhooks does not load
stripe-python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .api import StripeAPI, StripeOpsAPI
from .events import (
    Invoice,
    InvoiceLine,
    StripeEvent,
    Subscription,
    SubscriptionItem,
    parse_event,
    parse_invoice,
    parse_invoice_line,
    parse_subscription,
)
from .models import Account, Customer, KeyMode, Price, Product, WebhookEndpoint, key_mode
from .signature import DEFAULT_TOLERANCE, compute_signature, verify_stripe_signature

if TYPE_CHECKING:
    from .gateway import StripeGateway

__all__ = [
    "DEFAULT_TOLERANCE",
    "Account",
    "Customer",
    "Invoice",
    "InvoiceLine",
    "KeyMode",
    "Price",
    "Product",
    "StripeAPI",
    "StripeEvent",
    "StripeGateway",
    "StripeOpsAPI",
    "Subscription",
    "SubscriptionItem",
    "WebhookEndpoint",
    "compute_signature",
    "key_mode",
    "parse_event",
    "parse_invoice",
    "parse_invoice_line",
    "parse_subscription",
    "verify_stripe_signature",
]


def __getattr__(name: str) -> Any:
    if name == "StripeGateway":
        from .gateway import StripeGateway

        return StripeGateway
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
