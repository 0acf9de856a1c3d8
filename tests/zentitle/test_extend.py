"""The group `extend` (reference §5.4, not in the pinned contract): the client, the
emulator's two answer readings, its faults, and the contract's explicit "extra" mark."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from zentitle_stripe.exceptions import ZentitleAPIError
from zentitle_stripe.testing import Contract, ContractViolation, ZentitleEmulator
from zentitle_stripe.testing._contract import take_contract_violations
from zentitle_stripe.zentitle import ZentitleClient

NOW = datetime(2025, 1, 31, tzinfo=timezone.utc)
EXTEND = "/api/v1/entitlements/groups/{}/extend"


@pytest.fixture
def emulator() -> ZentitleEmulator:
    emulator = ZentitleEmulator()
    emulator.now = NOW
    product = emulator.add_product("App")
    plan = emulator.add_plan(product, duration=("month", 1))
    emulator.add_offering(sku="pro", product_id=product, plan_id=plan, seat_count=2)
    addon = emulator.add_plan(product, duration=("year", 1))
    emulator.add_offering(sku="addon", product_id=product, plan_id=addon, seat_count=3)
    return emulator


@pytest.fixture
def client(emulator: ZentitleEmulator) -> ZentitleClient:
    return emulator.client(sleep=lambda _: None)


def group_id(client: ZentitleClient) -> str:
    return client.create_entitlement_group(skus=["pro"], order_ref_id="sub_1").id


def skus(emulator: ZentitleEmulator, group: str) -> list[str]:
    return sorted(e.sku or "" for e in emulator.entitlements(group))


def test_the_pinned_contract_has_no_extend_and_the_extra_is_marked() -> None:
    pinned = Contract.load(extras=False)
    with pytest.raises(ContractViolation, match="no such operation"):
        pinned.operation("POST", EXTEND.format("egr_1"))
    take_contract_violations()
    (extra,) = Contract.load().extra_operations
    assert (extra.operation_id, extra.extra) == ("EntitlementGroup_Extend", True)
    group = "EntitlementGroupModel"
    assert extra.successes == {204: None, 200: group, 201: group}
    assert not any(o.extra for o in pinned.operations)


def test_default_answer_is_204_without_a_body_and_adds_per_the_plan(
    emulator: ZentitleEmulator, client: ZentitleClient
) -> None:
    group = group_id(client)
    emulator.advance(timedelta(days=10))
    assert client.extend_entitlement_group(group, ["addon"]) is None
    assert emulator.requests[-1].json == {"skus": ["addon"]}
    assert skus(emulator, group) == ["addon", "pro"]
    (added,) = (e for e in emulator.entitlements(group) if e.sku == "addon")
    # As a create makes it: the offering's seats, its plan's term from now.
    assert added.seat_count == 3
    assert added.activation_date == NOW + timedelta(days=10)
    assert added.expiry_date == datetime(2026, 2, 10, tzinfo=timezone.utc)
    assert added.status == "active"


@pytest.mark.parametrize("status", [200, 201])
def test_the_other_reading_answers_the_group_without_seats_or_expiry(
    emulator: ZentitleEmulator, client: ZentitleClient, status: int
) -> None:
    group = group_id(client)
    emulator.extend_answer = status  # type: ignore[assignment]
    answer = client.extend_entitlement_group(group, ["addon", "addon"])
    assert answer is not None
    assert answer.id == group
    assert answer.activation_codes
    assert not answer.entitlements  # never expanded: read the group
    assert skus(emulator, group) == ["addon", "addon", "pro"]


def test_an_answer_outside_both_readings_is_a_contract_violation(
    emulator: ZentitleEmulator,
) -> None:
    contract = Contract.load()
    op = contract.operation("POST", EXTEND.format("egr_1"))
    with pytest.raises(ContractViolation, match="answers 204 or 200 or 201, not 202"):
        contract.check_response(op, 202, b"")
    with pytest.raises(ContractViolation, match="a 204 answer has no body"):
        contract.check_response(op, 204, b"{}")
    with pytest.raises(ContractViolation, match=r"body\.id must be a string"):
        contract.check_response(op, 200, b'{"id": 5}')
    with pytest.raises(ContractViolation, match="skus"):
        contract.check_request("POST", EXTEND.format("egr_1"), {}, b'{"sku": "pro"}')
    assert len(take_contract_violations()) == 4


def test_the_emulator_option_is_validated() -> None:
    with pytest.raises(ValueError, match="extend_answer"):
        ZentitleEmulator(extend_answer=202)  # type: ignore[arg-type]


def test_an_unknown_sku_or_group_is_refused_and_adds_nothing(
    emulator: ZentitleEmulator, client: ZentitleClient
) -> None:
    group = group_id(client)
    with pytest.raises(ZentitleAPIError) as unknown:
        client.extend_entitlement_group(group, ["nope"])
    assert (unknown.value.status, unknown.value.may_have_landed) == (422, False)
    with pytest.raises(ZentitleAPIError) as missing:
        client.extend_entitlement_group("egr_missing", ["addon"])
    assert missing.value.status == 404
    assert skus(emulator, group) == ["pro"]
    with pytest.raises(TypeError):
        client.extend_entitlement_group(group, "addon")
    with pytest.raises(ValueError):
        client.extend_entitlement_group(group, [])


@pytest.mark.parametrize("kind", ["lost_response", "503_after", "500_after"])
def test_an_answer_lost_after_the_work_may_have_landed_and_is_not_repeated(
    emulator: ZentitleEmulator, client: ZentitleClient, kind: str
) -> None:
    group = group_id(client)
    emulator.inject_fault("POST", "/extend$", kind)
    with pytest.raises(ZentitleAPIError) as raised:
        client.extend_entitlement_group(group, ["addon"])
    assert raised.value.may_have_landed
    assert raised.value.transient
    assert emulator.count("POST", EXTEND.format(group)) == 1  # never blindly repeated
    assert skus(emulator, group) == ["addon", "pro"]  # it did land


@pytest.mark.parametrize("kind", ["503", "504", "timeout", "bad_body"])
def test_a_failure_before_the_work_may_have_landed_but_did_not(
    emulator: ZentitleEmulator, client: ZentitleClient, kind: str
) -> None:
    group = group_id(client)
    emulator.inject_fault("POST", "/extend$", kind)
    with pytest.raises(ZentitleAPIError) as raised:
        client.extend_entitlement_group(group, ["addon"])
    assert raised.value.may_have_landed
    assert emulator.count("POST", EXTEND.format(group)) == 1
    assert skus(emulator, group) == ["pro"]


@pytest.mark.parametrize("kind", ["429", "connect"])
def test_a_request_turned_away_is_sent_again(
    emulator: ZentitleEmulator, client: ZentitleClient, kind: str
) -> None:
    group = group_id(client)
    emulator.inject_fault("POST", "/extend$", kind)
    assert client.extend_entitlement_group(group, ["addon"]) is None
    assert emulator.count("POST", EXTEND.format(group)) == 2
    assert skus(emulator, group) == ["addon", "pro"]


def test_late_work_lands_later_with_an_answer_held_to_the_contract(
    emulator: ZentitleEmulator, client: ZentitleClient
) -> None:
    group = group_id(client)
    emulator.inject_fault("POST", "/extend$", "late", delay=30)
    with pytest.raises(ZentitleAPIError) as raised:
        client.extend_entitlement_group(group, ["addon"])
    assert raised.value.may_have_landed
    assert skus(emulator, group) == ["pro"]
    emulator.advance(timedelta(seconds=31))
    client.get_entitlement_group(group)  # the next request lands it
    assert skus(emulator, group) == ["addon", "pro"]
    assert emulator.late_pending == 0


def test_extend_emits_created_and_group_updated_webhooks(
    emulator: ZentitleEmulator, client: ZentitleClient
) -> None:
    group = group_id(client)
    emulator.add_webhook("https://example.invalid/hook", ["entitlement.created"])
    emulator.add_webhook("https://example.invalid/group", ["entitlement.group.updated"])
    client.extend_entitlement_group(group, ["addon"])
    assert [w.event_code for w in emulator.outbox] == [
        "entitlement.created",
        "entitlement.group.updated",
    ]


def test_served_over_http_too(emulator: ZentitleEmulator) -> None:
    with emulator.serve() as url, emulator.client(url) as client:
        group = group_id(client)
        assert client.extend_entitlement_group(group, ["addon"]) is None
    assert skus(emulator, group) == ["addon", "pro"]


def test_the_protocol_documents_it() -> None:
    from zentitle_stripe.zentitle import ZentitleAPI

    doc = ZentitleAPI.extend_entitlement_group.__doc__ or ""
    assert "Not in the pinned 2025-10-10 contract" in " ".join(doc.split())


def test_the_extend_asks_storage_for_every_lease_before_it_is_sent(
    emulator: ZentitleEmulator, client: ZentitleClient
) -> None:
    """A write that cannot be repeated safely: the strict lease check runs first, so a
    worker whose lock was taken over (its local view still says 110 s left) sends nothing."""
    from zentitle_stripe.exceptions import LeaseLost
    from zentitle_stripe.fencing import Fence
    from zentitle_stripe.storage import MemoryStorage

    group = group_id(client)
    now = [1_000_000.0]
    storage = MemoryStorage()
    fence = Fence(owner="w1", lease_seconds=120.0, clock=lambda: now[0], started=now[0])
    assert storage.acquire_lock("subscription:sub_1", owner="w1", lease_seconds=120, now=now[0])
    fence.hold_lock(storage, "subscription:sub_1", expires=now[0] + 120)
    now[0] += 10
    # Another worker, its clock a lease ahead, takes the lock over.
    later = now[0] + 121
    assert storage.acquire_lock("subscription:sub_1", owner="w2", lease_seconds=120, now=later)
    with fence.active(), pytest.raises(LeaseLost, match="subscription:sub_1"):
        client.extend_entitlement_group(group, ["addon"])
    assert emulator.count("POST", EXTEND.format(group)) == 0
    assert skus(emulator, group) == ["pro"]
