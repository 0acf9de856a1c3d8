"""The Stripe emulator's payments: the charge behind each paid invoice, refunds, disputes.

Every paid invoice with an amount is paid by a PaymentIntent and its Charge, recorded as
an invoice payment, as Stripe does since basil. The routes serve `GET /v1/charges/{id}`,
`GET /v1/invoices/{id}` and `GET /v1/invoice_payments` (filtered by `invoice` or by
`payment[type]` and `payment[payment_intent]`); a Charge names its `invoice` only when
the emulator's API version is older than basil. The stories `refund_invoice` and
`dispute_invoice` return the `charge.refunded` / `charge.dispute.created` events.
"""

from __future__ import annotations

import copy
from typing import Any

from typing_extensions import override

from ._charge_events import charge_dispute_created_event, charge_object
from ._events import make_event
from ._stripe_resources import _JSON, _APIError, _paginate, _StripeAccount

__all__: list[str] = []


class _PaymentRoutes(_StripeAccount):
    """Invoices, charges, invoice payments, refunds and disputes."""

    def __init__(self, api_key: str, webhook_secret: str, api_version: str) -> None:
        super().__init__(api_key, webhook_secret, api_version)
        self._invoices: dict[str, _JSON] = {}
        self._charges: dict[str, _JSON] = {}
        self._invoice_payments: list[_JSON] = []

    @override
    def _settle_invoice(self, invoice: _JSON) -> None:
        """Keep the paid invoice; pay an amount through a PaymentIntent and a Charge."""
        invoice_id = invoice["id"]
        self._invoices[invoice_id] = copy.deepcopy(invoice)
        amount = int(invoice.get("amount_paid") or 0)
        if amount <= 0:
            return  # a $0 invoice (a trial) is paid without a charge
        payment_intent = self._new_id("pi")
        charge_id = self._new_id("ch")
        self._charges[charge_id] = {
            "id": charge_id,
            "amount": amount,
            "amount_refunded": 0,
            "customer": invoice.get("customer"),
            "created": self.now,
            "invoice": invoice_id,
            "payment_intent": payment_intent,
            "disputed": False,
        }
        self._invoice_payments.append(
            {
                "id": self._new_id("inpay"),
                "object": "invoice_payment",
                "amount_paid": amount,
                "amount_requested": amount,
                "created": self.now,
                "currency": "usd",
                "invoice": invoice_id,
                "is_default": True,
                "livemode": False,
                "payment": {"type": "payment_intent", "payment_intent": payment_intent},
                "status": "paid",
                "status_transitions": {"canceled_at": None, "paid_at": self.now},
            }
        )

    def _render_charge(self, charge: _JSON) -> _JSON:
        return charge_object(
            charge_id=charge["id"],
            amount=charge["amount"],
            amount_refunded=charge["amount_refunded"],
            invoice_id=charge["invoice"],
            payment_intent_id=charge["payment_intent"],
            customer_id=charge["customer"],
            api_version=self.api_version,
            created=charge["created"],
            disputed=charge["disputed"],
        )

    # -- routes -----------------------------------------------------------------------

    def _get_charge(self, charge_id: str, params: _JSON) -> _JSON:
        return self._render_charge(self._require(self._charges, charge_id, "charge", api=True))

    def _get_invoice(self, invoice_id: str, params: _JSON) -> _JSON:
        return copy.deepcopy(self._require(self._invoices, invoice_id, "invoice", api=True))

    def _list_invoice_payments(self, _: str, params: _JSON) -> _JSON:
        """Stripe requires `payment[type]` whenever `payment` is given."""
        payment = params.get("payment")
        wanted: dict[str, Any] = {}
        if payment is not None:
            if not isinstance(payment, dict) or not payment.get("type"):
                raise _APIError(
                    400, "Missing required param: payment[type].", param="payment[type]"
                )
            wanted = payment
        invoice = params.get("invoice")
        matches = [
            payment_record
            for payment_record in reversed(self._invoice_payments)  # newest first
            if (invoice is None or payment_record["invoice"] == invoice)
            and all(payment_record["payment"].get(key) == value for key, value in wanted.items())
        ]
        return _paginate(copy.deepcopy(matches), params, "/v1/invoice_payments")

    # -- stories ----------------------------------------------------------------------

    def charge_of(self, invoice_id: str) -> str:
        """The Charge that paid `invoice_id` (a `KeyError` for a $0 or unknown invoice)."""
        with self._lock:
            for charge in self._charges.values():
                if charge["invoice"] == invoice_id:
                    return str(charge["id"])
            raise KeyError(f"the emulator has no charge for invoice {invoice_id!r}")

    def refund_invoice(self, invoice_id: str, amount: int | None = None) -> dict[str, Any]:
        """Refund the invoice's charge (all that is left unless `amount`); returns the
        `charge.refunded` event."""
        with self._lock:
            charge = self._charges[self.charge_of(invoice_id)]
            left = charge["amount"] - charge["amount_refunded"]
            refund = left if amount is None else amount
            if not 0 < refund <= left:
                raise ValueError(f"cannot refund {refund} of charge {charge['id']} ({left} left)")
            charge["amount_refunded"] += refund
            return self._record_event(
                make_event(
                    "charge.refunded",
                    self._render_charge(charge),
                    event_id=self._new_id("evt"),
                    api_version=self.api_version,
                    created=self.now,
                )
            )

    def dispute_invoice(self, invoice_id: str, reason: str = "fraudulent") -> dict[str, Any]:
        """Open a dispute on the invoice's charge; returns `charge.dispute.created`."""
        with self._lock:
            charge = self._charges[self.charge_of(invoice_id)]
            charge["disputed"] = True
            return self._record_event(
                charge_dispute_created_event(
                    charge_id=charge["id"],
                    payment_intent_id=charge["payment_intent"],
                    amount=charge["amount"],
                    reason=reason,
                    dispute_id=self._new_id("dp"),
                    api_version=self.api_version,
                    event_id=self._new_id("evt"),
                    created=self.now,
                )
            )

    def forget_invoice_payments(self) -> None:
        """Drop every invoice payment record, as for charges that paid no invoice."""
        with self._lock:
            self._invoice_payments.clear()
