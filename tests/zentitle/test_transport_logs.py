"""The remote clients log each retry (status or error, attempt, wait) and each token
fetch at INFO/WARNING, and never a token, a secret or a key."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
import respx
import stripe

from zentitle_stripe.stripe_api import StripeGateway
from zentitle_stripe.testing import StripeEmulator
from zentitle_stripe.zentitle import ZentitleClient

API = "https://t1.api.example.test"
TOKEN_URL = "https://t1.keycloak.example.test/realms/t1/protocol/openid-connect/token"
CLIENT_SECRET = "client-secret-never-logged"
CUSTOMER = {"id": "cust_1", "name": "Acme", "accountRefId": "cus_1", "status": "active"}
STRIPE_KEY = "sk_test_key_never_logged_0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="zentitle_stripe")
    return caplog


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        counter = iter(range(1, 1000))
        mock.post(TOKEN_URL).mock(
            side_effect=lambda request: httpx.Response(
                200, json={"access_token": f"token-value-{next(counter)}", "expires_in": 300}
            )
        )
        yield mock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(router: respx.MockRouter, clock: Clock, sleeps: list[float]) -> Iterator[ZentitleClient]:
    with ZentitleClient(
        API, "t_1", "cid", CLIENT_SECRET, TOKEN_URL, sleep=sleeps.append, clock=clock
    ) as zentitle:
        yield zentitle


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def assert_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    for value in (CLIENT_SECRET, "token-value-", STRIPE_KEY, "Bearer"):
        assert value not in caplog.text


def test_each_zentitle_retry_is_a_warning_with_status_attempt_and_wait(
    client: ZentitleClient,
    router: respx.MockRouter,
    sleeps: list[float],
    log: pytest.LogCaptureFixture,
) -> None:
    router.get(f"{API}/api/v1/customers/cust_1").mock(
        side_effect=[
            httpx.Response(503),
            httpx.ConnectError("refused"),
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(200, json=CUSTOMER),
        ]
    )
    client.get_customer("cust_1")
    retries = [r for r in log.records if r.levelno == logging.WARNING]
    assert [r.__dict__["attempt"] for r in retries] == [2, 3, 4]
    assert [r.__dict__["wait_s"] for r in retries] == [round(s, 3) for s in sleeps]
    first, second, third = (r.getMessage() for r in retries)
    assert first.startswith(
        "Zentitle2 GET /api/v1/customers/cust_1 answered 503; attempt 2 of 4 in "
    )
    assert second.startswith(
        "Zentitle2 GET /api/v1/customers/cust_1 failed (ConnectError); attempt 3 of 4"
    )
    assert third == (
        "Zentitle2 GET /api/v1/customers/cust_1 answered 429; attempt 4 of 4 in 7.00 s "
        "(its Retry-After)"
    )
    assert_no_secret(log)


def test_token_fetches_are_logged_with_why(
    client: ZentitleClient, router: respx.MockRouter, clock: Clock, log: pytest.LogCaptureFixture
) -> None:
    router.get(f"{API}/api/v1/customers/cust_1").mock(
        side_effect=[
            httpx.Response(200, json=CUSTOMER),
            httpx.Response(200, json=CUSTOMER),
            httpx.Response(401),
            httpx.Response(200, json=CUSTOMER),
        ]
    )
    client.get_customer("cust_1")
    clock.now += 241  # past the refresh point (300 s lifetime, 60 s early)
    client.get_customer("cust_1")
    client.get_customer("cust_1")  # 401: the token is refused, a new one fetched
    assert messages(log, logging.INFO) == [
        "Zentitle2 access token fetched (first use): valid 300 s, refreshed after 240 s",
        "Zentitle2 access token fetched (the cached one is about to expire): valid 300 s, "
        "refreshed after 240 s",
    ]
    assert messages(log, logging.WARNING) == [
        "Zentitle2 access token fetched (the API refused the cached one (401)): valid 300 s, "
        "refreshed after 240 s"
    ]
    assert_no_secret(log)


def test_each_stripe_retry_is_a_warning_with_status_attempt_and_wait(
    monkeypatch: pytest.MonkeyPatch, log: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.01)
    emulator = StripeEmulator(api_key=STRIPE_KEY)
    product = emulator.create_product("Pro")
    price_id = emulator.create_price(product)
    emulator.inject_fault("GET", "/v1/prices/", "500", times=1)
    emulator.inject_fault("GET", "/v1/prices/", "timeout", times=1)
    with StripeGateway(
        STRIPE_KEY, http_transport=emulator.transport(), max_network_retries=2
    ) as gateway:
        assert gateway.retrieve_price(price_id).id == price_id
    first, second = messages(log, logging.WARNING)
    assert first == (
        f"Stripe GET /v1/prices/{price_id} answered 500; attempt 2 of 3 in 0.01 s "
        "(stripe-python's retry)"
    )
    assert second.startswith(f"Stripe GET /v1/prices/{price_id} failed (")
    assert "attempt 3 of 3 in 0.01 s" in second
    assert_no_secret(log)
