"""The Zentitle2 emulator is held to Zentitle2's published contract, and the check bites.

Every other test runs under ``conftest._zentitle_contract_holds``, which fails a test
whose emulator saw or sent anything outside the contract; these tests prove the check
catches each kind of divergence the contract rules out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from zentitle_stripe.testing import (
    Contract,
    ContractViolation,
    EmulatedWorld,
    ZentitleEmulator,
    take_contract_violations,
)


@pytest.fixture
def emulator() -> ZentitleEmulator:
    emulator = ZentitleEmulator()
    product = emulator.add_product("App")
    plan = emulator.add_plan(product, duration=("month", 1), grace_period=("day", 3))
    emulator.add_offering(sku="pro", product_id=product, plan_id=plan)
    return emulator


@pytest.fixture
def http(emulator: ZentitleEmulator) -> Iterator[httpx.Client]:
    form = {"grant_type": "client_credentials", "client_id": "emulator-client"}
    form["client_secret"] = "emulator-secret"
    with httpx.Client(base_url=emulator.api_url, transport=emulator.transport()) as client:
        token = client.post(emulator.token_url, data=form).json()["access_token"]
        client.headers.update(
            {"Authorization": f"Bearer {token}", "N-TenantId": "t_emulator"}
            | {"N-Api-Version": "2025-10-10"}
        )
        yield client


def caught(action: Any) -> str:
    """Run ``action``; it must raise a violation that was also recorded (then cleared)."""
    with pytest.raises(ContractViolation) as raised:
        action()
    recorded = take_contract_violations()
    assert [str(v) for v in recorded] == [str(raised.value)]
    return str(raised.value)


def group_with_entitlements(http: httpx.Client) -> dict[str, Any]:
    group = http.post("/api/v1/entitlements/groups", json={"skus": ["pro"]}).json()
    body: dict[str, Any] = http.get(
        f"/api/v1/entitlements/groups/{group['id']}", params={"expand": "entitlements"}
    ).json()
    return body


def test_group_entitlements_are_the_eight_key_short_model(http: httpx.Client) -> None:
    (entitlement,) = group_with_entitlements(http)["entitlements"]
    assert set(entitlement) == {
        "id",
        "sku",
        "offeringId",
        "offeringName",
        "entitlementGroupId",
        "productId",
        "status",
        "exported",
    }


def test_other_shapes_follow_the_contract(http: httpx.Client) -> None:
    (offering,) = http.get("/api/v1/offerings", params={"expand": "plan"}).json()["items"]
    assert "productId" not in offering
    assert "gracePeriod" not in offering["plan"]
    customer = http.post("/api/v1/customers", json={"name": "Acme"}).json()
    contact = http.post(
        f"/api/v1/customers/{customer['id']}/contacts", json={"email": "a@example.com"}
    ).json()
    assert "customerId" not in contact
    (found,) = http.get(
        "/api/v1/customers/contacts/search", params={"email": "a@example.com"}
    ).json()["items"]
    assert found["customerId"] == customer["id"]
    (entitlement,) = group_with_entitlements(http)["entitlements"]
    for action in ("renew", "disable", "enable"):
        response = http.patch(f"/api/v1/entitlements/{entitlement['id']}/{action}")
        assert (response.status_code, response.content) == (204, b"")
    full = http.get(f"/api/v1/entitlements/{entitlement['id']}").json()
    assert {"expiryDate", "seatCount", "status", "gracePeriod"} <= set(full)


def test_a_response_key_outside_the_model_is_caught(
    emulator: ZentitleEmulator, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lie that once hid broken renewals: an expiry inside a group's entitlements."""
    short = emulator._short_entitlement_json
    monkeypatch.setattr(
        emulator,
        "_short_entitlement_json",
        lambda e: short(e) | {"expiryDate": "2030-01-01T00:00:00.000000Z"},
    )
    message = caught(lambda: group_with_entitlements(http))
    assert "expiryDate is not a property of EntitlementGroupEntitlementModel" in message


def test_a_missing_required_key_a_null_and_a_body_on_204_are_caught() -> None:
    contract = Contract.load()
    renew = contract.operation("PATCH", "/api/v1/entitlements/ent_1/renew")
    assert "no body" in caught(lambda: contract.check_response(renew, 204, b"{}"))
    webhooks = contract.operation("GET", "/api/v1/account/webhooks")
    page = {"items": [{"id": "wh_1", "uri": "https://x"}], "pageSize": 1, "pageNumber": 1}
    page["elementsTotal"] = 1
    message = caught(lambda: contract.check_response(webhooks, 200, json.dumps(page).encode()))
    assert "subscriptions is required by WebhookModel" in message
    customer = contract.operation("GET", "/api/v1/customers/cust_1")
    body = {"id": "cust_1", "name": "Acme", "status": "active", "accountRefId": None}
    message = caught(lambda: contract.check_response(customer, 200, json.dumps(body).encode()))
    assert "accountRefId is null" in message


def test_wrong_requests_are_caught(http: httpx.Client) -> None:
    message = caught(
        lambda: http.post("/api/v1/entitlements/groups", json={"skus": ["pro"], "seats": 3})
    )
    assert "body.seats is not a property of CreateEntitlementGroupApiRequest" in message
    message = caught(lambda: http.get("/api/v1/entitlements/groups", params={"orderRefId": "x"}))
    assert "query parameter 'orderRefId' is not declared" in message
    message = caught(lambda: http.post("/api/v1/customers", json={"name": 7}))
    assert "body.name must be a string" in message
    message = caught(lambda: http.delete("/api/v1/entitlements/ent_1"))
    assert "no such operation" in message
    message = caught(lambda: http.patch("/api/v1/entitlements/ent_1/renew", json={"days": 1}))
    assert "takes none" in message


def test_a_webhook_payload_outside_its_model_is_caught(emulator: ZentitleEmulator) -> None:
    message = caught(
        lambda: emulator._emit(
            "entitlement.renewed", "ent_1", {"entitlementId": "ent_1", "seats": 2}
        )
    )
    assert "seats is not a property of EntitlementRenewedWebhookModel" in message
    assert "renewedAt is" not in message  # nonnull: may be omitted


def test_a_violation_caught_by_the_code_under_test_still_fails_the_test(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The provisioner answers an unexpected error with a status; the record still tells,
    so the autouse fixture fails the test even though no exception reached it."""
    world = EmulatedWorld()
    world.offering("PRO-1Y")
    emulator = world.zentitle_emulator
    search = emulator._search_contact_json
    monkeypatch.setattr(emulator, "_search_contact_json", lambda c: search(c) | {"phone": "1"})
    emulator.add_customer("Old")
    customer_id = emulator.customers()[0].id
    world.zentitle.create_contact(customer_id, email="buyer@example.com")
    _, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    response = world.deliver(paid)  # the flow searches contacts by the buyer's e-mail
    assert response.status >= 500
    (violation,) = take_contract_violations()
    assert "phone is not a property of SearchCustomerContactModel" in str(violation)
    world.close()
