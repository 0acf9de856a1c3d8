"""ZentitleClient against respx mocks (protocol details) and the emulator (whole flows)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import respx

from zentitle_stripe.exceptions import ZentitleAPIError
from zentitle_stripe.testing import ZentitleEmulator
from zentitle_stripe.zentitle import ZentitleAPI, ZentitleClient
from zentitle_stripe.zentitle.models import Interval

API = "https://t1.api.example.test"
TOKEN_URL = "https://t1.keycloak.example.test/realms/t1/protocol/openid-connect/token"
SECRET = "s3cr3t-value-never-shown"
CUSTOMER = {"id": "cust_1", "name": "Acme", "accountRefId": "cus_1", "status": "active"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def token_route(router: respx.MockRouter) -> respx.Route:
    counter = iter(range(1, 1000))
    return router.post(TOKEN_URL).mock(
        side_effect=lambda request: httpx.Response(
            200, json={"access_token": f"tok-{next(counter)}", "expires_in": 300}
        )
    )


@pytest.fixture
def client(
    token_route: respx.Route, clock: FakeClock, sleeps: list[float]
) -> Iterator[ZentitleClient]:
    with ZentitleClient(
        API, "t_1", "cid", SECRET, TOKEN_URL, sleep=sleeps.append, clock=clock
    ) as zentitle:
        yield zentitle


def test_client_satisfies_protocol(client: ZentitleClient) -> None:
    api: ZentitleAPI = client
    assert api is client


def test_headers_and_token_form(
    client: ZentitleClient, router: respx.MockRouter, token_route: respx.Route
) -> None:
    route = router.get(f"{API}/api/v1/customers/cust_1").respond(200, json=CUSTOMER)
    assert client.get_customer("cust_1").account_ref_id == "cus_1"
    headers = route.calls.last.request.headers
    assert headers["Authorization"] == "Bearer tok-1"
    assert headers["N-TenantId"] == "t_1"
    assert headers["N-Api-Version"] == "2025-10-10"
    assert headers["Accept"] == "application/json"
    form = token_route.calls.last.request.content.decode()
    assert form == f"grant_type=client_credentials&client_id=cid&client_secret={SECRET}"


def test_token_is_cached_and_refreshed_before_expiry(
    client: ZentitleClient, router: respx.MockRouter, token_route: respx.Route, clock: FakeClock
) -> None:
    route = router.get(f"{API}/api/v1/customers/cust_1").respond(200, json=CUSTOMER)
    client.get_customer("cust_1")
    clock.now += 239  # 300 s lifetime, refreshed 60 s early
    client.get_customer("cust_1")
    assert token_route.call_count == 1
    clock.now += 2
    client.get_customer("cust_1")
    assert token_route.call_count == 2
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok-2"


def test_short_token_lifetime_refreshes_at_80_percent(
    client: ZentitleClient, router: respx.MockRouter, clock: FakeClock
) -> None:
    token = router.post(TOKEN_URL).respond(200, json={"access_token": "t", "expires_in": 100})
    router.get(f"{API}/api/v1/customers/cust_1").respond(200, json=CUSTOMER)
    client.get_customer("cust_1")
    clock.now += 79
    client.get_customer("cust_1")
    assert token.call_count == 1
    clock.now += 2
    client.get_customer("cust_1")
    assert token.call_count == 2


def test_one_token_request_under_eight_threads(
    client: ZentitleClient, router: respx.MockRouter
) -> None:
    def slow_token(request: httpx.Request) -> httpx.Response:
        time.sleep(0.05)
        return httpx.Response(200, json={"access_token": "shared", "expires_in": 300})

    token = router.post(TOKEN_URL).mock(side_effect=slow_token)
    router.get(f"{API}/api/v1/customers/cust_1").respond(200, json=CUSTOMER)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            client.get_customer("cust_1")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert token.call_count == 1


def test_401_refreshes_token_and_retries_once(
    client: ZentitleClient, router: respx.MockRouter, token_route: respx.Route
) -> None:
    route = router.get(f"{API}/api/v1/customers/cust_1").mock(
        side_effect=[httpx.Response(401), httpx.Response(200, json=CUSTOMER)]
    )
    assert client.get_customer("cust_1").id == "cust_1"
    assert token_route.call_count == 2
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok-2"


def test_second_401_is_raised(
    client: ZentitleClient, router: respx.MockRouter, token_route: respx.Route
) -> None:
    route = router.get(f"{API}/api/v1/customers/cust_1").respond(401)
    with pytest.raises(ZentitleAPIError) as info:
        client.get_customer("cust_1")
    assert info.value.status == 401
    assert not info.value.transient
    assert "ZENTITLE_CLIENT_SECRET" in str(info.value)
    assert route.call_count == 2
    assert token_route.call_count == 2


def test_token_endpoint_rejection_names_settings_not_secret(
    router: respx.MockRouter, sleeps: list[float]
) -> None:
    router.post(TOKEN_URL).respond(401, json={"error": "invalid_client"})
    client = ZentitleClient(API, "t_1", "cid", SECRET, TOKEN_URL, sleep=sleeps.append)
    with pytest.raises(ZentitleAPIError) as info:
        client.ping()
    error = info.value
    assert error.status == 401
    assert not error.transient
    assert error.error_code == "invalid_client"
    for setting in ("ZENTITLE_CLIENT_ID", "ZENTITLE_CLIENT_SECRET", "ZENTITLE_TOKEN_URL"):
        assert setting in str(error)
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert SECRET not in repr(client)


def test_token_endpoint_unreachable_is_transient(
    router: respx.MockRouter, sleeps: list[float]
) -> None:
    router.post(TOKEN_URL).mock(side_effect=httpx.ConnectError("refused"))
    client = ZentitleClient(API, "t_1", "cid", SECRET, TOKEN_URL, sleep=sleeps.append)
    with pytest.raises(ZentitleAPIError) as info:
        client.ping()
    assert info.value.transient
    assert "ZENTITLE_TOKEN_URL" in str(info.value)
    assert SECRET not in str(info.value)
    assert len(sleeps) == 3


def test_pagination_follows_elements_total(
    client: ZentitleClient, router: respx.MockRouter
) -> None:
    offerings = [{"id": f"off_{i}", "sku": f"sku-{i}"} for i in range(250)]

    def page(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["pageNumber"])
        size = int(request.url.params["pageSize"])
        items = offerings[(number - 1) * size : number * size]
        return httpx.Response(
            200, json={"items": items, "pageNumber": number, "pageSize": size, "elementsTotal": 250}
        )

    route = router.get(f"{API}/api/v1/offerings").mock(side_effect=page)
    assert [o.id for o in client.list_offerings()] == [o["id"] for o in offerings]
    assert route.call_count == 3
    assert route.calls.last.request.url.params["expand"] == "plan"
    assert route.calls.last.request.url.params["pageSize"] == "100"


def test_pagination_without_total_stops_on_short_page(
    client: ZentitleClient, router: respx.MockRouter
) -> None:
    full = {"items": [{"id": f"egr_{i}"} for i in range(100)]}
    route = router.get(f"{API}/api/v1/entitlements/groups").mock(
        side_effect=[httpx.Response(200, json=full), httpx.Response(200, json={"items": []})]
    )
    assert len(client.list_entitlement_groups(customer_id="cust_1")) == 100
    assert route.call_count == 2
    params = route.calls.last.request.url.params
    assert (params["customerId"], params["expand"], params["pageNumber"]) == (
        "cust_1",
        "entitlements",
        "2",
    )


def test_find_entitlement_groups_matches_order_ref_client_side(
    client: ZentitleClient, router: respx.MockRouter
) -> None:
    items = [
        {"id": "egr_1", "orderRefId": "in_1"},
        {"id": "egr_2", "orderRefId": "in_2"},
        {"id": "egr_3", "orderRefId": "in_1"},
    ]
    router.get(f"{API}/api/v1/entitlements/groups").respond(
        200, json={"items": items, "elementsTotal": 3}
    )
    assert [g.id for g in client.find_entitlement_groups("in_1")] == ["egr_1", "egr_3"]


def test_find_entitlement_groups_pages_on_by_the_items_seen_not_the_matches(
    client: ZentitleClient, router: respx.MockRouter
) -> None:
    # 100 items with one match, then a short page: `elementsTotal` (101) is reached by
    # the items seen; counting the parsed matches would ask for a third page.
    first = [{"id": f"egr_{i}", "orderRefId": f"sub_{i}"} for i in range(100)]
    second = [{"id": "egr_x", "orderRefId": "sub_7"}]
    route = router.get(f"{API}/api/v1/entitlements/groups").mock(
        side_effect=[
            httpx.Response(200, json={"items": first, "elementsTotal": 101}),
            httpx.Response(200, json={"items": second, "elementsTotal": 101}),
            httpx.Response(500),
        ]
    )
    found = client.find_entitlement_groups("sub_7", customer_id="cust_1")
    assert [g.id for g in found] == ["egr_7", "egr_x"]
    assert route.call_count == 2


def test_find_entitlement_groups_parses_only_the_matches(
    client: ZentitleClient, router: respx.MockRouter
) -> None:
    # A search reads `orderRefId` of every entry; an entry of another order that this
    # client could not parse (no id) does not fail it, a matching one still does.
    items = [{"orderRefId": "sub_other"}, {"id": "egr_1", "orderRefId": "sub_1"}]
    router.get(f"{API}/api/v1/entitlements/groups").respond(
        200, json={"items": items, "elementsTotal": 2}
    )
    assert [g.id for g in client.find_entitlement_groups("sub_1")] == ["egr_1"]
    with pytest.raises(ZentitleAPIError, match="id"):
        client.find_entitlement_groups("sub_other")


def test_get_retries_with_backoff(
    client: ZentitleClient, router: respx.MockRouter, sleeps: list[float]
) -> None:
    route = router.get(f"{API}/api/v1/customers/cust_1").mock(
        side_effect=[
            httpx.Response(503),
            httpx.ReadTimeout("slow"),
            httpx.Response(502),
            httpx.Response(200, json=CUSTOMER),
        ]
    )
    assert client.get_customer("cust_1").id == "cust_1"
    assert route.call_count == 4
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps):
        assert 0 <= delay <= 0.5 * 2**attempt


def test_retry_after_is_honoured_and_capped(
    client: ZentitleClient, router: respx.MockRouter, sleeps: list[float]
) -> None:
    router.get(f"{API}/api/v1/customers/cust_1").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(429, headers={"Retry-After": "3600"}),
            httpx.Response(200, json=CUSTOMER),
        ]
    )
    client.get_customer("cust_1")
    assert sleeps == [7.0, 30.0]


def test_retries_are_bounded(
    client: ZentitleClient, router: respx.MockRouter, sleeps: list[float]
) -> None:
    route = router.get(f"{API}/api/v1/customers/cust_1").respond(
        504, json={"error": "Gateway Timeout"}
    )
    with pytest.raises(ZentitleAPIError) as info:
        client.get_customer("cust_1")
    assert (info.value.status, info.value.transient) == (504, True)
    assert route.call_count == 4
    assert len(sleeps) == 3


def test_500_is_transient_but_not_retried(client: ZentitleClient, router: respx.MockRouter) -> None:
    route = router.get(f"{API}/api/v1/customers/cust_1").respond(500)
    with pytest.raises(ZentitleAPIError) as info:
        client.get_customer("cust_1")
    assert (info.value.status, info.value.transient) == (500, True)
    assert route.call_count == 1


@pytest.mark.parametrize(
    "failure", [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped")]
)
def test_create_is_not_retried_when_it_may_have_arrived(
    client: ZentitleClient, router: respx.MockRouter, failure: Exception
) -> None:
    route = router.post(f"{API}/api/v1/entitlements/groups").mock(side_effect=failure)
    with pytest.raises(ZentitleAPIError) as info:
        client.create_entitlement_group(skus=["pro"], order_ref_id="in_1")
    assert info.value.transient
    assert info.value.status is None
    assert route.call_count == 1


@pytest.mark.parametrize("status", [502, 504])
def test_create_is_not_retried_after_gateway_errors(
    client: ZentitleClient, router: respx.MockRouter, status: int
) -> None:
    route = router.post(f"{API}/api/v1/customers").respond(status)
    with pytest.raises(ZentitleAPIError) as info:
        client.create_customer(name="Acme")
    assert info.value.transient
    assert route.call_count == 1


def test_create_is_retried_when_it_certainly_did_not_arrive(
    client: ZentitleClient, router: respx.MockRouter, sleeps: list[float]
) -> None:
    route = router.post(f"{API}/api/v1/customers").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.Response(429, headers={"Retry-After": "1"}),
            httpx.Response(201, json=CUSTOMER),
        ]
    )
    assert client.create_customer(name="Acme", account_ref_id="cus_1").id == "cust_1"
    assert route.call_count == 3
    # Compared as JSON: httpx before 0.28 puts spaces after the separators.
    assert json.loads(route.calls.last.request.read()) == {"name": "Acme", "accountRefId": "cus_1"}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_create_is_not_repeated_after_a_gateway_error_that_may_follow_the_work(
    client: ZentitleClient, router: respx.MockRouter, status: int
) -> None:
    route = router.post(f"{API}/api/v1/entitlements/groups").respond(status, text="<html>")
    with pytest.raises(ZentitleAPIError) as caught:
        client.create_entitlement_group(skus=["pro"], order_ref_id="sub_1")
    assert route.call_count == 1
    assert caught.value.may_have_landed
    assert caught.value.transient


def test_renew_is_treated_like_a_create(client: ZentitleClient, router: respx.MockRouter) -> None:
    route = router.patch(f"{API}/api/v1/entitlements/ent_1/renew").respond(502)
    with pytest.raises(ZentitleAPIError):
        client.renew_entitlement("ent_1")
    assert route.call_count == 1


def test_api_error_body_is_parsed(client: ZentitleClient, router: respx.MockRouter) -> None:
    body = {
        "error": "Validation failed",
        "errorCode": "ValidationError",
        "validationErrors": [
            {"propertyName": "skus[0]", "message": "Offering 'x' was not found"},
            {"message": "second"},
        ],
    }
    router.post(f"{API}/api/v1/entitlements/groups").respond(422, json=body)
    with pytest.raises(ZentitleAPIError) as info:
        client.create_entitlement_group(skus=["x"])
    error = info.value
    assert str(error) == (
        "Zentitle2 POST /api/v1/entitlements/groups failed with 422: "
        "skus[0]: Offering 'x' was not found; second"
    )
    assert (error.status, error.transient, error.error_code) == (422, False, "ValidationError")
    assert error.validation_errors == ("skus[0]: Offering 'x' was not found", "second")


def test_api_error_prefers_details_then_error(
    client: ZentitleClient, router: respx.MockRouter
) -> None:
    route = router.get(f"{API}/api/v1/entitlements/ent_1")
    route.respond(404, json={"error": "Not Found", "errorCode": "NotFound", "details": "gone"})
    with pytest.raises(ZentitleAPIError, match=r"failed with 404: gone$") as info:
        client.get_entitlement("ent_1")
    assert (info.value.details, info.value.error_code) == ("gone", "NotFound")
    route.respond(409, json={"error": "Conflict"})
    with pytest.raises(ZentitleAPIError, match=r"failed with 409: Conflict$"):
        client.get_entitlement("ent_1")
    route.respond(403)
    with pytest.raises(ZentitleAPIError, match="ZENTITLE_TENANT_ID"):
        client.get_entitlement("ent_1")


@pytest.mark.parametrize(
    ("response", "transient"),
    [
        (httpx.Response(200, text="<html>proxy</html>"), True),
        (httpx.Response(200, json=["not", "an", "object"]), False),
        (httpx.Response(200, json={"name": "no id"}), False),
    ],
)
def test_malformed_success_body(
    client: ZentitleClient, router: respx.MockRouter, response: httpx.Response, transient: bool
) -> None:
    router.get(f"{API}/api/v1/customers/cust_1").mock(return_value=response)
    with pytest.raises(ZentitleAPIError, match="unexpected response body") as info:
        client.get_customer("cust_1")
    assert info.value.transient is transient


def test_list_without_items_is_unexpected(client: ZentitleClient, router: respx.MockRouter) -> None:
    router.get(f"{API}/api/v1/offerings").respond(200, json={"data": []})
    with pytest.raises(ZentitleAPIError, match="no 'items' list"):
        client.list_offerings()


def test_ids_are_escaped_in_paths(client: ZentitleClient, router: respx.MockRouter) -> None:
    route = router.get(url__regex=r".*/api/v1/customers/.*").respond(200, json=CUSTOMER)
    client.get_customer("../account/key")
    assert route.calls.last.request.url.raw_path == b"/api/v1/customers/..%2Faccount%2Fkey"


def test_update_entitlement_body(client: ZentitleClient, router: respx.MockRouter) -> None:
    route = router.patch(f"{API}/api/v1/entitlements/ent_1").respond(204)
    expiry = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    client.update_entitlement("ent_1", seat_count=5, expiry_date=expiry)
    assert json.loads(route.calls.last.request.read()) == {
        "seatCount": 5,
        "expiryDate": "2030-01-02T01:04:05.000000Z",
    }
    with pytest.raises(ValueError, match="naive"):
        client.update_entitlement("ent_1", expiry_date=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="seat_count and/or expiry_date"):
        client.update_entitlement("ent_1")


def test_find_offering_caches_and_relists_misses_sparingly(
    client: ZentitleClient, router: respx.MockRouter, clock: FakeClock
) -> None:
    items: list[dict[str, Any]] = [{"id": "off_1", "sku": "Pro"}]
    route = router.get(f"{API}/api/v1/offerings").mock(
        side_effect=lambda request: httpx.Response(
            200, json={"items": list(items), "elementsTotal": len(items)}
        )
    )
    assert client.find_offering("Pro") is not None
    assert client.find_offering("pro") is None  # case-sensitive; cache is fresh: no relist
    assert route.call_count == 1
    items.append({"id": "off_2", "sku": "new"})
    clock.now += 5
    offering = client.find_offering("new")
    assert offering is not None
    assert offering.id == "off_2"
    assert route.call_count == 2
    assert client.find_offering("Pro") is not None
    clock.now += 300
    client.find_offering("Pro")
    assert route.call_count == 3


def test_account_key_and_ping(client: ZentitleClient, router: respx.MockRouter) -> None:
    router.get(f"{API}/api/v1/account/key").respond(
        200, json={"kty": "RSA", "n": "abc", "e": "AQAB", "size": 2048}
    )
    ping = router.get(f"{API}/api/v1/offerings").respond(200, json={"items": []})
    assert client.get_account_key() == {"kty": "RSA", "n": "abc", "e": "AQAB"}
    client.ping()
    assert ping.calls.last.request.url.params["pageSize"] == "1"


# -- against the emulator ---------------------------------------------------------------


@pytest.fixture
def emulator() -> ZentitleEmulator:
    emulator = ZentitleEmulator()
    emulator.now = datetime(2025, 1, 31, 12, 0, tzinfo=timezone.utc)
    product = emulator.add_product("App")
    monthly = emulator.add_plan(product, duration=("month", 1), grace_period=("day", 7))
    yearly = emulator.add_plan(product, duration=("year", 1))
    emulator.add_offering(sku="pro-monthly", product_id=product, plan_id=monthly, seat_count=3)
    emulator.add_offering(sku="addon-yearly", product_id=product, plan_id=yearly)
    return emulator


@pytest.fixture
def emulated(emulator: ZentitleEmulator, sleeps: list[float]) -> Iterator[ZentitleClient]:
    with emulator.client(sleep=sleeps.append) as client:
        yield client


def test_full_flow_against_emulator(emulator: ZentitleEmulator, emulated: ZentitleClient) -> None:
    customer = emulated.create_customer(name="Acme", account_ref_id="cus_123")
    assert emulated.get_customer(customer.id) == customer
    contact = emulated.create_contact(customer.id, email="Buyer@Example.com", first_name="Ann")
    assert contact.customer_id is None  # CustomerContactModel names no customer
    (found,) = emulated.search_contacts("buyer@example.com")
    assert (found.id, found.customer_id, found.first_name) == (contact.id, customer.id, "Ann")

    group = emulated.create_entitlement_group(
        skus=["pro-monthly", "addon-yearly"], customer_id=customer.id, order_ref_id="in_1"
    )
    assert group.order_ref_id == "in_1"
    assert len(group.activation_codes) == 1
    assert group.entitlements == ()  # listed only with expand, as the real API does
    group = emulated.get_entitlement_group(group.id)
    short_monthly, short_yearly = group.entitlements
    # The group's entitlements are the contract's short model: status, never expiry/seats.
    assert (short_monthly.sku, short_monthly.status) == ("pro-monthly", "active")
    assert (short_monthly.expiry_date, short_monthly.seat_count) == (None, None)
    monthly = emulated.get_entitlement(short_monthly.id)
    yearly = emulated.get_entitlement(short_yearly.id)
    assert (monthly.sku, monthly.seat_count, monthly.status) == ("pro-monthly", 3, "active")
    assert monthly.activation_date == emulator.now
    assert monthly.expiry_date == datetime(2025, 2, 28, 12, 0, tzinfo=timezone.utc)
    assert monthly.license_duration == Interval("month", 1)
    assert monthly.grace_period == Interval("day", 7)
    assert yearly.expiry_date == datetime(2026, 1, 31, 12, 0, tzinfo=timezone.utc)
    assert emulated.get_entitlement_group(group.id) == group
    (found_group,) = emulated.find_entitlement_groups("in_1", customer_id=customer.id)
    assert (found_group.id, found_group.activation_codes) == (group.id, group.activation_codes)

    emulated.disable_entitlement(monthly.id)
    assert emulated.get_entitlement(monthly.id).status == "disabled"
    emulated.enable_entitlement(monthly.id)
    assert emulated.get_entitlement(monthly.id).status == "active"

    emulated.update_entitlement(monthly.id, seat_count=10)
    assert emulated.get_entitlement(monthly.id).seat_count == 10


def test_renew_rules_follow_the_emulator_clock(
    emulator: ZentitleEmulator, emulated: ZentitleClient
) -> None:
    group = emulated.create_entitlement_group(skus=["pro-monthly"])
    entitlement_id = emulated.get_entitlement_group(group.id).entitlements[0].id
    start = emulator.now

    emulated.renew_entitlement(entitlement_id)  # expiry in the future: old expiry + 1 month
    expiry = emulated.get_entitlement(entitlement_id).expiry_date
    assert expiry == datetime(2025, 3, 28, 12, 0, tzinfo=timezone.utc)

    emulator.now = datetime(2025, 3, 30, 12, 0, tzinfo=timezone.utc)  # expired, grace running
    assert emulated.get_entitlement(entitlement_id).status == "gracePeriod"
    emulated.renew_entitlement(entitlement_id)
    assert emulated.get_entitlement(entitlement_id).expiry_date == datetime(
        2025, 4, 28, 12, 0, tzinfo=timezone.utc
    )

    emulator.now = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)  # grace over: now + 1 month
    assert emulated.get_entitlement(entitlement_id).status == "expired"
    emulated.renew_entitlement(entitlement_id)
    renewed = emulated.get_entitlement(entitlement_id)
    assert renewed.expiry_date == datetime(2025, 7, 1, 12, 0, tzinfo=timezone.utc)
    assert renewed.status == "active"
    assert renewed.activation_date == start


def test_unknown_sku_against_emulator(emulator: ZentitleEmulator, emulated: ZentitleClient) -> None:
    with pytest.raises(ZentitleAPIError) as info:
        emulated.create_entitlement_group(skus=["pro-monthly", "PRO-MONTHLY"])
    error = info.value
    assert (error.status, error.error_code, error.transient) == (422, "ValidationError", False)
    assert "PRO-MONTHLY" in str(error)
    assert emulator.groups() == []


def test_lost_response_on_create_then_find_shows_the_group(
    emulator: ZentitleEmulator, emulated: ZentitleClient
) -> None:
    customer = emulated.create_customer(name="Acme")
    emulator.inject_fault("POST", r"^/api/v1/entitlements/groups$", "lost_response")
    with pytest.raises(ZentitleAPIError) as info:
        emulated.create_entitlement_group(
            skus=["pro-monthly"], customer_id=customer.id, order_ref_id="in_9"
        )
    assert info.value.transient
    assert emulator.count("POST", "/api/v1/entitlements/groups") == 1
    found = emulated.find_entitlement_groups("in_9", customer_id=customer.id)
    assert [g.id for g in found] == [g.id for g in emulator.groups("in_9")]
    assert len(found) == 1


def test_expired_token_is_replaced_after_401(
    emulator: ZentitleEmulator, emulated: ZentitleClient
) -> None:
    emulated.list_offerings()
    emulator.advance(timedelta(hours=1))  # the client's own clock did not move
    assert len(emulated.list_offerings()) == 2
    token_calls = emulator.count("POST", "/realms/")
    assert token_calls == 2


def test_emulator_faults_are_retried_for_reads(
    emulator: ZentitleEmulator, emulated: ZentitleClient, sleeps: list[float]
) -> None:
    emulator.inject_fault("GET", "/offerings", "429")
    emulator.inject_fault("GET", "/offerings", "timeout")
    emulator.inject_fault("GET", "/offerings", "503")
    assert emulated.find_offering("addon-yearly") is not None
    assert emulator.count("GET", "/api/v1/offerings") == 4
    assert sleeps[0] == 1.0


def test_client_over_loopback_with_serve(emulator: ZentitleEmulator) -> None:
    with emulator.serve() as base_url, emulator.client(base_url) as client:
        assert base_url.startswith("http://127.0.0.1:")
        client.ping()
        customer = client.create_customer(name="Loopback Ltd")
        group = client.create_entitlement_group(skus=["pro-monthly"], customer_id=customer.id)
        assert client.get_entitlement_group(group.id).entitlements[0].sku == "pro-monthly"
        assert client.get_account_key()["n"] == emulator.public_key_modulus


def test_public_names_of_the_zentitle_package() -> None:
    from zentitle_stripe import zentitle
    from zentitle_stripe.zentitle import api, client, models, router, webhooks

    assert api.__all__ == ["DEFAULT_API_VERSION", "ZentitleAPI"]
    assert client.__all__ == ["DEFAULT_API_VERSION", "ZentitleAPI", "ZentitleClient"]
    assert client.ZentitleAPI is api.ZentitleAPI
    assert models.__all__ == [
        "Contact",
        "Customer",
        "Entitlement",
        "EntitlementGroup",
        "Interval",
        "Offering",
        "Plan",
        "format_datetime",
        "parse_datetime",
    ]
    modules = (api, client, models, router, webhooks)
    assert zentitle.__all__ == sorted({name for m in modules for name in m.__all__})
    for module in modules:
        for name in module.__all__:
            assert getattr(zentitle, name) is getattr(module, name)
