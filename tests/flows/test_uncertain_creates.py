"""A create that lands late is waited for, not repeated (issue 13, case 2).

The Zentitle2 client gives up at its timeout (the emulator's `late` fault: no answer, the
work lands only at `complete_late()`), and a redelivery arrives before Zentitle2 has
completed the create. Without a record of the attempt the redelivery looks, finds
nothing and creates a second group (or customer). With the create marker it answers 503
with `Retry-After` = the time left in the window and sends nothing; once the create has
landed the next redelivery finds it: one group, one customer. Every test runs the
provisioner (ledger, locks, markers) on one fake clock.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.support import detail, kind, make_world, subscribe_two
from tests.support.slow import FakeClock
from zentitle_stripe import OutcomeKind, WebhookResponse
from zentitle_stripe.config import Settings
from zentitle_stripe.exceptions import ConfigurationError
from zentitle_stripe.flows.markers import CLEARED, DEFAULT_CREATE_WINDOW
from zentitle_stripe.services import Services
from zentitle_stripe.testing import EmulatedWorld, ZentitleEmulator

pytestmark = pytest.mark.world(generations=True)

GROUPS = "/api/v1/entitlements/groups"
CUSTOMERS = "/api/v1/customers"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world_options(clock: FakeClock) -> dict[str, Any]:
    return {"clock": clock}


def posts(world: EmulatedWorld, path: str) -> int:
    return sum(r.method == "POST" and r.path == path for r in world.zentitle_emulator.requests)


def assert_waits(response: WebhookResponse, seconds_left: float, what: str) -> None:
    """503, `Retry-After` = the time left in the window, a reason saying why."""
    assert response.status == 503, detail(response)
    assert int(response.headers["Retry-After"]) == round(seconds_left)
    reason = detail(response)
    assert f"a create of {what}" in reason
    assert "may still land" in reason


def test_late_group_create_is_waited_for_then_found(world: EmulatedWorld, clock: FakeClock) -> None:
    subscription_id, paid = subscribe_two(world)
    world.zentitle_emulator.inject_fault("POST", GROUPS + "$", "late")
    first = world.deliver(paid)
    assert first.status == 503, detail(first)  # the client gave up; nothing to find yet
    assert world.groups(subscription_id) == []

    clock.advance(15)  # Stripe redelivers before Zentitle2 completes the create
    second = world.deliver(paid)
    assert_waits(second, DEFAULT_CREATE_WINDOW - 15, f"the entitlement group of {subscription_id}")
    assert posts(world, GROUPS) == 1  # before the fix: a second POST, a second group

    world.zentitle_emulator.complete_late()
    clock.advance(5)
    third = world.deliver(paid)
    assert third.status == 200, detail(third)
    assert kind(third) is OutcomeKind.PROVISIONED
    (group,) = world.groups(subscription_id)
    assert posts(world, GROUPS) == 1
    assert world.activation_codes(subscription_id) == ",".join(group.activation_codes)
    assert world.storage.get_customer_link(f"group-create:{subscription_id}") == CLEARED
    assert kind(world.deliver(paid)) is OutcomeKind.DUPLICATE


def test_late_customer_create_is_waited_for_then_found(
    world: EmulatedWorld, clock: FakeClock
) -> None:
    subscription_id, paid = subscribe_two(world, email="late@example.com")
    stripe_customer = paid["data"]["object"]["customer"]
    world.zentitle_emulator.inject_fault("POST", CUSTOMERS + "$", "late")
    assert world.deliver(paid).status == 503
    assert world.zentitle_emulator.customers() == []

    clock.advance(40)
    assert_waits(
        world.deliver(paid), 20, f"the Zentitle2 customer of Stripe customer {stripe_customer}"
    )
    assert posts(world, CUSTOMERS) == 1  # before the fix: a second customer

    world.zentitle_emulator.complete_late()
    third = world.deliver(paid)
    assert third.status == 200, detail(third)
    (customer,) = world.zentitle_emulator.customers()
    assert customer.account_ref_id == stripe_customer
    assert posts(world, CUSTOMERS) == 1
    (group,) = world.groups(subscription_id)
    assert group.customer_id == customer.id
    # The side effects owed to the buyer were done by the run that found the customer.
    contacts = world.zentitle.search_contacts("late@example.com")
    assert [c.customer_id for c in contacts] == [customer.id]
    metadata = world.stripe_emulator.customer(stripe_customer)["metadata"]
    assert metadata["zentitle_customer_id"] == customer.id
    assert world.storage.get_customer_link(f"customer-create:{stripe_customer}") == CLEARED


def test_after_the_window_with_nothing_found_the_create_is_tried_again(
    world: EmulatedWorld, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    subscription_id, paid = subscribe_two(world)
    world.zentitle_emulator.inject_fault("POST", GROUPS + "$", "timeout")  # never lands
    assert world.deliver(paid).status == 503

    clock.advance(DEFAULT_CREATE_WINDOW - 1)
    assert_waits(world.deliver(paid), 1, f"the entitlement group of {subscription_id}")
    assert posts(world, GROUPS) == 1

    clock.advance(1)
    with caplog.at_level(logging.WARNING, logger="zentitle_stripe.flows"):
        response = world.deliver(paid)
    assert response.status == 200, detail(response)
    assert posts(world, GROUPS) == 2
    assert len(world.groups(subscription_id)) == 1
    assert any("creating it again" in r.getMessage() for r in caplog.records)


def test_a_create_that_certainly_did_not_land_is_not_waited_for(world: EmulatedWorld) -> None:
    """A 429 on every try turned the create away before any work: no marker is left
    pending, so the redelivery creates at once."""
    subscription_id, paid = subscribe_two(world)
    world.zentitle_emulator.inject_fault("POST", GROUPS + "$", "429", times=4)  # 1 + 3 retries
    assert world.deliver(paid).status == 503
    assert world.storage.get_customer_link(f"group-create:{subscription_id}") == CLEARED

    response = world.deliver(paid)
    assert response.status == 200, detail(response)
    assert len(world.groups(subscription_id)) == 1


def test_a_cancellation_waits_for_a_group_that_may_still_land(
    world: EmulatedWorld, clock: FakeClock
) -> None:
    """The cancellation is kept, and the late group is disabled once it has landed."""
    subscription_id, paid = subscribe_two(world)
    world.zentitle_emulator.inject_fault("POST", GROUPS + "$", "late")
    assert world.deliver(paid).status == 503
    cancellation = world.cancel(subscription_id)
    clock.advance(10)
    waiting = world.deliver(cancellation)
    assert_waits(waiting, DEFAULT_CREATE_WINDOW - 10, f"the entitlement group of {subscription_id}")
    state = world.storage.get_subscription(subscription_id)
    assert state is not None
    assert state.canceled  # remembered before waiting

    world.zentitle_emulator.complete_late()
    revoked = world.deliver(cancellation)
    assert kind(revoked) is OutcomeKind.REVOKED, detail(revoked)
    assert world.active_entitlements(subscription_id) == []
    assert kind(world.deliver(paid)) is OutcomeKind.IGNORED  # a late payment re-licenses nothing
    assert len(world.groups(subscription_id)) == 1
    assert world.active_entitlements(subscription_id) == []


def test_a_legacy_pending_marker_counts_as_an_old_attempt(world: EmulatedWorld) -> None:
    """Earlier versions wrote `pending-create:{customer}` = "1": the customer that attempt
    made is looked for (and found) instead of created again."""
    subscription_id, paid = subscribe_two(world, email="old@example.com")
    stripe_customer = paid["data"]["object"]["customer"]
    made = world.zentitle_emulator.add_customer("Ada Buyer", account_ref_id=stripe_customer)
    world.storage.put_customer_link(f"pending-create:{stripe_customer}", "1")

    response = world.deliver(paid)

    assert response.status == 200, detail(response)
    assert [c.id for c in world.zentitle_emulator.customers()] == [made]
    assert posts(world, CUSTOMERS) == 0
    (group,) = world.groups(subscription_id)
    assert group.customer_id == made


ENV = {
    "STRIPE_API_KEY": "sk_test_window",
    "STRIPE_WEBHOOK_SECRET": "whsec_window",
    "ZENTITLE_API_URL": "https://acme.api.nalpeiron.io/",
    "ZENTITLE_TOKEN_URL": "https://acme.keycloak.nalpeiron.io/realms/acme/protocol/openid-connect/token",
    "ZENTITLE_TENANT_ID": "t_acme",
    "ZENTITLE_CLIENT_ID": "provisioner",
    "ZENTITLE_CLIENT_SECRET": "zentitle-client-secret-value",
}


def test_the_window_is_a_setting_that_reaches_the_flows() -> None:
    assert Settings.from_env(ENV).create_window == DEFAULT_CREATE_WINDOW
    settings = Settings.from_env(
        {**ENV, "ZENTITLE_STRIPE_CREATE_WINDOW": "15", "ZENTITLE_STRIPE_STORAGE": "memory://"}
    )
    with Services.from_settings(settings) as services:
        processor: Any = services.provisioner.processor
        assert processor.create_window == 15.0
    for bad in ("-1", "0", "nan", "inf"):
        with pytest.raises(ConfigurationError, match="ZENTITLE_STRIPE_CREATE_WINDOW"):
            Settings.from_env({**ENV, "ZENTITLE_STRIPE_CREATE_WINDOW": bad})
    with pytest.raises(ConfigurationError, match="create_window"):
        make_world(create_window=float("nan"))


def test_late_renew_is_waited_for_not_repeated(world: EmulatedWorld, clock: FakeClock) -> None:
    """A renew whose client gave up lands later: a redelivery in between must not renew
    again (found by the stress test's slow-remote mode: two periods for one invoice)."""
    subscription_id, paid = subscribe_two(world)
    assert world.deliver(paid).status == 200, detail(world.deliver(paid))
    (group,) = world.groups(subscription_id)
    emulator = world.zentitle_emulator
    before = {e.id: e.expiry_date for e in emulator.entitlements(group.id)}
    renewal = world.renew(subscription_id)
    emulator.inject_fault("PATCH", r"/renew$", "late")
    assert world.deliver(renewal).status == 503
    clock.advance(15)  # redelivered before Zentitle2 completes the renew
    second = world.deliver(renewal)
    assert second.status == 503, detail(second)
    assert "a renewal of entitlement" in detail(second)
    assert int(second.headers["Retry-After"]) == round(DEFAULT_CREATE_WINDOW - 15)
    emulator.complete_late()
    clock.advance(DEFAULT_CREATE_WINDOW)
    third = world.deliver(renewal)
    assert third.status == 200, detail(third)
    after = {e.id: e.expiry_date for e in emulator.entitlements(group.id)}
    for entitlement_id, expiry in before.items():
        assert expiry is not None
        assert after[entitlement_id] == expiry.replace(year=expiry.year + 1)
    assert sum(r.method == "PATCH" and r.path.endswith("/renew") for r in emulator.requests) == 2


def _renews(emulator: ZentitleEmulator) -> int:
    return sum(r.method == "PATCH" and r.path.endswith("/renew") for r in emulator.requests)


@pytest.mark.parametrize("fault", ["503", "502"])
def test_renew_answered_5xx_is_waited_for_then_applied_once(
    world: EmulatedWorld, clock: FakeClock, fault: str
) -> None:
    """A gateway's 5xx does not say the backend stopped: the renew may still land, so a
    redelivery inside the window waits; after it, a fresh read decides."""
    subscription_id, paid = subscribe_two(world)
    assert world.deliver(paid).status == 200
    (group,) = world.groups(subscription_id)
    emulator = world.zentitle_emulator
    before = {e.id: e.expiry_date for e in emulator.entitlements(group.id)}
    renewal = world.renew(subscription_id)
    emulator.inject_fault("PATCH", r"/renew$", fault)
    assert world.deliver(renewal).status == 503
    sent = _renews(emulator)
    waited = world.deliver(renewal)
    assert waited.status == 503, detail(waited)
    assert "a renewal of entitlement" in detail(waited)
    assert _renews(emulator) == sent  # nothing sent while the first may still land
    clock.advance(DEFAULT_CREATE_WINDOW + 1)
    applied = world.deliver(renewal)
    assert applied.outcome.kind is OutcomeKind.RENEWED, detail(applied)
    after = {e.id: e.expiry_date for e in emulator.entitlements(group.id)}
    for entitlement_id, expiry in before.items():
        assert expiry is not None
        assert after[entitlement_id] == expiry.replace(year=expiry.year + 1)


def test_renew_answered_502_that_lands_later_is_not_repeated(
    world: EmulatedWorld, clock: FakeClock
) -> None:
    """Found by the stress test's slow-remote mode: a server answered 500 for a renew it
    completed a moment later, the marker was dropped, and a redelivery renewed again."""
    subscription_id, paid = subscribe_two(world)
    assert world.deliver(paid).status == 200
    (group,) = world.groups(subscription_id)
    emulator = world.zentitle_emulator
    before = {e.id: e.expiry_date for e in emulator.entitlements(group.id)}
    renewal = world.renew(subscription_id)
    emulator.inject_fault("PATCH", r"/renew$", "502", times=1)
    assert world.deliver(renewal).status == 503
    (renewed_first,) = [
        r.path.split("/")[-2]
        for r in emulator.requests
        if r.method == "PATCH" and r.path.endswith("/renew") and r.fault == "502"
    ]
    waited = world.deliver(renewal)  # Stripe redelivers before the backend is done
    assert waited.status == 503, detail(waited)
    with emulator.client() as backend:  # the backend finishes it a moment later
        backend.renew_entitlement(renewed_first)
    clock.advance(DEFAULT_CREATE_WINDOW + 1)
    assert world.deliver(renewal).status == 200
    after = {e.id: e.expiry_date for e in emulator.entitlements(group.id)}
    for entitlement_id, expiry in before.items():
        assert expiry is not None
        assert after[entitlement_id] == expiry.replace(year=expiry.year + 1), entitlement_id
