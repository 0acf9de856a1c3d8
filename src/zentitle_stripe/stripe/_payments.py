"""The gateway's reads behind refunds and disputes: a Charge, an Invoice, and the invoice
a PaymentIntent paid (since basil a Charge no longer names its invoice)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, cast

import stripe

from ..exceptions import InvalidPayloadError
from .charges import Charge, parse_charge
from .events import Invoice, parse_invoice

__all__ = ["PaymentReads"]


class PaymentReads:
    """Mixed into [`StripeGateway`][zentitle_stripe.stripe.gateway.StripeGateway]."""

    _client: stripe.StripeClient

    def _errors(self, action: str) -> AbstractContextManager[None]:  # pragma: no cover
        raise NotImplementedError

    def retrieve_charge(self, charge_id: str) -> Charge:
        """Fetch a Charge (`GET /v1/charges/{id}`)."""
        with self._errors(f"retrieving charge {charge_id}"):
            return parse_charge(self._client.v1.charges.retrieve(charge_id).to_dict())

    def retrieve_invoice(self, invoice_id: str) -> Invoice:
        """Fetch an Invoice (`GET /v1/invoices/{id}`)."""
        with self._errors(f"retrieving invoice {invoice_id}"):
            return parse_invoice(self._client.v1.invoices.retrieve(invoice_id).to_dict())

    def invoice_of_payment_intent(self, payment_intent_id: str) -> str | None:
        """The invoice of the first invoice payment made by `payment_intent_id`
        (`GET /v1/invoice_payments?payment[type]=payment_intent&payment[payment_intent]=`).

        `None` only when Stripe lists no payment: a record whose `invoice` (required by
        Stripe) cannot be read is an error, never "paid no invoice", which would settle
        the refund or dispute as `ignored` for good."""
        params: Any = {"payment": {"type": "payment_intent", "payment_intent": payment_intent_id}}
        with self._errors(f"finding the invoice paid by payment intent {payment_intent_id}"):
            page = self._client.v1.invoice_payments.list(params=cast(Any, params))
            if not page.data:
                return None
            invoice = page.data[0].to_dict().get("invoice")
            invoice_id = invoice.get("id") if isinstance(invoice, dict) else invoice
            if not isinstance(invoice_id, str) or not invoice_id:
                raise InvalidPayloadError(
                    f"an invoice payment of payment intent {payment_intent_id} names no invoice"
                )
            return invoice_id
