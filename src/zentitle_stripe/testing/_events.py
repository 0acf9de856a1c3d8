"""Stripe event factories in both payload generations, and a signer.

Factories return plain dicts shaped like real webhook bodies (see
`zentitle_stripe.stripe.events` for the two generations). Sign them with
[`sign_stripe_payload`][zentitle_stripe.testing.sign_stripe_payload], which uses
stripe-python's own helper, so a passing test proves interoperability with Stripe.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import stripe

__all__ = [
    "NEW_API_VERSION",
    "OLD_API_VERSION",
    "LineSpec",
    "invoice_paid_event",
    "make_event",
    "one_time_invoice_paid_event",
    "sign_stripe_payload",
    "subscription_deleted_event",
    "subscription_event",
]

OLD_API_VERSION = "2024-06-20"
"""A pre-basil version: line prices are inline with their metadata."""
NEW_API_VERSION = "2026-10-28.endive"
"""A basil+ version: lines carry only price ids."""

_counter = itertools.count(1)
_YEAR = 365 * 24 * 3600


def _next_id(prefix: str) -> str:
    return f"{prefix}_test{next(_counter):06d}"


def is_old_shape(api_version: str) -> bool:
    """Whether `api_version` renders invoices in the pre-basil shape."""
    return api_version[:10] < "2025-03-31"


@attrs.frozen
class LineSpec:
    """One subscription line to put on an invoice (or item on a subscription)."""

    price_id: str
    sku: str | None = None
    """Written to the Price's metadata `offering_sku` when set."""
    quantity: int = 1
    product_id: str = "prod_test"
    lookup_key: str | None = None
    extra_metadata: Mapping[str, str] = attrs.field(factory=dict)
    period_start: int | None = None
    period_end: int | None = None

    def price_metadata(self) -> dict[str, str]:
        metadata = dict(self.extra_metadata)
        if self.sku is not None:
            metadata["offering_sku"] = self.sku
        return metadata

    def price_object(self) -> dict[str, Any]:
        """The full Price, as the old shape and subscriptions embed it."""
        return {
            "id": self.price_id,
            "object": "price",
            "active": True,
            "currency": "usd",
            "lookup_key": self.lookup_key,
            "metadata": self.price_metadata(),
            "product": self.product_id,
            "recurring": {"interval": "year", "interval_count": 1},
            "type": "recurring",
            "unit_amount": 4900,
        }


def make_event(
    event_type: str,
    obj: Mapping[str, Any],
    *,
    event_id: str | None = None,
    api_version: str = NEW_API_VERSION,
    created: int | None = None,
) -> dict[str, Any]:
    """Wrap `obj` in a snapshot event envelope."""
    return {
        "id": event_id or _next_id("evt"),
        "object": "event",
        "api_version": api_version,
        "created": created if created is not None else int(time.time()),
        "data": {"object": dict(obj)},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def _line(
    spec: LineSpec,
    *,
    api_version: str,
    subscription_id: str | None,
    start: int,
    end: int,
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "id": _next_id("il"),
        "object": "line_item",
        "amount": 4900 * spec.quantity,
        "currency": "usd",
        "metadata": {},
        "quantity": spec.quantity,
        "period": {"start": spec.period_start or start, "end": spec.period_end or end},
    }
    item_id = _next_id("si") if subscription_id else None
    if is_old_shape(api_version):
        line.update(
            type="subscription" if subscription_id else "invoiceitem",
            subscription=subscription_id,
            subscription_item=item_id,
            proration=False,
            price=spec.price_object(),
        )
    else:
        line["parent"] = (
            {
                "type": "subscription_item_details",
                "invoice_item_details": None,
                "subscription_item_details": {
                    "subscription": subscription_id,
                    "subscription_item": item_id,
                    "proration": False,
                },
            }
            if subscription_id
            else {
                "type": "invoice_item_details",
                "invoice_item_details": {"invoice_item": _next_id("ii")},
                "subscription_item_details": None,
            }
        )
        line["pricing"] = {
            "type": "price_details",
            "price_details": {"price": spec.price_id, "product": spec.product_id},
            "unit_amount_decimal": "4900",
        }
    return line


def invoice_paid_event(
    lines: Sequence[LineSpec],
    *,
    api_version: str = NEW_API_VERSION,
    subscription_id: str | None = "sub_test",
    customer_id: str = "cus_test",
    customer_email: str | None = "buyer@example.com",
    customer_name: str | None = "Ada Buyer",
    billing_reason: str = "subscription_create",
    invoice_id: str | None = None,
    event_id: str | None = None,
    created: int | None = None,
    period_start: int | None = None,
    period_end: int | None = None,
    has_more: bool = False,
) -> dict[str, Any]:
    """An `invoice.paid` event for a subscription invoice (or a one-off one with
    `subscription_id=None`), rendered in the shape `api_version` gives."""
    now = created if created is not None else int(time.time())
    start = period_start if period_start is not None else now
    end = period_end if period_end is not None else start + _YEAR
    invoice: dict[str, Any] = {
        "id": invoice_id or _next_id("in"),
        "object": "invoice",
        "amount_paid": 4900 * sum(spec.quantity for spec in lines),
        "billing_reason": billing_reason,
        "currency": "usd",
        "customer": customer_id,
        "customer_email": customer_email,
        "customer_name": customer_name,
        "period_start": now,
        "period_end": now,
        "status": "paid",
        "lines": {
            "object": "list",
            "data": [
                _line(
                    spec,
                    api_version=api_version,
                    subscription_id=subscription_id,
                    start=start,
                    end=end,
                )
                for spec in lines
            ],
            "has_more": has_more,
            "total_count": len(lines),
            "url": "/v1/invoices/in/lines",
        },
    }
    _link_subscription(invoice, subscription_id, api_version)
    return make_event(
        "invoice.paid", invoice, event_id=event_id, api_version=api_version, created=now
    )


def _link_subscription(
    invoice: dict[str, Any], subscription_id: str | None, api_version: str
) -> None:
    """Name the invoice's subscription where `api_version` puts it (basil: `parent`)."""
    if is_old_shape(api_version):
        invoice["subscription"] = subscription_id
        invoice["subscription_details"] = {"metadata": {}}
        invoice["paid"] = True
    else:
        invoice["parent"] = (
            {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {"subscription": subscription_id, "metadata": {}},
            }
            if subscription_id
            else None
        )


def one_time_invoice_paid_event(lines: Sequence[LineSpec], **kwargs: Any) -> dict[str, Any]:
    """An `invoice.paid` event for a one-off (`manual`) invoice."""
    kwargs.setdefault("billing_reason", "manual")
    return invoice_paid_event(lines, subscription_id=None, **kwargs)


def subscription_deleted_event(
    items: Sequence[LineSpec],
    *,
    subscription_id: str = "sub_test",
    customer_id: str = "cus_test",
    metadata: Mapping[str, str] | None = None,
    api_version: str = NEW_API_VERSION,
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A `customer.subscription.deleted` event; the items embed their full Price."""
    now = created if created is not None else int(time.time())
    subscription = {
        "id": subscription_id,
        "object": "subscription",
        "customer": customer_id,
        "status": "canceled",
        "canceled_at": now,
        "ended_at": now,
        "cancel_at_period_end": False,
        "cancellation_details": {"reason": "cancellation_requested"},
        "metadata": dict(metadata or {}),
        "items": {
            "object": "list",
            "data": [
                {
                    "id": _next_id("si"),
                    "object": "subscription_item",
                    "price": spec.price_object(),
                    "quantity": spec.quantity,
                    "current_period_end": spec.period_end or now,
                }
                for spec in items
            ],
            "has_more": False,
        },
    }
    return make_event(
        "customer.subscription.deleted",
        subscription,
        event_id=event_id,
        api_version=api_version,
        created=now,
    )


def subscription_event(
    items: Sequence[LineSpec],
    *,
    event_type: str = "customer.subscription.updated",
    subscription_id: str = "sub_test",
    customer_id: str = "cus_test",
    status: str = "active",
    period_start: int | None = None,
    period_end: int | None = None,
    trial_end: int | None = None,
    cancel_at_period_end: bool = False,
    metadata: Mapping[str, str] | None = None,
    previous_attributes: Mapping[str, Any] | None = None,
    api_version: str = NEW_API_VERSION,
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A `customer.subscription.updated` (or `.paused`, `.resumed`: `event_type`) event.

    The current period is where `api_version` puts it: top-level before basil, on each
    item since; `status_details` only from endive's pause (2026-09-30) on. The items embed
    their full Price, as at every version.
    """
    now = created if created is not None else int(time.time())
    start = period_start if period_start is not None else now
    end = period_end if period_end is not None else start + _YEAR
    old = is_old_shape(api_version)
    period = {} if old else {"current_period_start": start, "current_period_end": end}
    subscription: dict[str, Any] = {
        "id": subscription_id,
        "object": "subscription",
        "customer": customer_id,
        "status": status,
        "cancel_at": end if cancel_at_period_end else None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": now if cancel_at_period_end else None,
        "ended_at": None,
        "metadata": dict(metadata or {}),
        "pause_collection": None,
        "trial_start": start if trial_end is not None else None,
        "trial_end": trial_end,
        "items": {"object": "list", "data": _items(items, period), "has_more": False},
    }
    if old:
        subscription.update(current_period_start=start, current_period_end=end)
    elif api_version >= "2026-09-30":
        paused = {"paused": {"subscription": {"type": "requested"}}}
        subscription["status_details"] = paused if status == "paused" else None
    event = make_event(
        event_type, subscription, event_id=event_id, api_version=api_version, created=now
    )
    if previous_attributes is not None:
        event["data"]["previous_attributes"] = dict(previous_attributes)
    return event


def _items(items: Sequence[LineSpec], fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Subscription items embedding their full Price, with `fields` added to each."""
    return [
        {
            "id": _next_id("si"),
            "object": "subscription_item",
            "price": spec.price_object(),
            "quantity": spec.quantity,
            **fields,
        }
        for spec in items
    ]


def sign_stripe_payload(
    payload: bytes | str | Mapping[str, Any],
    secret: str,
    *,
    timestamp: int | None = None,
) -> tuple[bytes, str]:
    """Return `(body, Stripe-Signature header)`; dicts are serialised first.

    The header comes from `stripe.WebhookSignature.generate_signature_header`, the
    helper Stripe ships for exactly this purpose.
    """
    if isinstance(payload, Mapping):
        body = json.dumps(payload, separators=(",", ":")).encode()
    elif isinstance(payload, str):
        body = payload.encode()
    else:
        body = payload
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp if timestamp is not None else int(time.time())
    )
    return body, header
