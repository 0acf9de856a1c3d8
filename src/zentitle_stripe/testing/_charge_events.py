"""`charge.refunded` and `charge.dispute.created` factories, in either payload generation.

Before basil (`2025-03-31.basil`) a Charge names the invoice it paid (`invoice`); from
basil on that field is gone and only the PaymentIntent links a charge to its invoice
(through `GET /v1/invoice_payments`). The factories render whichever the `api_version`
gives, so a test of a refund or a dispute runs in both.
"""

from __future__ import annotations

import time
from typing import Any

from ._events import NEW_API_VERSION, _next_id, is_old_shape, make_event

__all__ = ["charge_dispute_created_event", "charge_object", "charge_refunded_event"]


def charge_object(
    *,
    charge_id: str,
    amount: int,
    amount_refunded: int = 0,
    invoice_id: str | None,
    payment_intent_id: str | None,
    customer_id: str | None = "cus_test",
    api_version: str = NEW_API_VERSION,
    created: int | None = None,
    disputed: bool = False,
) -> dict[str, Any]:
    """A captured card Charge; `invoice` only where `api_version` still has it."""
    charge: dict[str, Any] = {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "captured": True,
        "created": created if created is not None else int(time.time()),
        "currency": "usd",
        "customer": customer_id,
        "disputed": disputed,
        "livemode": False,
        "paid": True,
        "payment_intent": payment_intent_id,
        "refunded": amount > 0 and amount_refunded >= amount,
        "status": "succeeded",
    }
    if is_old_shape(api_version):
        charge["invoice"] = invoice_id
    return charge


def charge_refunded_event(
    *,
    invoice_id: str | None = "in_test",
    amount: int = 4900,
    amount_refunded: int | None = None,
    charge_id: str | None = None,
    payment_intent_id: str | None = None,
    customer_id: str | None = "cus_test",
    api_version: str = NEW_API_VERSION,
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A `charge.refunded` event: in full unless `amount_refunded` says less."""
    charge = charge_object(
        charge_id=charge_id or _next_id("ch"),
        amount=amount,
        amount_refunded=amount if amount_refunded is None else amount_refunded,
        invoice_id=invoice_id,
        payment_intent_id=payment_intent_id or _next_id("pi"),
        customer_id=customer_id,
        api_version=api_version,
        created=created,
    )
    return make_event(
        "charge.refunded", charge, event_id=event_id, api_version=api_version, created=created
    )


def charge_dispute_created_event(
    *,
    charge_id: str,
    payment_intent_id: str | None,
    amount: int = 4900,
    reason: str = "fraudulent",
    status: str = "needs_response",
    dispute_id: str | None = None,
    api_version: str = NEW_API_VERSION,
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A `charge.dispute.created` event; a Dispute names its charge and PaymentIntent at
    every version (never the invoice)."""
    now = created if created is not None else int(time.time())
    dispute = {
        "id": dispute_id or _next_id("dp"),
        "object": "dispute",
        "amount": amount,
        "charge": charge_id,
        "created": now,
        "currency": "usd",
        "is_charge_refundable": False,
        "livemode": False,
        "payment_intent": payment_intent_id,
        "reason": reason,
        "status": status,
    }
    return make_event(
        "charge.dispute.created", dispute, event_id=event_id, api_version=api_version, created=now
    )
