"""The `late` fault of both emulators: the client gets no answer, the work lands later
(at `complete_late()`, or once the emulator's clock has moved `delay` past the request),
and the late answer is held to the Zentitle2 contract like any other."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from zentitle_stripe.exceptions import StripeAPIError
from zentitle_stripe.stripe.gateway import StripeGateway
from zentitle_stripe.testing import Contract, StripeEmulator, ZentitleEmulator

GROUPS = "/api/v1/entitlements/groups"


@pytest.fixture
def emulator() -> ZentitleEmulator:
    emulator = ZentitleEmulator()
    emulator.now = datetime(2025, 1, 31, tzinfo=timezone.utc)
    product = emulator.add_product("App")
    plan = emulator.add_plan(product, duration=("month", 1))
    emulator.add_offering(sku="pro", product_id=product, plan_id=plan, seat_count=2)
    return emulator


@pytest.fixture
def http(emulator: ZentitleEmulator) -> Iterator[httpx.Client]:
    form = {
        "grant_type": "client_credentials",
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
    }
    with httpx.Client(base_url=emulator.api_url, transport=emulator.transport()) as client:
        token = client.post(emulator.token_url, data=form).json()["access_token"]
        client.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "N-TenantId": emulator.tenant_id,
                "N-Api-Version": "2025-10-10",
            }
        )
        yield client


def post_group(http: httpx.Client) -> httpx.Response:
    return http.post(GROUPS, json={"skus": ["pro"], "orderRefId": "sub_1"})


def test_late_times_out_and_lands_only_when_completed(
    emulator: ZentitleEmulator, http: httpx.Client
) -> None:
    emulator.inject_fault("POST", "groups$", "late")
    with pytest.raises(httpx.ReadTimeout):
        post_group(http)
    assert emulator.requests[-1].fault == "late"
    assert emulator.late_pending == 1
    # Not there yet for anyone looking.
    assert http.get(GROUPS).json()["items"] == []
    assert emulator.groups() == []

    (answer,) = emulator.complete_late()

    assert answer.status == 201
    assert answer.fault == "late"
    (group,) = emulator.groups(order_ref_id="sub_1")
    assert group.order_ref_id == "sub_1"
    assert emulator.late_pending == 0
    assert emulator.complete_late() == []  # landed once
    assert post_group(http).status_code == 201  # the fault was used up


def test_late_work_lands_by_itself_once_the_clock_passes_its_delay(
    emulator: ZentitleEmulator, http: httpx.Client
) -> None:
    emulator.inject_fault("POST", "groups$", "late", delay=30)
    with pytest.raises(httpx.ReadTimeout):
        post_group(http)
    emulator.advance(timedelta(seconds=29))
    assert http.get(GROUPS).json()["items"] == []  # not due yet
    emulator.advance(timedelta(seconds=1))
    (listed,) = http.get(GROUPS).json()["items"]  # lands before this request is answered
    assert listed["orderRefId"] == "sub_1"
    assert emulator.late_pending == 0


def test_clear_faults_keeps_late_work_and_fail_rate_can_pick_late(
    emulator: ZentitleEmulator, http: httpx.Client
) -> None:
    emulator.fail_rate(1.0, kinds=["late"], seed=3)
    with pytest.raises(httpx.ReadTimeout):
        post_group(http)
    emulator.clear_faults()
    assert emulator.late_pending == 1  # a request already sent still lands
    assert [reply.status for reply in emulator.complete_late()] == [201]
    assert len(emulator.groups()) == 1


def test_late_answer_is_held_to_the_contract(
    emulator: ZentitleEmulator, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[tuple[str, int]] = []
    original = Contract.check_response

    def spy(self: Contract, op: Any, status: int, content: bytes) -> None:
        checked.append((op.operation_id, status))
        original(self, op, status, content)

    monkeypatch.setattr(Contract, "check_response", spy)
    emulator.inject_fault("POST", "groups$", "late")
    with pytest.raises(httpx.ReadTimeout):
        post_group(http)
    assert checked == []  # no answer yet, so nothing to check
    emulator.complete_late()
    assert [status for _, status in checked] == [201]


def test_late_on_the_stripe_emulator_through_the_gateway() -> None:
    emulator = StripeEmulator()
    customer = emulator.create_customer()
    with StripeGateway(
        emulator.api_key, http_transport=emulator.transport(), max_network_retries=0
    ) as gateway:
        emulator.inject_fault("POST", "^/v1/customers/", "late")
        with pytest.raises(StripeAPIError) as info:
            gateway.update_customer_metadata(customer, {"zentitle_customer_id": "c_1"})
        assert info.value.transient is True
        assert emulator.customer(customer).get("metadata", {}) == {}
        (answer,) = emulator.complete_late()
    assert answer.status == 200
    assert emulator.customer(customer)["metadata"] == {"zentitle_customer_id": "c_1"}
