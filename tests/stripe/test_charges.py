"""Charges and disputes: the readers in both generations, and the Stripe emulator's
charges, invoices and invoice payments as stripe-python sees them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from zentitle_stripe.exceptions import InvalidPayloadError, StripeAPIError
from zentitle_stripe.stripe.charges import parse_charge, parse_dispute
from zentitle_stripe.stripe.gateway import StripeGateway
from zentitle_stripe.testing import (
    NEW_API_VERSION,
    OLD_API_VERSION,
    StripeEmulator,
    charge_dispute_created_event,
    charge_refunded_event,
)

BOTH = pytest.mark.parametrize("api_version", [OLD_API_VERSION, NEW_API_VERSION])


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({"refunded": True, "amount": 100, "amount_refunded": 100}, "full"),
        ({"refunded": False, "amount": 100, "amount_refunded": 99}, "partial"),
        ({"refunded": False, "amount": 100, "amount_refunded": 100}, "partial"),  # Stripe says
        ({"amount": 100, "amount_captured": 100, "amount_refunded": 100}, "full"),
        ({"amount": 100, "amount_refunded": 40}, "partial"),
        ({"amount": 0, "amount_refunded": 0}, "partial"),
        ({}, "unknown"),
        ({"refunded": "yes", "amount_refunded": "all"}, "unknown"),
    ],
)
def test_the_refund_state_takes_stripes_verdict_then_the_amounts(
    fields: dict[str, Any], state: str
) -> None:
    assert parse_charge({"id": "ch_1", "object": "charge", **fields}).refund_state == state


@BOTH
def test_a_charge_names_its_invoice_only_before_basil(api_version: str) -> None:
    event = charge_refunded_event(invoice_id="in_1", api_version=api_version)
    charge = parse_charge(event["data"]["object"])
    assert charge.refund_state == "full"
    assert charge.payment_intent_id is not None
    assert charge.invoice_id == ("in_1" if api_version == OLD_API_VERSION else None)


def test_unusable_charges_and_disputes_raise_naming_the_field() -> None:
    with pytest.raises(InvalidPayloadError, match="not a charge"):
        parse_charge({"id": "dp_1", "object": "dispute"})
    with pytest.raises(InvalidPayloadError, match="neither a charge nor a payment intent"):
        parse_dispute({"id": "dp_1", "object": "dispute"})
    with pytest.raises(InvalidPayloadError, match="payment intent id"):
        parse_dispute({"id": "dp_1", "charge": "ch_1", "payment_intent": "pi\n1"})
    dispute = parse_dispute(
        charge_dispute_created_event(charge_id="ch_1", payment_intent_id=None)["data"]["object"]
    )
    assert (dispute.charge_id, dispute.payment_intent_id) == ("ch_1", None)


def _gateway(emulator: StripeEmulator) -> StripeGateway:
    return StripeGateway(
        emulator.api_key,
        api_base="http://stripe.emulator",
        max_network_retries=0,
        http_transport=emulator.transport(),
    )


@BOTH
def test_the_emulator_links_charge_invoice_and_subscription(api_version: str) -> None:
    emulator = StripeEmulator(api_version=api_version)
    product = emulator.create_product("Pro")
    price = emulator.create_price(product, metadata={"offering_sku": "PRO-1Y"})
    subscription_id, paid = emulator.create_subscription(emulator.create_customer(), [(price, 2)])
    invoice_id = paid["data"]["object"]["id"]
    gateway = _gateway(emulator)

    charge = gateway.retrieve_charge(emulator.charge_of(invoice_id))
    assert charge.amount == 9800
    assert charge.refund_state == "partial"
    assert charge.payment_intent_id is not None
    assert charge.invoice_id == (invoice_id if api_version == OLD_API_VERSION else None)
    assert gateway.invoice_of_payment_intent(charge.payment_intent_id) == invoice_id
    assert gateway.invoice_of_payment_intent("pi_unknown") is None
    assert gateway.retrieve_invoice(invoice_id).subscription_id == subscription_id

    refunded = parse_charge(emulator.refund_invoice(invoice_id)["data"]["object"])
    assert refunded.refund_state == "full"
    assert gateway.retrieve_charge(charge.id).refund_state == "full"
    with pytest.raises(ValueError, match="cannot refund"):
        emulator.refund_invoice(invoice_id)
    gateway.close()


@pytest.mark.parametrize("invoice", [None, "", {"object": "invoice"}])
def test_an_invoice_payment_naming_no_invoice_is_an_error_not_no_invoice(invoice: Any) -> None:
    """A payment record is found but its `invoice` is unreadable: that is not "paid no
    invoice" (which would record the refund as ignored for good), it fails to be retried."""
    emulator = StripeEmulator()
    product = emulator.create_product("Pro")
    price = emulator.create_price(product, metadata={"offering_sku": "PRO-1Y"})
    _, paid = emulator.create_subscription(emulator.create_customer(), [(price, 1)])
    gateway = _gateway(emulator)
    charge = gateway.retrieve_charge(emulator.charge_of(paid["data"]["object"]["id"]))
    assert charge.payment_intent_id is not None
    emulator._invoice_payments[-1]["invoice"] = invoice  # a record Stripe never sends
    with pytest.raises(StripeAPIError, match="names no invoice"):
        gateway.invoice_of_payment_intent(charge.payment_intent_id)
    gateway.close()


def test_the_emulator_requires_payment_type_and_404s_unknown_objects() -> None:
    emulator = StripeEmulator()
    transport = emulator.transport()
    with httpx.Client(transport=transport, base_url="http://stripe.emulator") as client:
        headers = {"Authorization": f"Bearer {emulator.api_key}"}
        answer = client.get(
            "/v1/invoice_payments", params={"payment[payment_intent]": "pi_1"}, headers=headers
        )
        assert answer.status_code == 400
        assert answer.json()["error"]["param"] == "payment[type]"
    gateway = _gateway(emulator)
    with pytest.raises(StripeAPIError) as failure:
        gateway.retrieve_charge("ch_missing")
    assert failure.value.status == 404
    assert not failure.value.transient
    gateway.close()


def test_a_zero_invoice_has_no_charge() -> None:
    emulator = StripeEmulator()
    product = emulator.create_product("Free")
    price = emulator.create_price(product, unit_amount=0)
    _, paid = emulator.create_subscription(emulator.create_customer(), [(price, 1)])
    with pytest.raises(KeyError):
        emulator.charge_of(paid["data"]["object"]["id"])
