"""Charges and disputes, read version-tolerantly: what a refund or a dispute concerns.

`charge.refunded` carries a Charge, `charge.dispute.created` a Dispute. Neither names a
subscription. Up to `2025-02-24.acacia` a Charge names the invoice it paid (`invoice`);
from `2025-03-31.basil` on, Stripe removed that field (and the Invoice's `charge` and
`payment_intent`): an invoice's payments are listed by `GET /v1/invoice_payments`, found
by the PaymentIntent. So the readers keep whatever link is present, and
[`flows.charges`][zentitle_stripe.flows.charges] follows it (fetching fresh) to the
invoice and its subscription.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from .._untrusted import checked_int64
from ..exceptions import InvalidPayloadError
from ._fields import as_id, as_str, require_id

__all__ = ["Charge", "Dispute", "RefundState", "parse_charge", "parse_dispute"]

RefundState = Literal["full", "partial", "unknown"]
"""How much of a charge is refunded: all of it, not all of it, or the object cannot say."""


@attrs.frozen
class Charge:
    """A Charge, reduced to its refund state and the links to what it paid."""

    id: str
    amount: int | None
    amount_captured: int | None
    amount_refunded: int | None
    refunded: bool | None
    """Stripe's own verdict: `true` only once the charge is refunded in full."""
    invoice_id: str | None
    """Only at API versions before basil."""
    payment_intent_id: str | None
    customer_id: str | None

    @property
    def refund_state(self) -> RefundState:
        """`full` when Stripe says so (`refunded: true`) or, with the flag missing, the
        refunded amount reaches the captured one; `partial` when Stripe says it is not
        (`refunded: false`) or the amounts show less; else `unknown`."""
        if self.refunded is True:
            return "full"
        captured = self.amount_captured if self.amount_captured is not None else self.amount
        refunded = self.amount_refunded
        if self.refunded is None and captured and refunded is not None and refunded >= captured:
            return "full"
        if self.refunded is False or (captured is not None and refunded is not None):
            return "partial"
        return "unknown"


@attrs.frozen
class Dispute:
    """A Dispute: the charge (and PaymentIntent) it contests."""

    id: str
    charge_id: str | None
    payment_intent_id: str | None
    status: str | None
    reason: str | None
    amount: int | None


def _amount(obj: Mapping[str, Any], field: str, what: str) -> int | None:
    value = obj.get(field)
    if type(value) is not int:
        return None
    return checked_int64(value, f"{what}: {field}")


def parse_charge(obj: Mapping[str, Any]) -> Charge:
    """Read a Charge (an event's `data.object` or `GET /v1/charges/{id}`), any version."""
    charge_id = require_id(obj, "charge")
    what = f"charge {charge_id}"
    if obj.get("object") not in (None, "charge"):
        raise InvalidPayloadError(f"{what} is a {as_str(obj.get('object'))!r}, not a charge")
    refunded = obj.get("refunded")
    return Charge(
        id=charge_id,
        amount=_amount(obj, "amount", what),
        amount_captured=_amount(obj, "amount_captured", what),
        amount_refunded=_amount(obj, "amount_refunded", what),
        refunded=refunded if isinstance(refunded, bool) else None,
        invoice_id=as_id(obj.get("invoice"), f"{what}: the invoice"),
        payment_intent_id=as_id(obj.get("payment_intent"), f"{what}: the payment intent"),
        customer_id=as_id(obj.get("customer"), f"{what}: the customer"),
    )


def parse_dispute(obj: Mapping[str, Any]) -> Dispute:
    """Read a Dispute (`charge.dispute.*`); one naming neither a charge nor a
    PaymentIntent cannot be traced to anything, so it raises."""
    dispute_id = require_id(obj, "dispute")
    what = f"dispute {dispute_id}"
    if obj.get("object") not in (None, "dispute"):
        raise InvalidPayloadError(f"{what} is a {as_str(obj.get('object'))!r}, not a dispute")
    charge_id = as_id(obj.get("charge"), f"{what}: the charge")
    payment_intent_id = as_id(obj.get("payment_intent"), f"{what}: the payment intent")
    if charge_id is None and payment_intent_id is None:
        raise InvalidPayloadError(
            f"{what} names neither a charge nor a payment intent, so the payment it "
            "contests cannot be found"
        )
    return Dispute(
        id=dispute_id,
        charge_id=charge_id,
        payment_intent_id=payment_intent_id,
        status=as_str(obj.get("status")),
        reason=as_str(obj.get("reason")),
        amount=_amount(obj, "amount", what),
    )
