"""StripeGateway through stripe-python's real HTTP code, against the served emulator
(and respx where a hand-made response is simpler)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import respx
import stripe

from zentitle_stripe.exceptions import ConfigurationError, StripeAPIError
from zentitle_stripe.stripe_api import Price, StripeGateway, key_mode
from zentitle_stripe.testing import OLD_API_VERSION, StripeEmulator

KEY = "sk_test_emulator"


@pytest.fixture(scope="module")
def emulator() -> StripeEmulator:
    return StripeEmulator(api_key=KEY)


@pytest.fixture(scope="module")
def base_url(emulator: StripeEmulator) -> Iterator[str]:
    with emulator.serve() as url:
        yield url


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """stripe-python waits >= 0.5 s between retries; tests need not."""
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.01)


@pytest.fixture
def gateway(base_url: str) -> Iterator[StripeGateway]:
    with StripeGateway(KEY, api_base=base_url, timeout=5, max_network_retries=0) as gw:
        yield gw


def _price(emulator: StripeEmulator, **kwargs: object) -> str:
    product = emulator.create_product("Pro", metadata={"tier": "pro"})
    return emulator.create_price(product, **kwargs)  # type: ignore[arg-type]


def test_retrieve_price_and_cache(emulator: StripeEmulator, gateway: StripeGateway) -> None:
    price_id = _price(emulator, metadata={"offering_sku": "PRO-1Y"}, lookup_key="pro_yearly")
    emulator.reset_requests()

    price = gateway.retrieve_price(price_id)
    again = gateway.retrieve_price(price_id)

    assert price == again
    assert price == Price(
        id=price_id,
        product_id=price.product_id,
        metadata={"offering_sku": "PRO-1Y"},
        lookup_key="pro_yearly",
        active=True,
        type="recurring",
        recurring_interval="year",
        recurring_interval_count=1,
    )
    assert emulator.count("GET", f"/v1/prices/{price_id}") == 1
    gateway.clear_caches()
    gateway.retrieve_price(price_id)
    assert emulator.count("GET", "/v1/prices/") == 2


def test_price_cache_disabled_with_zero_ttl(emulator: StripeEmulator, base_url: str) -> None:
    price_id = _price(emulator, recurring=False)
    emulator.reset_requests()
    with StripeGateway(KEY, api_base=base_url, price_cache_ttl=0) as gateway:
        price = gateway.retrieve_price(price_id)
        gateway.retrieve_price(price_id)
    assert (price.type, price.recurring_interval, price.recurring_interval_count) == (
        "one_time",
        None,
        None,
    )
    assert emulator.count("GET", "/v1/prices/") == 2


def test_price_cache_expires_and_evicts(
    emulator: StripeEmulator, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(StripeGateway, "PRICE_CACHE_SIZE", 2)
    a, b, c = (_price(emulator) for _ in range(3))
    with StripeGateway(KEY, api_base=base_url, price_cache_ttl=0.3) as gateway:
        for price_id in (a, b, c, b, a):  # c evicts a (least recently used); b stays
            gateway.retrieve_price(price_id)
        assert [emulator.count("GET", f"/v1/prices/{p}") for p in (a, b, c)] == [2, 1, 1]
        time.sleep(0.35)
        gateway.retrieve_price(b)
    assert emulator.count("GET", f"/v1/prices/{b}") == 2


def test_retrieve_product(emulator: StripeEmulator, gateway: StripeGateway) -> None:
    product_id = emulator.create_product("Pro", metadata={"offering_sku": "ON-PRODUCT"})
    product = gateway.retrieve_product(product_id)
    assert (product.id, product.name, product.metadata) == (
        product_id,
        "Pro",
        {"offering_sku": "ON-PRODUCT"},
    )


@pytest.mark.parametrize("count", [25, 150])
def test_list_invoice_lines_pages(
    emulator: StripeEmulator, gateway: StripeGateway, count: int
) -> None:
    customer = emulator.create_customer("a@example.com")
    prices = [_price(emulator) for _ in range(count)]
    subscription_id, event = emulator.create_subscription(customer, [(p, 1) for p in prices])
    invoice = event["data"]["object"]
    assert len(invoice["lines"]["data"]) == 10
    assert invoice["lines"]["has_more"] is True
    emulator.reset_requests()

    lines = gateway.list_invoice_lines(invoice["id"])

    assert [line.price_id for line in lines] == prices
    assert {line.subscription_id for line in lines} == {subscription_id}
    assert emulator.count("GET", "/v1/invoices/") == (1 if count <= 100 else 2)


def test_list_invoice_lines_old_shape_carries_price_metadata() -> None:
    emulator = StripeEmulator(api_version=OLD_API_VERSION)
    product = emulator.create_product("Pro")
    price = emulator.create_price(product, metadata={"offering_sku": "PRO"})
    _, event = emulator.create_subscription(emulator.create_customer(), [(price, 3)])
    with StripeGateway(KEY, http_transport=emulator.transport()) as gateway:
        (line,) = gateway.list_invoice_lines(event["data"]["object"]["id"])
    assert (line.price_id, line.quantity, line.price_metadata) == (
        price,
        3,
        {"offering_sku": "PRO"},
    )


def test_subscription_retrieve_and_metadata_merge(
    emulator: StripeEmulator, gateway: StripeGateway
) -> None:
    price_id = _price(emulator, metadata={"offering_sku": "PRO"})
    subscription_id, _ = emulator.create_subscription(emulator.create_customer(), [(price_id, 2)])
    gateway.update_subscription_metadata(subscription_id, {"keep": "1", "drop": "x"})

    gateway.update_subscription_metadata(subscription_id, {"activation_codes": "A,B", "drop": ""})

    subscription = gateway.retrieve_subscription(subscription_id)
    assert subscription.metadata == {"keep": "1", "activation_codes": "A,B"}
    assert subscription.status == "active"
    (item,) = subscription.items
    assert (item.price_id, item.quantity, item.price_metadata) == (
        price_id,
        2,
        {"offering_sku": "PRO"},
    )
    assert (
        item.current_period_end
        == emulator.subscription(subscription_id)["items"]["data"][0]["current_period_end"]
    )


def test_customer_retrieve_update_and_deleted(
    emulator: StripeEmulator, gateway: StripeGateway
) -> None:
    customer_id = emulator.create_customer("ada@example.com", "Ada", metadata={"a": "1"})
    gateway.update_customer_metadata(customer_id, {"zentitle_customer_id": "z1", "a": ""})

    customer = gateway.retrieve_customer(customer_id)

    assert (customer.email, customer.name, customer.deleted) == ("ada@example.com", "Ada", False)
    assert customer.metadata == {"zentitle_customer_id": "z1"}
    emulator.delete_customer(customer_id)
    assert gateway.retrieve_customer(customer_id).deleted is True


def test_not_found_is_permanent(gateway: StripeGateway) -> None:
    with pytest.raises(StripeAPIError) as info:
        gateway.retrieve_subscription("sub_missing")
    err = info.value
    assert (err.status, err.transient, err.error_code) == (404, False, "resource_missing")
    assert "sub_missing" in str(err)
    assert "HTTP 404" in str(err)


@pytest.mark.parametrize(("kind", "status"), [("429", 429), ("500", 500), ("503", 503)])
def test_rate_limit_and_server_errors_are_transient(
    emulator: StripeEmulator, gateway: StripeGateway, kind: str, status: int
) -> None:
    price_id = _price(emulator)
    emulator.inject_fault("GET", "/v1/prices/", kind)  # type: ignore[arg-type]
    with pytest.raises(StripeAPIError) as info:
        gateway.retrieve_price(price_id)
    assert (info.value.status, info.value.transient) == (status, True)
    assert gateway.retrieve_price(price_id).id == price_id  # the fault was used up


def test_bad_body_is_transient(emulator: StripeEmulator, gateway: StripeGateway) -> None:
    customer_id = emulator.create_customer()
    emulator.inject_fault("GET", "/v1/customers/", "bad_body")
    with pytest.raises(StripeAPIError) as info:
        gateway.retrieve_customer(customer_id)
    assert info.value.transient is True


def test_stripe_python_retries_server_errors(emulator: StripeEmulator, base_url: str) -> None:
    price_id = _price(emulator)
    emulator.inject_fault("GET", "/v1/prices/", "500", times=2)
    emulator.reset_requests()
    with StripeGateway(KEY, api_base=base_url, max_network_retries=2) as gateway:
        assert gateway.retrieve_price(price_id).id == price_id
    assert emulator.count("GET", "/v1/prices/") == 3


def test_bad_key_is_permanent_and_never_echoed(base_url: str) -> None:
    key = "sk_test_51WrongKeyDoNotLeakMe0123456789"
    with StripeGateway(key, api_base=base_url) as gateway, pytest.raises(StripeAPIError) as info:
        gateway.retrieve_customer("cus_x")
    err = info.value
    assert (err.status, err.transient) == (401, False)
    assert "Invalid API Key" in str(err)
    assert key not in str(err)
    assert key not in repr(err)


def test_timeout_is_transient_and_bounded(emulator: StripeEmulator, base_url: str) -> None:
    customer_id = emulator.create_customer()
    emulator.inject_fault("POST", "/v1/customers/", "timeout", delay=1.5)
    with StripeGateway(KEY, api_base=base_url, timeout=0.3, max_network_retries=0) as gateway:
        started = time.monotonic()
        with pytest.raises(StripeAPIError) as info:
            gateway.update_customer_metadata(customer_id, {"k": "v"})
        elapsed = time.monotonic() - started
    assert (info.value.status, info.value.transient) == (None, True)
    assert elapsed < 1.2
    # The request was processed; only the answer was lost, as with a real timeout.
    assert emulator.customer(customer_id)["metadata"] == {"k": "v"}


def test_in_process_transport_and_timeout() -> None:
    emulator = StripeEmulator()
    price_id = _price(emulator)
    with StripeGateway(KEY, http_transport=emulator.transport(), max_network_retries=0) as gw:
        assert gw.retrieve_price(price_id).id == price_id
        emulator.inject_fault("GET", "/v1/products/", "timeout")
        with pytest.raises(StripeAPIError) as info:
            gw.retrieve_product("prod_any")
    assert info.value.transient is True


def test_repr_masks_key_and_mode(base_url: str) -> None:
    key = "sk_live_51SecretSecretSecret9876"
    gateway = StripeGateway(key, api_base=base_url + "/")
    try:
        assert key not in repr(gateway)
        assert "sk_live_****9876" in repr(gateway)
        assert gateway.mode == "live"
    finally:
        gateway.close()


@pytest.mark.parametrize(
    ("key", "mode"),
    [
        ("sk_test_abc", "test"),
        ("rk_test_abc", "test"),
        ("sk_live_abc", "live"),
        ("rk_live_abc", "live"),
        ("pk_test_abc", "unknown"),
        ("whatever", "unknown"),
    ],
)
def test_key_mode(key: str, mode: str) -> None:
    assert key_mode(key) == mode


def test_empty_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        StripeGateway(" ")


def test_respx_retry_after_and_message_scrubbed(respx_mock: respx.MockRouter) -> None:
    key = "sk_test_51LeakyLeakyLeaky0000"
    respx_mock.get("https://stripe.test/v1/prices/price_1").mock(
        return_value=httpx.Response(
            409,
            headers={"Retry-After": "2"},
            json={
                "error": {
                    "type": "invalid_request_error",
                    "code": "lock_timeout",
                    "message": f"Lock timeout for key {key}",
                }
            },
        )
    )
    gateway = StripeGateway(key, api_base="https://stripe.test", max_network_retries=0)
    with gateway, pytest.raises(StripeAPIError) as info:
        gateway.retrieve_price("price_1")
    err = info.value
    assert (err.status, err.transient, err.retry_after, err.error_code) == (
        409,
        True,
        2.0,
        "lock_timeout",
    )
    assert key not in str(err)
    assert "sk_test_****0000" in str(err)


def test_respx_connection_error_is_transient(respx_mock: respx.MockRouter) -> None:
    respx_mock.get("https://stripe.test/v1/subscriptions/sub_1").mock(
        side_effect=httpx.ConnectError("refused")
    )
    gateway = StripeGateway(KEY, api_base="https://stripe.test", max_network_retries=0)
    with gateway, pytest.raises(StripeAPIError) as info:
        gateway.retrieve_subscription("sub_1")
    assert (info.value.status, info.value.transient) == (None, True)
    assert "could not reach Stripe" in str(info.value)
