"""Event parsing reads both Stripe payload generations into the same views."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zentitle_stripe.events import (
    parse_event,
    parse_invoice,
    parse_invoice_line,
    parse_subscription,
)
from zentitle_stripe.exceptions import InvalidPayloadError
from zentitle_stripe.testing import (
    NEW_API_VERSION,
    OLD_API_VERSION,
    LineSpec,
    invoice_paid_event,
    one_time_invoice_paid_event,
    subscription_deleted_event,
)

BOTH = pytest.mark.parametrize(
    "api_version", [OLD_API_VERSION, "2025-03-31.basil", NEW_API_VERSION]
)


def _parse(event: dict[str, Any]) -> Any:
    return parse_event(json.dumps(event).encode())


@BOTH
def test_subscription_invoice_in_either_generation(api_version: str) -> None:
    lines = [
        LineSpec("price_pro", "PRO-1Y", quantity=3, product_id="prod_pro", lookup_key="pro"),
        LineSpec("price_addon", "ADDON", product_id="prod_addon"),
    ]
    event = _parse(
        invoice_paid_event(
            lines,
            api_version=api_version,
            subscription_id="sub_42",
            customer_id="cus_42",
            invoice_id="in_42",
            period_start=1000,
            period_end=2000,
        )
    )
    assert event.type == "invoice.paid"
    assert event.api_version == api_version
    invoice = parse_invoice(event.object)
    assert invoice.id == "in_42"
    assert invoice.subscription_id == "sub_42"
    assert invoice.is_subscription_invoice
    assert invoice.customer_id == "cus_42"
    assert invoice.customer_email == "buyer@example.com"
    assert invoice.billing_reason == "subscription_create"
    assert invoice.period_end == 2000
    assert [line.price_id for line in invoice.lines] == ["price_pro", "price_addon"]
    assert [line.product_id for line in invoice.lines] == ["prod_pro", "prod_addon"]
    assert [line.quantity for line in invoice.lines] == [3, 1]
    assert all(line.is_subscription for line in invoice.lines)
    assert all(line.subscription_id == "sub_42" for line in invoice.lines)
    assert all(line.subscription_item_id for line in invoice.lines)
    assert [(line.period_start, line.period_end) for line in invoice.lines] == [(1000, 2000)] * 2
    if api_version == OLD_API_VERSION:
        assert invoice.lines[0].price_metadata == {"offering_sku": "PRO-1Y"}
        assert invoice.lines[0].price_lookup_key == "pro"
    else:  # basil+: only ids in the payload, the Price must be fetched
        assert invoice.lines[0].price_metadata is None
        assert invoice.lines[0].price_lookup_key is None


@BOTH
def test_one_time_invoice_has_no_subscription(api_version: str) -> None:
    event = _parse(one_time_invoice_paid_event([LineSpec("price_once")], api_version=api_version))
    invoice = parse_invoice(event.object)
    assert invoice.subscription_id is None
    assert not invoice.is_subscription_invoice
    assert invoice.billing_reason == "manual"
    assert not invoice.lines[0].is_subscription


@BOTH
def test_subscription_deleted(api_version: str) -> None:
    event = _parse(
        subscription_deleted_event(
            [LineSpec("price_pro", "PRO-1Y", quantity=2)],
            subscription_id="sub_9",
            customer_id="cus_9",
            metadata={"activation_codes": "AAAA-BBBB"},
            api_version=api_version,
        )
    )
    subscription = parse_subscription(event.object)
    assert subscription.id == "sub_9"
    assert subscription.customer_id == "cus_9"
    assert subscription.status == "canceled"
    assert subscription.metadata == {"activation_codes": "AAAA-BBBB"}
    assert subscription.cancellation_reason == "cancellation_requested"
    (item,) = subscription.items
    assert item.price_id == "price_pro"
    assert item.quantity == 2
    assert item.price_metadata == {"offering_sku": "PRO-1Y"}


def test_expanded_objects_read_as_ids() -> None:
    line = parse_invoice_line(
        {
            "id": "il_1",
            "parent": {
                "type": "subscription_item_details",
                "subscription_item_details": {"subscription": {"id": "sub_1"}},
            },
            "pricing": {
                "price_details": {
                    "price": {"id": "price_1", "metadata": {"offering_sku": "X"}},
                    "product": "prod_1",
                }
            },
        }
    )
    assert line.subscription_id == "sub_1"
    assert line.price_id == "price_1"
    assert line.price_metadata == {"offering_sku": "X"}
    assert line.quantity == 1  # missing quantity reads as one


def test_legacy_plan_lines_are_read() -> None:
    line = parse_invoice_line(
        {"id": "il_1", "type": "subscription", "plan": {"id": "plan_1", "metadata": {}}}
    )
    assert line.price_id == "plan_1"
    assert line.is_subscription


def test_thin_event_is_recognised() -> None:
    thin = {
        "id": "evt_thin",
        "object": "v2.core.event",
        "type": "v1.invoice.paid",
        "created": "2026-11-01T00:00:00.000Z",
        "related_object": {"id": "in_1", "type": "invoice", "url": "/v1/invoices/in_1"},
    }
    event = parse_event(json.dumps(thin))
    assert event.thin
    assert event.created is None
    assert event.object == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"id": "evt_1", "type": "x"}', "not a Stripe event"),
        (b'{"object": "event", "type": "x"}', "not a Stripe event"),
        (b'{"object": "event", "id": "evt_1"}', "has no type"),
        (b'{"object": "event", "id": "evt_1", "type": "invoice.paid"}', "no data.object"),
        (b'{"object": "event", "id": "e", "type": "t", "data": {"object": 3}}', "no data.object"),
    ],
)
def test_bad_bodies_are_explained(body: bytes, message: str) -> None:
    with pytest.raises(InvalidPayloadError, match=message):
        parse_event(body)


def test_invoice_without_id_is_invalid() -> None:
    with pytest.raises(InvalidPayloadError, match="invoice object has no id"):
        parse_invoice({"object": "invoice"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "id",
        "parent",
        "lines",
        "data",
        "pricing",
        "price_details",
        "price",
        "period",
        "type",
        "subscription",
        "customer",
        "quantity",
        "metadata",
        "items",
        "plan",
        "subscription_details",
    ]
)
invoice_like = st.recursive(
    st.none() | st.integers() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=6),
    max_leaves=12,
)


@given(obj=st.dictionaries(keys, invoice_like, max_size=6))
def test_parsers_never_crash_on_odd_shapes(obj: dict[str, Any]) -> None:
    """Odd shapes read as missing; only an id that is there but unusable (a NUL, a lone
    surrogate, too long) is refused, by name."""
    obj["id"] = "x_1"
    refusals = []
    for parse in (parse_invoice, parse_subscription, parse_invoice_line):
        try:
            parse(obj)
        except InvalidPayloadError as exc:
            refusals.append(str(exc))
    assert all(" id " in reason or "quantity" in reason for reason in refusals)


@given(value=json_values)
def test_parse_event_only_raises_invalid_payload(value: Any) -> None:
    with contextlib.suppress(InvalidPayloadError):
        parse_event(json.dumps(value))
