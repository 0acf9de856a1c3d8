"""StripeEmulator: its events parse with the library's parsers in both API generations, and
its HTTP API behaves like Stripe's for stripe-python (served over loopback)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import stripe

from zentitle_stripe.exceptions import StripeAPIError
from zentitle_stripe.stripe.events import parse_event, parse_invoice, parse_subscription
from zentitle_stripe.stripe.gateway import StripeGateway
from zentitle_stripe.testing import (
    NEW_API_VERSION,
    OLD_API_VERSION,
    FakeClock,
    FakeService,
    StripeEmulator,
    ZentitleEmulator,
)

KEY = "sk_test_emulator"
BOTH = pytest.mark.parametrize("api_version", [OLD_API_VERSION, NEW_API_VERSION])


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[StripeEmulator, str]]:
    emulator = StripeEmulator(api_key=KEY)
    with emulator.serve() as url:
        yield emulator, url


@pytest.fixture
def emulator(served: tuple[StripeEmulator, str]) -> StripeEmulator:
    return served[0]


@pytest.fixture
def client(served: tuple[StripeEmulator, str]) -> stripe.StripeClient:
    return stripe.StripeClient(
        KEY,
        base_addresses={"api": served[1]},
        http_client=stripe.RequestsClient(timeout=5),
    )


@pytest.fixture
def http(served: tuple[StripeEmulator, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[1], headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


def _seed(emulator: StripeEmulator, sku: str = "PRO-1Y", **price: Any) -> tuple[str, str]:
    product = emulator.create_product("Pro")
    price_id = emulator.create_price(product, metadata={"offering_sku": sku}, **price)
    return emulator.create_customer("ada@example.com", "Ada"), price_id


def _utc(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=timezone.utc).timestamp())


@BOTH
def test_subscription_story_parses_in_both_generations(api_version: str) -> None:
    emulator = StripeEmulator(api_version=api_version)
    emulator.now = _utc(2024, 1, 15)
    customer, price_a = _seed(emulator, "A")
    _, price_b = _seed(emulator, "B")

    subscription_id, created = emulator.create_subscription(customer, [(price_a, 1), (price_b, 3)])
    renewed = emulator.renew_subscription(subscription_id)

    first, second = (
        parse_invoice(created["data"]["object"]),
        parse_invoice(renewed["data"]["object"]),
    )
    assert created["api_version"] == api_version
    assert (first.subscription_id, first.billing_reason) == (subscription_id, "subscription_create")
    assert (second.subscription_id, second.billing_reason) == (
        subscription_id,
        "subscription_cycle",
    )
    assert (first.customer_id, first.customer_email, first.customer_name) == (
        customer,
        "ada@example.com",
        "Ada",
    )
    assert [(line.price_id, line.quantity) for line in first.lines] == [(price_a, 1), (price_b, 3)]
    assert all(line.is_subscription and not line.proration for line in first.lines)
    assert {(line.period_start, line.period_end) for line in first.lines} == {
        (_utc(2024, 1, 15), _utc(2025, 1, 15))
    }
    assert {(line.period_start, line.period_end) for line in second.lines} == {
        (_utc(2025, 1, 15), _utc(2026, 1, 15))
    }
    assert emulator.now == _utc(2025, 1, 15)
    sub = parse_subscription(emulator.subscription(subscription_id))
    assert [item.id for item in sub.items] == [line.subscription_item_id for line in first.lines]
    expected = {"offering_sku": "A"} if api_version == OLD_API_VERSION else None
    assert first.lines[0].price_metadata == expected


@BOTH
def test_one_time_payment_has_no_subscription(api_version: str) -> None:
    emulator = StripeEmulator(api_version=api_version)
    customer, price_id = _seed(emulator, recurring=False, unit_amount=1500)

    invoice = parse_invoice(emulator.one_time_payment(customer, price_id)["data"]["object"])

    assert (invoice.subscription_id, invoice.billing_reason) == (None, "manual")
    assert not invoice.is_subscription_invoice
    (line,) = invoice.lines
    assert (line.price_id, line.is_subscription, line.subscription_id) == (price_id, False, None)


@BOTH
def test_cancel_carries_written_back_metadata(api_version: str) -> None:
    emulator = StripeEmulator(api_version=api_version)
    customer, price_id = _seed(emulator)
    subscription_id, _ = emulator.create_subscription(customer, [(price_id, 2)])
    with StripeGateway(emulator.api_key, http_transport=emulator.transport()) as gateway:
        gateway.update_subscription_metadata(subscription_id, {"activation_codes": "A-1,B-2"})

    event = emulator.cancel_subscription(subscription_id)

    assert event["type"] == "customer.subscription.deleted"
    sub = parse_subscription(parse_event(json.dumps(event)).object)
    assert (sub.id, sub.status, sub.customer_id) == (subscription_id, "canceled", customer)
    assert sub.metadata == {"activation_codes": "A-1,B-2"}
    assert sub.cancellation_reason == "cancellation_requested"
    assert [(i.price_id, i.quantity, i.price_metadata) for i in sub.items] == [
        (price_id, 2, {"offering_sku": "PRO-1Y"})
    ]
    with pytest.raises(ValueError, match="canceled"):
        emulator.renew_subscription(subscription_id)


def test_monthly_renewal_follows_the_calendar() -> None:
    emulator = StripeEmulator()
    emulator.now = _utc(2024, 1, 31)
    customer, price_id = _seed(emulator, interval="month")
    subscription_id, _ = emulator.create_subscription(customer, [(price_id, 1)])

    renewed = parse_invoice(emulator.renew_subscription(subscription_id)["data"]["object"])

    assert (renewed.lines[0].period_start, renewed.period_end) == (
        _utc(2024, 2, 29),
        _utc(2024, 3, 29),
    )


def test_signed_events_verify_with_stripe(emulator: StripeEmulator) -> None:
    customer, price_id = _seed(emulator)
    _, event = emulator.create_subscription(customer, [(price_id, 1)])

    body, header = emulator.sign(event)

    verified = stripe.Webhook.construct_event(body, header, emulator.webhook_secret)
    assert verified.id == event["id"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, header, "whsec_other")


def test_long_invoices_embed_a_page_and_list_the_rest(
    emulator: StripeEmulator, http: httpx.Client
) -> None:
    customer = emulator.create_customer()
    prices = [_seed(emulator)[1] for _ in range(25)]
    _, event = emulator.create_subscription(customer, [(p, 1) for p in prices])
    invoice = event["data"]["object"]
    assert (len(invoice["lines"]["data"]), invoice["lines"]["has_more"]) == (10, True)
    assert invoice["lines"]["total_count"] == 25

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 10}
    pages = 0
    while True:
        page = http.get(invoice["lines"]["url"], params=params).json()
        pages += 1
        seen += [line["pricing"]["price_details"]["price"] for line in page["data"]]
        if not page["has_more"]:
            break
        params["starting_after"] = page["data"][-1]["id"]
    assert (seen, pages) == (prices, 3)


def test_events_list_filters_and_pages(
    emulator: StripeEmulator, client: stripe.StripeClient
) -> None:
    emulator.now = start = 2_000_000_000
    customer, price_id = _seed(emulator)
    subscription_id, created = emulator.create_subscription(customer, [(price_id, 1)])
    renewed = emulator.renew_subscription(subscription_id)
    emulator.now += 10
    deleted = emulator.cancel_subscription(subscription_id)

    paid = client.v1.events.list({"type": "invoice.paid", "created": {"gte": start}})
    assert [e.id for e in paid.data] == [renewed["id"], created["id"]]
    both = client.v1.events.list(
        {"types": ["invoice.paid", "customer.subscription.deleted"], "created": {"gte": start}}
    )
    assert [e.id for e in both.data] == [deleted["id"], renewed["id"], created["id"]]
    wildcard = client.v1.events.list({"type": "customer.*", "created": {"gte": start}})
    assert [e.id for e in wildcard.data] == [deleted["id"]]
    first = client.v1.events.list({"created": {"gte": start}, "limit": 2})
    assert first.has_more is True
    rest = [e.id for e in first.auto_paging_iter()]
    assert rest == [deleted["id"], renewed["id"], created["id"]]
    assert emulator.events[-1] == deleted


def test_webhook_endpoints_crud(client: stripe.StripeClient) -> None:
    created = client.v1.webhook_endpoints.create(
        {
            "url": "https://example.com/stripe",
            "enabled_events": ["invoice.paid", "customer.subscription.deleted"],
            "api_version": "2025-03-31.basil",
        }
    )
    assert created.secret is not None
    assert created.secret.startswith("whsec_")
    assert (created.api_version, created.status) == ("2025-03-31.basil", "enabled")

    listed = client.v1.webhook_endpoints.list({"limit": 100}).data
    assert created.id in [e.id for e in listed]
    assert all("secret" not in e for e in listed)
    updated = client.v1.webhook_endpoints.update(
        created.id, {"disabled": True, "enabled_events": ["invoice.paid"]}
    )
    assert (updated.status, updated.enabled_events) == ("disabled", ["invoice.paid"])
    assert client.v1.webhook_endpoints.retrieve(created.id).url == "https://example.com/stripe"
    assert client.v1.webhook_endpoints.delete(created.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.webhook_endpoints.retrieve(created.id)
    with pytest.raises(stripe.InvalidRequestError, match="url"):
        client.v1.webhook_endpoints.create({"enabled_events": ["*"]})  # type: ignore[typeddict-item]


def test_errors_have_stripes_shape(http: httpx.Client) -> None:
    missing = http.get("/v1/prices/price_nope")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "type": "invalid_request_error",
            "message": "No such price: 'price_nope'",
            "code": "resource_missing",
            "param": "id",
        }
    }
    assert http.get("/v1/prices/x", headers={"Authorization": ""}).status_code == 401
    wrong = http.get("/v1/prices/x", headers={"Authorization": "Bearer sk_test_wrong_key_1234"})
    assert wrong.status_code == 401
    assert "sk_test_wrong_key_1234" not in wrong.text
    assert http.get("/v1/charges").status_code == 404


def test_basic_auth_like_curl_u(
    emulator: StripeEmulator, served: tuple[StripeEmulator, str]
) -> None:
    # `curl -u sk_test_...:` (the form Stripe's docs use): the key as the user name, no password.
    price = emulator.create_price(emulator.create_product("Pro"))
    with httpx.Client(base_url=served[1]) as anonymous:
        ok = anonymous.get(f"/v1/prices/{price}", auth=(KEY, ""))
        assert ok.status_code == 200
        assert ok.json()["id"] == price
        wrong = anonymous.get(f"/v1/prices/{price}", auth=("sk_test_wrong_key_1234", ""))
        assert wrong.status_code == 401
        assert "Invalid API Key" in wrong.json()["error"]["message"]
        assert "sk_test_wrong_key_1234" not in wrong.text
        # The harsher reading where Stripe's docs are silent: a password is not a key.
        assert anonymous.get(f"/v1/prices/{price}", auth=(KEY, "x")).status_code == 401
        garbled = anonymous.get(f"/v1/prices/{price}", headers={"Authorization": "Basic %%%"})
        assert garbled.status_code == 401
        other = anonymous.get(f"/v1/prices/{price}", headers={"Authorization": f"Token {KEY}"})
        assert other.status_code == 401


def test_metadata_form_semantics_and_limits(emulator: StripeEmulator, http: httpx.Client) -> None:
    customer = emulator.create_customer(metadata={"a": "1", "b": "2"})
    url = f"/v1/customers/{customer}"

    ok = http.post(url, data={"metadata[b]": "", "metadata[c]": "3", "email": "x@example.com"})
    assert ok.json()["metadata"] == {"a": "1", "c": "3"}
    assert emulator.customer(customer)["email"] == "x@example.com"
    too_long = http.post(url, data={"metadata[codes]": "x" * 501})
    assert too_long.status_code == 400
    assert too_long.json()["error"]["param"] == "metadata[codes]"
    http.post(url, data={"metadata": ""})
    assert emulator.customer(customer)["metadata"] == {}


def test_requests_are_recorded_and_faults_are_used_up(
    emulator: StripeEmulator, http: httpx.Client
) -> None:
    _, price_id = _seed(emulator)
    emulator.reset_requests()
    emulator.inject_fault("get", r"^/v1/prices/", "503", times=2)

    statuses = [http.get(f"/v1/prices/{price_id}").status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert emulator.count() == emulator.count("GET", "/v1/prices/") == 3
    assert emulator.requests[0].path == f"/v1/prices/{price_id}"
    http.get("/v1/events", params={"types[]": ["invoice.paid"], "created[gte]": "5"})
    assert emulator.requests[-1].params == {"types": ["invoice.paid"], "created": {"gte": "5"}}
    with pytest.raises(ValueError, match="unknown fault"):
        emulator.inject_fault("GET", "x", "418")  # type: ignore[arg-type]


def test_story_api_rejects_unknown_ids() -> None:
    emulator = StripeEmulator()
    with pytest.raises(KeyError, match="cus_nope"):
        emulator.create_subscription("cus_nope", [])


def test_both_emulators_share_one_fake_service_api() -> None:
    stripe_emulator, zentitle_emulator = StripeEmulator(), ZentitleEmulator()
    for emulator in (stripe_emulator, zentitle_emulator):
        assert isinstance(emulator, FakeService)
        assert isinstance(emulator.clock, FakeClock)
    stripe_emulator.clock.now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    stripe_emulator.advance(timedelta(seconds=10))
    assert stripe_emulator.now == _utc(2030, 1, 1) + 10  # the unix-seconds alias
    stripe_emulator.now = _utc(2031, 1, 1)
    assert stripe_emulator.clock.now == datetime(2031, 1, 1, tzinfo=timezone.utc)


def test_shared_fault_kinds_work_on_stripe(emulator: StripeEmulator, http: httpx.Client) -> None:
    customer = emulator.create_customer()
    url = f"/v1/customers/{customer}"
    emulator.inject_fault("POST", "^/v1/customers/", "503_after")
    assert http.post(url, data={"name": "Done anyway"}).status_code == 503
    assert emulator.customer(customer)["name"] == "Done anyway"
    assert emulator.requests[-1].fault == "503_after"
    transport = emulator.transport()
    with StripeGateway(emulator.api_key, http_transport=transport, max_network_retries=0) as gw:
        emulator.inject_fault("GET", "^/v1/customers/", "connect")
        with pytest.raises(StripeAPIError) as info:
            gw.retrieve_customer(customer)
    assert info.value.transient is True
    emulator.fail_rate(1.0, kinds=["502"], seed=1)
    assert http.get(url).status_code == 502
    emulator.clear_faults()
    assert http.get(url).status_code == 200
