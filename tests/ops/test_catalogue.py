"""The catalogue rules, and that provisioning, ``doctor`` and ``reconcile`` apply them alike."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from zentitle_stripe import OutcomeKind, catalogue, flows, ops
from zentitle_stripe.catalogue import (
    is_live,
    missing_events,
    near_miss_sku,
    product_sku,
    resolve_sku,
)
from zentitle_stripe.ops import CheckStatus
from zentitle_stripe.testing import EmulatedWorld

# -- SKU resolution ---------------------------------------------------------------------


def test_the_price_metadata_names_the_sku() -> None:
    metadata = {"offering_sku": "PRO-1Y"}
    assert resolve_sku(metadata, None) == "PRO-1Y"
    assert resolve_sku(metadata, "pro-lookup", lookup_key_fallback=True) == "PRO-1Y"


def test_the_lookup_key_stands_in_only_with_the_fallback() -> None:
    assert resolve_sku({}, "PRO-1Y") is None
    assert resolve_sku(None, "PRO-1Y", lookup_key_fallback=True) == "PRO-1Y"
    assert resolve_sku({"offering_sku": ""}, "PRO-1Y", lookup_key_fallback=True) == "PRO-1Y"


@pytest.mark.parametrize("fallback", [False, True])
def test_nothing_to_license_is_none(fallback: bool) -> None:
    assert resolve_sku(None, None, lookup_key_fallback=fallback) is None
    assert resolve_sku({"offering_sku": ""}, "", lookup_key_fallback=fallback) is None
    assert resolve_sku({"other": "x"}, None, lookup_key_fallback=fallback) is None


def test_a_sku_on_the_product_is_reported_even_when_empty() -> None:
    assert product_sku({"offering_sku": "PRO-1Y", "x": "y"}) == "PRO-1Y"
    assert product_sku({"offering_sku": ""}) == ""
    assert product_sku({"x": "y"}) is None


# -- near misses --------------------------------------------------------------------------


@pytest.mark.parametrize("sku", ["pro-1y", "PRO-1Y ", " Pro-1y"])
def test_a_sku_differing_in_case_or_spaces_is_the_near_miss(sku: str) -> None:
    assert near_miss_sku(sku, ["BASIC", "PRO-1Y", "PRO-1M"]) == "PRO-1Y"


def test_case_beats_spelling_and_the_first_of_equals_wins() -> None:
    assert near_miss_sku("pro-1m", ["PRO-1Y", "Pro-1M", "PRO-1M"]) == "Pro-1M"


def test_a_close_spelling_is_the_near_miss_and_a_far_one_is_none() -> None:
    assert near_miss_sku("PRO-1", ["PRO-1Y", "ENTERPRISE"]) == "PRO-1Y"
    assert near_miss_sku("ZZZ", ["PRO-1Y", "ENTERPRISE"]) is None
    assert near_miss_sku("PRO-1Y", []) is None


# -- events ----------------------------------------------------------------------------


def test_the_required_events_are_what_provisioning_handles() -> None:
    assert set(catalogue.REQUIRED_EVENTS) == {"invoice.paid", "customer.subscription.deleted"}
    # customer.subscription.updated is handled but optional: every renewal reconciles
    # the items too, so an endpoint without it heals at the next invoice.
    provisioning = flows.Provisioning(zentitle=None, stripe=None, storage=None)  # type: ignore[arg-type]
    # Refunds, disputes and pauses are handled whatever the policy, so that `ignore`
    # says so.
    always = {
        "charge.refunded",
        "charge.dispute.created",
        "customer.subscription.paused",
        "customer.subscription.resumed",
    }
    assert provisioning.event_types - always == frozenset(
        (*catalogue.REQUIRED_EVENTS, "customer.subscription.updated")
    )
    assert provisioning.event_types - always <= set(provisioning.policy.events())
    assert ops.REQUIRED_EVENTS == catalogue.REQUIRED_EVENTS


def test_missing_events_keep_the_required_order_and_honour_the_wildcard() -> None:
    assert missing_events([]) == list(catalogue.REQUIRED_EVENTS)
    assert missing_events(["invoice.paid", "charge.refunded"]) == ["customer.subscription.deleted"]
    assert missing_events(["*"]) == []
    assert missing_events(["a"], ["b", "a", "c"]) == ["b", "c"]


# -- live entitlements --------------------------------------------------------------------


@pytest.mark.parametrize("status", ["active", "gracePeriod", "created"])
def test_live_statuses(status: str) -> None:
    assert is_live(status)


@pytest.mark.parametrize(
    "status", ["expired", "disabled", "customerDisabled", "exported", "unheard-of", None]
)
def test_statuses_that_license_nothing(status: str | None) -> None:
    assert not is_live(status)


def test_switched_off_entitlements_are_never_live() -> None:
    switched_off = catalogue.SWITCHED_OFF_ENTITLEMENT_STATUSES
    assert switched_off == {"disabled", "customerDisabled", "exported"}
    assert not switched_off & catalogue.LIVE_ENTITLEMENT_STATUSES
    assert "expired" not in switched_off  # a payment renews an expired entitlement


def test_flows_keeps_exporting_the_metadata_keys() -> None:
    assert flows.SKU_METADATA_KEY == catalogue.SKU_METADATA_KEY == "offering_sku"
    assert flows.CODES_METADATA_KEY == catalogue.CODES_METADATA_KEY == "activation_codes"
    assert flows.CUSTOMER_METADATA_KEY == catalogue.CUSTOMER_METADATA_KEY
    assert {"SKU_METADATA_KEY", "CODES_METADATA_KEY", "CUSTOMER_METADATA_KEY"} <= set(flows.__all__)


# -- provisioning, doctor and reconcile agree -----------------------------------------------


@pytest.fixture(params=[True, False], ids=["fallback", "no-fallback"])
def fallback(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def world_options(fallback: bool) -> dict[str, Any]:
    return {"offerings": {}, "lookup_key_fallback": fallback}


def test_a_lookup_key_price_is_licensed_by_all_three_or_by_none(
    world: EmulatedWorld, fallback: bool
) -> None:
    world.offering("PRO-1Y")
    price = world.price(None, lookup_key="PRO-1Y")
    subscription, paid = world.subscribe(world.customer(), [(price, 1)])

    summary = ops.check_catalogue(world.stripe, world.zentitle, lookup_key_fallback=fallback)[-1]
    before = ops.find_drift(
        world.stripe, world.zentitle, world.storage, lookup_key_fallback=fallback
    )
    response = world.deliver(paid)
    after = ops.find_drift(
        world.stripe, world.zentitle, world.storage, lookup_key_fallback=fallback
    )

    assert response.status == 200
    assert after == []
    if fallback:
        assert summary.status is CheckStatus.PASS
        assert "1 with offering_sku" in summary.detail
        assert [(d.kind, d.subscription_id) for d in before] == [("unlicensed", subscription)]
        assert "sells PRO-1Y" in before[0].detail
        assert response.outcome.kind is OutcomeKind.PROVISIONED
        assert world.active_entitlements(subscription)
    else:
        assert summary.status is CheckStatus.WARN
        assert "0 with offering_sku" in summary.detail
        assert before == []
        assert response.outcome.kind is OutcomeKind.IGNORED
        assert world.groups(subscription) == []


@pytest.mark.parametrize("fallback", [False], ids=[""])
def test_an_expired_licence_of_an_active_subscription_is_drift(world: EmulatedWorld) -> None:
    world.offering("PRO-1Y")
    subscription, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    world.deliver(paid)
    world.zentitle_emulator.now += timedelta(days=400)  # the renewal never arrived
    [entitlement] = world.entitlements(subscription)
    assert entitlement.status == "expired"

    [drift] = ops.find_drift(world.stripe, world.zentitle, world.storage)

    assert drift.kind == "unlicensed"
    assert "have no live entitlement" in drift.detail
