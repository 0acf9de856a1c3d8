"""The Zentitle2 emulator behaves as the reference document describes the real API."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from zentitle_stripe.testing import ZentitleEmulator, allow_contract_violations
from zentitle_stripe.zentitle.webhooks import (
    EntitlementGroupCreated,
    EntitlementRenewed,
    EntitlementUpdated,
    ZentitleWebhookKey,
    parse_zentitle_event,
)

ID = r"[A-Za-z0-9_-]{22}"


@pytest.fixture
def emulator() -> ZentitleEmulator:
    emulator = ZentitleEmulator()
    emulator.now = datetime(2025, 1, 31, tzinfo=timezone.utc)
    product = emulator.add_product("App")
    plan = emulator.add_plan(product, duration=("month", 1))
    emulator.add_offering(sku="pro", product_id=product, plan_id=plan, seat_count=2)
    return emulator


def authenticate(http: httpx.Client, emulator: ZentitleEmulator) -> None:
    """Fetch a token and set the three headers every API call needs."""
    form = {
        "grant_type": "client_credentials",
        "client_id": "emulator-client",
        "client_secret": "emulator-secret",
    }
    token = http.post(emulator.token_url, data=form).json()["access_token"]
    http.headers.update(
        {
            "Authorization": f"Bearer {token}",
            "N-TenantId": "t_emulator",
            "N-Api-Version": "2025-10-10",
        }
    )


@pytest.fixture
def http(emulator: ZentitleEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.api_url, transport=emulator.transport()) as client:
        authenticate(client, emulator)
        yield client


def create_group(http: httpx.Client, **body: Any) -> dict[str, Any]:
    response = http.post("/api/v1/entitlements/groups", json={"skus": ["pro"], **body})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_token_endpoint_rejects_bad_credentials(emulator: ZentitleEmulator) -> None:
    with httpx.Client(transport=emulator.transport()) as client:
        response = client.post(
            "https://kc.test/realms/x/protocol/openid-connect/token",
            data={"grant_type": "client_credentials", "client_id": "emulator-client"},
        )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Authorization": "Bearer nope"}, 401),
        ({"N-TenantId": "t_other"}, 403),
        ({"N-Api-Version": "2024-01-01"}, 400),
    ],
)
def test_headers_are_enforced(http: httpx.Client, headers: dict[str, str], status: int) -> None:
    response = http.get("/api/v1/offerings", headers=headers)
    assert response.status_code == status
    if status != 401:
        assert response.json()["errorCode"]


def test_token_expires_with_the_clock(emulator: ZentitleEmulator, http: httpx.Client) -> None:
    assert http.get("/api/v1/offerings").status_code == 200
    emulator.advance(timedelta(seconds=301))
    assert http.get("/api/v1/offerings").status_code == 401


def test_ids_codes_and_status_codes(emulator: ZentitleEmulator, http: httpx.Client) -> None:
    customer = http.post("/api/v1/customers", json={"name": "Acme"})
    assert customer.status_code == 201
    customer_id = customer.json()["id"]
    assert re.fullmatch(f"cust_{ID}", customer_id)
    group = create_group(http, customerId=customer_id)
    assert re.fullmatch(f"egr_{ID}", group["id"])
    assert "entitlements" not in group  # not expanded on create
    assert re.fullmatch(r"[A-Z0-9]{4}(-[A-Z0-9]{4}){3}", group["activationCodes"][0])
    expanded = http.get(f"/api/v1/entitlements/groups/{group['id']}?expand=entitlements").json()
    entitlement_id = expanded["entitlements"][0]["id"]
    assert re.fullmatch(f"ent_{ID}", entitlement_id)
    for action in ("renew", "disable", "enable"):
        response = http.patch(f"/api/v1/entitlements/{entitlement_id}/{action}")
        assert (response.status_code, response.content) == (204, b"")
    assert http.get("/api/v1/entitlements/ent_missing").status_code == 404
    assert http.get("/api/v1/customers/cust_missing").json()["errorCode"] == "NotFound"


def test_order_ref_id_is_not_unique(emulator: ZentitleEmulator, http: httpx.Client) -> None:
    create_group(http, orderRefId="in_1")
    create_group(http, orderRefId="in_1")
    assert len(emulator.groups("in_1")) == 2


@pytest.mark.parametrize(
    ("body", "prop"),
    [
        ({"skus": []}, "skus"),
        ({"skus": ["Pro"]}, "skus[0]"),
        ({"skus": ["pro"], "orderRefId": "x" * 51}, "orderRefId"),
        ({"skus": ["pro"], "customerId": "cust_missing"}, "customerId"),
        ({"skus": ["pro"], "activationCode": "lower-case"}, "activationCode"),
    ],
)
def test_group_validation(http: httpx.Client, body: dict[str, Any], prop: str) -> None:
    with allow_contract_violations():  # invalid on purpose, as a buggy client would send
        response = http.post("/api/v1/entitlements/groups", json=body)
    assert response.status_code == 422
    assert response.json()["validationErrors"][0]["propertyName"] == prop


def test_paging_and_filters(emulator: ZentitleEmulator, http: httpx.Client) -> None:
    customer_id = emulator.add_customer("Acme")
    for _ in range(3):
        create_group(http, customerId=customer_id)
    create_group(http)
    page = http.get(
        "/api/v1/entitlements/groups",
        params={"customerId": customer_id, "pageNumber": 2, "pageSize": 2},
    ).json()
    assert (len(page["items"]), page["pageNumber"], page["elementsTotal"]) == (1, 2, 3)
    assert http.get("/api/v1/offerings?pageSize=0").status_code == 400


def test_contact_search_is_case_insensitive(http: httpx.Client) -> None:
    customer_id = http.post("/api/v1/customers", json={"name": "Acme"}).json()["id"]
    contacts = f"/api/v1/customers/{customer_id}/contacts"
    assert http.post(contacts, json={"email": "Ann@Example.com"}).status_code == 201
    assert http.post(contacts, json={"email": "ann@example.com"}).status_code == 409
    found = http.get("/api/v1/customers/contacts/search", params={"email": "ANN@example.COM"})
    assert found.json()["elementsTotal"] == 1


def test_requests_are_recorded_without_authorization(
    emulator: ZentitleEmulator, http: httpx.Client
) -> None:
    emulator.reset_requests()
    create_group(http, orderRefId="in_1")
    (recorded,) = emulator.requests
    assert (recorded.method, recorded.path) == ("POST", "/api/v1/entitlements/groups")
    assert recorded.json == {"skus": ["pro"], "orderRefId": "in_1"}
    assert "authorization" not in recorded.headers
    assert emulator.count("post", "/api/v1/entitlements") == 1
    assert emulator.count("GET") == 0


@pytest.mark.parametrize(
    ("kind", "error"),
    [("timeout", httpx.ReadTimeout), ("connect", httpx.ConnectError)],
)
def test_network_faults_do_no_work(
    emulator: ZentitleEmulator, http: httpx.Client, kind: str, error: type[Exception]
) -> None:
    emulator.inject_fault("POST", "groups$", kind)
    with pytest.raises(error):
        http.post("/api/v1/entitlements/groups", json={"skus": ["pro"]})
    assert emulator.groups() == []
    create_group(http)  # consumed after one use
    assert len(emulator.groups()) == 1


def test_lost_response_does_the_work(emulator: ZentitleEmulator, http: httpx.Client) -> None:
    emulator.inject_fault("*", "groups", "lost_response")
    with pytest.raises(httpx.ReadTimeout):
        http.post("/api/v1/entitlements/groups", json={"skus": ["pro"]})
    assert len(emulator.groups()) == 1


def test_http_faults_apply_in_order(emulator: ZentitleEmulator, http: httpx.Client) -> None:
    emulator.inject_fault("GET", "offerings", "429")
    emulator.inject_fault("GET", "offerings", "502", times=2)
    emulator.inject_fault("GET", "offerings", "bad_body")
    responses = [http.get("/api/v1/offerings") for _ in range(5)]
    assert [r.status_code for r in responses] == [429, 502, 502, 200, 200]
    assert responses[0].headers["Retry-After"] == "1"
    assert responses[3].text.startswith("<html>")
    assert responses[4].json()["elementsTotal"] == 1
    with pytest.raises(ValueError, match="unknown fault kind"):
        emulator.inject_fault("GET", ".", "teapot")


def test_fail_rate_is_seeded(emulator: ZentitleEmulator, http: httpx.Client) -> None:
    def statuses() -> list[int]:
        emulator.fail_rate(0.5, kinds=["503"], seed=7)
        return [http.get("/api/v1/offerings").status_code for _ in range(20)]

    first = statuses()
    assert first == statuses()
    assert {200, 503} == set(first)
    emulator.fail_rate(0)


def test_renew_from_now_and_month_end_clamp(emulator: ZentitleEmulator, http: httpx.Client) -> None:
    group_id = create_group(http)["id"]
    (entitlement,) = emulator.entitlements(group_id)
    assert entitlement.expiry_date == datetime(2025, 2, 28, tzinfo=timezone.utc)
    emulator.advance(timedelta(days=60))
    authenticate(http, emulator)  # the old token expired too
    assert http.patch(f"/api/v1/entitlements/{entitlement.id}/renew").status_code == 204
    (renewed,) = emulator.entitlements(group_id)
    assert renewed.expiry_date == datetime(2025, 5, 1, tzinfo=timezone.utc)


def test_perpetual_and_disabled_cannot_be_renewed(
    emulator: ZentitleEmulator, http: httpx.Client
) -> None:
    product = emulator.add_product("Tool")
    plan = emulator.add_plan(product, license_type="perpetual", duration=None)
    emulator.add_offering(sku="tool", product_id=product, plan_id=plan)
    group_id = create_group(http, skus=["tool", "pro"])["id"]
    perpetual, monthly = emulator.entitlements(group_id)
    assert perpetual.expiry_date is None
    assert http.patch(f"/api/v1/entitlements/{perpetual.id}/renew").status_code == 409
    http.patch(f"/api/v1/entitlements/{monthly.id}/disable")
    assert http.patch(f"/api/v1/entitlements/{monthly.id}/renew").status_code == 409


def test_update_validates(emulator: ZentitleEmulator, http: httpx.Client) -> None:
    (entitlement,) = emulator.entitlements(create_group(http)["id"])
    path = f"/api/v1/entitlements/{entitlement.id}"
    with allow_contract_violations():  # invalid on purpose
        assert http.patch(path, json={"seatCount": 0}).status_code == 422
        assert http.patch(path, json={"expiryDate": "soon"}).status_code == 422
    response = http.patch(path, json={"seatCount": 4, "expiryDate": "2030-01-01T00:00:00Z"})
    assert response.status_code == 204
    (updated,) = emulator.entitlements()
    assert (updated.seat_count, updated.expiry_date) == (
        4,
        datetime(2030, 1, 1, tzinfo=timezone.utc),
    )


def test_signed_webhooks_round_trip(emulator: ZentitleEmulator, http: httpx.Client) -> None:
    registered = http.post(
        "/api/v1/account/webhooks",
        json={
            "uri": "https://hooks.test/zentitle",
            "subscriptions": ["entitlement.group.created", "entitlement.renewed"],
        },
    )
    assert registered.status_code == 201
    assert registered.json()["id"].startswith("wh_")
    group = create_group(http, orderRefId="in_7")
    (entitlement,) = emulator.entitlements(group["id"])
    http.patch(f"/api/v1/entitlements/{entitlement.id}/renew")
    http.patch(f"/api/v1/entitlements/{entitlement.id}/disable")  # not subscribed
    assert [w.event_code for w in emulator.outbox] == [
        "entitlement.group.created",
        "entitlement.renewed",
    ]

    key = ZentitleWebhookKey.from_config(json.dumps(http.get("/api/v1/account/key").json()))
    received: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    transport = httpx.MockTransport(receive)
    with httpx.Client(transport=transport) as client:
        responses = emulator.deliver_webhooks(client)
    assert [r.status_code for r in responses] == [200, 200]
    assert emulator.outbox == []
    events = []
    for request in received:
        key.verify(request.content, request.headers["N-Signature"])
        events.append(parse_zentitle_event(request.content))
    created, renewed = events
    assert isinstance(created, EntitlementGroupCreated)
    assert (created.entitlement_group_id, created.order_ref_id) == (group["id"], "in_7")
    assert re.fullmatch(f"event_{ID}", created.event_id)
    assert isinstance(renewed, EntitlementRenewed)
    assert renewed.new_expiry_date == datetime(2025, 3, 28, tzinfo=timezone.utc)


def test_disable_emits_entitlement_updated(emulator: ZentitleEmulator, http: httpx.Client) -> None:
    emulator.add_webhook("https://hooks.test/z", ["entitlement.updated"])
    (entitlement,) = emulator.entitlements(create_group(http)["id"])
    http.patch(f"/api/v1/entitlements/{entitlement.id}/disable")
    (webhook,) = emulator.outbox
    event = parse_zentitle_event(webhook.body)
    assert isinstance(event, EntitlementUpdated)
    assert (event.entitlement_id, event.disabled) == (entitlement.id, True)
    assert emulator.sign(webhook.body) == webhook.headers["N-Signature"]


def test_indexed_lookups_answer_as_a_scan_would(
    emulator: ZentitleEmulator, http: httpx.Client
) -> None:
    """The emulator indexes contacts, groups, codes and SKUs (a storm seeds thousands):
    interleaved objects of several customers still come back filtered, oldest first."""
    a, b = (http.post("/api/v1/customers", json={"name": n}).json()["id"] for n in "AB")
    for customer_id, email in ((a, "Ann@x.com"), (b, "ann@X.com"), (a, "bo@x.com")):
        response = http.post(f"/api/v1/customers/{customer_id}/contacts", json={"email": email})
        assert response.status_code == 201
    assert (
        http.post(f"/api/v1/customers/{b}/contacts", json={"email": "ANN@x.com"}).status_code == 409
    )
    found = http.get("/api/v1/customers/contacts/search", params={"email": "ann@x.com"}).json()
    assert [c["customerId"] for c in found["items"]] == [a, b]
    listed = http.get(f"/api/v1/customers/{a}/contacts").json()["items"]
    assert [c["email"] for c in listed] == ["Ann@x.com", "bo@x.com"]
    made: dict[str | None, list[str]] = {a: [], b: [], None: []}
    for owner in (a, None, b, a, None, a):
        made[owner].append(create_group(http, **({"customerId": owner} if owner else {}))["id"])
    for owner in (a, b):
        page = http.get("/api/v1/entitlements/groups", params={"customerId": owner}).json()
        assert [g["id"] for g in page["items"]] == made[owner]
    everything = http.get("/api/v1/entitlements/groups", params={"pageSize": 200}).json()
    assert everything["elementsTotal"] == 6
    nobody = http.get("/api/v1/entitlements/groups", params={"customerId": "cust_none"})
    assert nobody.json()["elementsTotal"] == 0
    assert create_group(http, activationCode="CODE-1")["activationCodes"] == ["CODE-1"]
    again = http.post(
        "/api/v1/entitlements/groups",
        json={"skus": ["pro"], "customerId": b, "activationCode": "CODE-1"},
    )
    assert again.status_code == 409
    customers = http.get("/api/v1/customers", params={"pageSize": 1, "pageNumber": 2}).json()
    assert ([c["name"] for c in customers["items"]], customers["elementsTotal"]) == (["B"], 2)
    product = emulator.add_product("Other")
    plan = emulator.add_plan(product)
    with pytest.raises(ValueError, match="SKU 'pro' exists"):
        emulator.add_offering(sku="pro", product_id=product, plan_id=plan)


def test_serving_seconds_counts_the_emulators_own_time(
    emulator: ZentitleEmulator, http: httpx.Client
) -> None:
    # What a benchmark subtracts to get the library's time: a slow answer's delay is
    # the service's, and is counted, also when the answer fails.
    before = emulator.serving_seconds
    emulator.inject_fault("GET", "offerings", "slow", delay=0.05)
    assert http.get("/api/v1/offerings").status_code == 200
    emulator.inject_fault("GET", "offerings", "timeout")
    with pytest.raises(httpx.ReadTimeout):
        http.get("/api/v1/offerings")
    assert emulator.serving_seconds - before >= 0.05
