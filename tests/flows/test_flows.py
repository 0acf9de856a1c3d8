"""Provisioning flows end to end: signed webhooks through ``handle_event`` into both
emulators, in both Stripe payload generations."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.support import detail, kind, subscribe_two
from tests.support.slow import FakeClock
from zentitle_stripe import OutcomeKind
from zentitle_stripe.flows.markers import DEFAULT_CREATE_WINDOW
from zentitle_stripe.storage import EventStatus, MemoryStorage, SQLiteStorage, SubscriptionState
from zentitle_stripe.testing import EmulatedWorld

pytestmark = pytest.mark.world(offerings={"PRO-1Y": {"seats": 2}, "ADDON-1Y": {}}, generations=True)


def plus_year(moment: datetime | None) -> datetime:
    """One calendar year later, as Zentitle2 adds a plan period of one year."""
    assert moment is not None
    return moment.replace(year=moment.year + 1)


# -- first payment ---------------------------------------------------------------------------


def test_two_products_in_one_purchase_make_one_group_and_codes_in_stripe(
    world: EmulatedWorld,
) -> None:
    subscription_id, paid = subscribe_two(world)
    response = world.deliver(paid)

    assert response.status == 200, detail(response)
    assert kind(response) is OutcomeKind.PROVISIONED
    (group,) = world.groups(subscription_id)
    assert group.order_ref_id == subscription_id
    entitlements = world.entitlements(subscription_id)
    assert sorted(e.sku or "" for e in entitlements) == ["ADDON-1Y", "PRO-1Y"]
    assert all(e.status == "active" for e in entitlements)
    assert world.activation_codes(subscription_id) == ",".join(group.activation_codes)
    assert group.id in detail(response)


def test_new_customer_is_created_linked_and_written_back(world: EmulatedWorld) -> None:
    subscription_id, paid = subscribe_two(world, email="new@example.com", name="New Buyer")
    world.deliver(paid)

    (customer,) = world.zentitle_emulator.customers()
    stripe_customer_id = world.stripe_emulator.subscription(subscription_id)["customer"]
    assert customer.name == "New Buyer"
    assert customer.account_ref_id == stripe_customer_id
    (contact,) = world.zentitle.search_contacts("new@example.com")
    assert contact.customer_id == customer.id
    stripe_customer = world.stripe_emulator.customer(stripe_customer_id)
    assert stripe_customer["metadata"]["zentitle_customer_id"] == customer.id
    assert world.storage.get_customer_link(stripe_customer_id) == customer.id
    (group,) = world.groups(subscription_id)
    assert group.customer_id == customer.id


def test_existing_subscription_metadata_is_kept(world: EmulatedWorld) -> None:
    subscription_id, paid = subscribe_two(world)
    world.stripe.update_subscription_metadata(subscription_id, {"plan_note": "vip"})
    world.deliver(paid)
    metadata = world.stripe_emulator.subscription(subscription_id)["metadata"]
    assert metadata["plan_note"] == "vip"
    assert metadata["activation_codes"]


def test_customer_found_by_stripe_metadata_creates_nothing(world: EmulatedWorld) -> None:
    existing = world.zentitle_emulator.add_customer("Known Ltd")
    buyer = world.customer(metadata={"zentitle_customer_id": existing})
    subscription_id, paid = world.subscribe(buyer, [(world.price("PRO-1Y"), 1)])
    world.deliver(paid)
    assert [c.id for c in world.zentitle_emulator.customers()] == [existing]
    assert world.groups(subscription_id)[0].customer_id == existing
    assert world.zentitle_emulator.count("GET", "/api/v1/customers/contacts/search") == 0


def test_customer_found_by_contact_email_is_reused_and_linked(world: EmulatedWorld) -> None:
    existing = world.zentitle.create_customer(name="Contact Co")
    world.zentitle.create_contact(existing.id, email="Buyer@Example.com")
    buyer = world.customer(email="buyer@example.com")
    subscription_id, paid = world.subscribe(buyer, [(world.price("PRO-1Y"), 1)])
    world.deliver(paid)
    assert [c.id for c in world.zentitle_emulator.customers()] == [existing.id]
    assert world.groups(subscription_id)[0].customer_id == existing.id
    metadata = world.stripe_emulator.customer(buyer)["metadata"]
    assert metadata["zentitle_customer_id"] == existing.id


def test_known_customer_is_reused_for_a_second_subscription(world: EmulatedWorld) -> None:
    buyer = world.customer()
    first, paid_first = world.subscribe(buyer, [(world.price("PRO-1Y"), 1)])
    second, paid_second = world.subscribe(buyer, [(world.price("ADDON-1Y"), 1)])
    world.deliver(paid_first)
    world.deliver(paid_second)
    assert len(world.zentitle_emulator.customers()) == 1
    assert world.groups(first)[0].customer_id == world.groups(second)[0].customer_id
    assert world.groups(first)[0].id != world.groups(second)[0].id


def test_quantity_multiplies_the_offering_seats(world: EmulatedWorld) -> None:
    buyer = world.customer()
    subscription_id, paid = world.subscribe(
        buyer, [(world.price("PRO-1Y"), 3), (world.price("ADDON-1Y"), 1)]
    )
    world.deliver(paid)
    seats = {e.sku: e.seat_count for e in world.entitlements(subscription_id)}
    assert seats == {"PRO-1Y": 6, "ADDON-1Y": 1}


def test_seat_policy_offering_keeps_the_offering_seats(api_version: str) -> None:
    world = EmulatedWorld(api_version=api_version, seat_policy="offering")
    world.offering("PRO-1Y", seats=2)
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 3)])
    world.deliver(paid)
    assert [e.seat_count for e in world.entitlements(subscription_id)] == [2]


def test_lines_without_a_sku_are_left_out(world: EmulatedWorld) -> None:
    buyer = world.customer()
    subscription_id, paid = world.subscribe(
        buyer, [(world.price("PRO-1Y"), 1), (world.price(None), 1)]
    )
    assert world.deliver(paid).status == 200
    assert [e.sku for e in world.entitlements(subscription_id)] == ["PRO-1Y"]


def test_no_licensed_line_is_ignored_with_a_reason(world: EmulatedWorld) -> None:
    subscription_id, paid = world.subscribe(world.customer(), [(world.price(None), 1)])
    response = world.deliver(paid)
    assert response.status == 200
    assert kind(response) is OutcomeKind.IGNORED
    assert "metadata 'offering_sku'" in detail(response)
    assert world.groups(subscription_id) == []


def test_lookup_key_fallback_is_off_by_default_and_works_when_on(api_version: str) -> None:
    for fallback, expected in ((False, OutcomeKind.IGNORED), (True, OutcomeKind.PROVISIONED)):
        world = EmulatedWorld(api_version=api_version, lookup_key_fallback=fallback)
        world.offering("PRO-1Y")
        price = world.price(None, lookup_key="PRO-1Y")
        _, paid = world.subscribe(world.customer(), [(price, 1)])
        assert kind(world.deliver(paid)) is expected


def test_many_lines_beyond_the_embedded_page_are_all_licensed(world: EmulatedWorld) -> None:
    world.stripe_emulator.embedded_line_limit = 2
    skus = [f"SKU-{i}" for i in range(5)]
    for sku in skus:
        world.offering(sku)
    items = [(world.price(sku), 1) for sku in skus]
    subscription_id, paid = world.subscribe(world.customer(), items)
    assert paid["data"]["object"]["lines"]["has_more"] is True
    assert world.deliver(paid).status == 200
    assert sorted(e.sku or "" for e in world.entitlements(subscription_id)) == skus


def test_one_time_payment_is_ignored(world: EmulatedWorld) -> None:
    buyer = world.customer()
    paid = world.stripe_emulator.one_time_payment(buyer, world.price("PRO-1Y", recurring=False))
    response = world.deliver(paid)
    assert response.status == 200
    assert kind(response) is OutcomeKind.IGNORED
    assert "one-time payment" in detail(response)
    assert world.zentitle_emulator.groups() == []


# -- set-up mistakes: 422, recorded, replayable after the fix ---------------------------


def test_unknown_sku_is_422_with_a_near_miss_and_replayable_after_the_fix(
    world: EmulatedWorld,
) -> None:
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("pro-1y"), 1)])
    response = world.deliver(paid)
    assert response.status == 422
    assert "no offering with that SKU (did you mean 'PRO-1Y'?" in detail(response)
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert record.status is EventStatus.FAILED

    world.offering("pro-1y")
    replayed = world.provisioner.replay(paid["id"])
    assert replayed.status == 200, detail(replayed)
    assert [e.sku for e in world.entitlements(subscription_id)] == ["pro-1y"]


def test_sku_on_the_product_instead_of_the_price_is_named(world: EmulatedWorld) -> None:
    price = world.price("PRO-1Y", on_product=True)
    subscription_id, paid = world.subscribe(world.customer(), [(price, 1)])
    response = world.deliver(paid)
    assert response.status == 422
    product = world.stripe_emulator._prices[price]["product"]
    assert f"set on Product {product}" in detail(response)
    assert f"must be on its Price {price}" in detail(response)

    # The fix: move the metadata to the Price (as one would in the Dashboard), then replay.
    world.stripe_emulator._prices[price]["metadata"] = {"offering_sku": "PRO-1Y"}
    assert world.provisioner.replay(paid["id"]).status == 200
    assert len(world.groups(subscription_id)) == 1


# -- renewals -------------------------------------------------------------------------


def test_renewal_extends_every_entitlement_by_one_period_exactly_once(
    world: EmulatedWorld,
) -> None:
    subscription_id, paid = subscribe_two(world)
    world.deliver(paid)
    before = {e.id: e.expiry_date for e in world.entitlements(subscription_id)}

    renewal = world.renew(subscription_id)
    response = world.deliver(renewal)
    assert kind(response) is OutcomeKind.RENEWED, detail(response)
    after = {e.id: e.expiry_date for e in world.entitlements(subscription_id)}
    for entitlement_id, expiry in before.items():
        assert after[entitlement_id] == plus_year(expiry)

    # Redelivered, replayed, or the same invoice in another event: never extended twice.
    assert kind(world.deliver(renewal)) is OutcomeKind.DUPLICATE
    assert world.provisioner.replay(renewal["id"]).status == 200
    twin = json.loads(json.dumps(renewal)) | {"id": "evt_same_invoice_other_event"}
    assert kind(world.deliver(twin)) is OutcomeKind.DUPLICATE
    assert {e.id: e.expiry_date for e in world.entitlements(subscription_id)} == after


def test_renewal_state_lost_is_still_not_applied_twice(world: EmulatedWorld) -> None:
    """Even if storage forgot the invoice, the expiry check stops a second extension."""
    subscription_id, paid = subscribe_two(world)
    world.deliver(paid)
    renewal = world.renew(subscription_id)
    world.deliver(renewal)
    expiries = [e.expiry_date for e in world.entitlements(subscription_id)]
    state = world.storage.get_subscription(subscription_id)
    assert state is not None
    world.storage.put_subscription(attrs.evolve(state, renewed_invoices=()))
    response = world.provisioner.replay(renewal["id"])
    assert kind(response) is OutcomeKind.DUPLICATE
    assert [e.expiry_date for e in world.entitlements(subscription_id)] == expiries


def test_renewal_of_an_unknown_subscription_provisions_it_once(world: EmulatedWorld) -> None:
    subscription_id, _first_paid_never_delivered = subscribe_two(world)
    response = world.deliver(world.renew(subscription_id))
    assert kind(response) is OutcomeKind.PROVISIONED
    assert len(world.groups(subscription_id)) == 1
    assert world.activation_codes(subscription_id)
    # The late first invoice finds the licence in place.
    assert kind(world.deliver(_first_paid_never_delivered)) is OutcomeKind.DUPLICATE
    assert len(world.groups(subscription_id)) == 1


def test_renewal_with_storage_wiped_finds_the_group_by_order_ref(api_version: str) -> None:
    world = EmulatedWorld(api_version=api_version)
    world.offering("PRO-1Y")
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    world.deliver(paid)
    expiry = world.entitlements(subscription_id)[0].expiry_date
    assert expiry is not None
    world.storage.__init__()  # type: ignore[misc]  # a fresh, empty database
    response = world.deliver(world.renew(subscription_id))
    assert response.status == 200, detail(response)
    assert len(world.groups(subscription_id)) == 1
    assert world.entitlements(subscription_id)[0].expiry_date == plus_year(expiry)


def test_subscription_update_invoice_extends_nothing(world: EmulatedWorld) -> None:
    """A proration invoice only reconciles items (here unchanged); it never renews."""
    subscription_id, paid = subscribe_two(world)
    world.deliver(paid)
    before = [e.expiry_date for e in world.entitlements(subscription_id)]
    update = json.loads(json.dumps(world.renew(subscription_id)))
    update["id"] = "evt_update"
    update["data"]["object"]["id"] = "in_update"
    update["data"]["object"]["billing_reason"] = "subscription_update"
    response = world.deliver(update)
    assert kind(response) is OutcomeKind.DUPLICATE
    assert "already matches" in detail(response)
    assert [e.expiry_date for e in world.entitlements(subscription_id)] == before


# -- cancellation ---------------------------------------------------------------------


def test_cancellation_disables_every_entitlement_idempotently(world: EmulatedWorld) -> None:
    subscription_id, paid = subscribe_two(world)
    world.deliver(paid)
    cancelled = world.cancel(subscription_id)
    response = world.deliver(cancelled)
    assert kind(response) is OutcomeKind.REVOKED
    assert "disabled 2 entitlement(s)" in detail(response)
    assert world.active_entitlements(subscription_id) == []
    assert kind(world.deliver(cancelled)) is OutcomeKind.DUPLICATE
    replayed = world.provisioner.replay(cancelled["id"])
    assert kind(replayed) is OutcomeKind.REVOKED
    assert "disabled 0 entitlement(s)" in detail(replayed)


def test_cancellation_before_the_payment_leaves_no_licence(world: EmulatedWorld) -> None:
    subscription_id, paid = subscribe_two(world)
    response = world.deliver(world.cancel(subscription_id))
    assert kind(response) is OutcomeKind.REVOKED
    assert "had no licence yet" in detail(response)
    late = world.deliver(paid)
    assert kind(late) is OutcomeKind.IGNORED
    assert "is cancelled" in detail(late)
    assert world.groups(subscription_id) == []


def test_renewal_after_cancellation_does_not_revive_the_licence(world: EmulatedWorld) -> None:
    subscription_id, paid = subscribe_two(world)
    world.deliver(paid)
    renewal = world.renew(subscription_id)
    world.deliver(world.cancel(subscription_id))
    assert kind(world.deliver(renewal)) is OutcomeKind.IGNORED
    assert world.active_entitlements(subscription_id) == []


# -- exactly once when things fail half way ----------------------------------------------


class CrashingStorage(MemoryStorage):
    """Fails the n-th ``put_subscription`` call, like a process dying right there."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_on: int | None = None
        self.puts = 0

    def put_subscription(self, state: SubscriptionState) -> None:
        self.puts += 1
        if self.puts == self.crash_on:
            raise RuntimeError("simulated crash")
        super().put_subscription(state)


@pytest.mark.parametrize(
    ("crash_on", "what"),
    [(1, "after the group was created"), (2, "after the codes were written")],
)
def test_crash_half_way_then_retry_creates_no_second_group(
    api_version: str, crash_on: int, what: str
) -> None:
    storage = CrashingStorage()
    world = EmulatedWorld(api_version=api_version, storage=storage)
    world.offering("PRO-1Y", seats=2)
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 2)])
    storage.crash_on = crash_on
    assert world.deliver(paid).status == 500, what
    assert len(world.groups(subscription_id)) == 1

    response = world.deliver(paid)
    assert response.status == 200, detail(response)
    (group,) = world.groups(subscription_id)
    assert world.activation_codes(subscription_id) == ",".join(group.activation_codes)
    assert [e.seat_count for e in world.entitlements(subscription_id)] == [4]
    assert world.zentitle_emulator.count("POST", "/api/v1/entitlements/groups") == 1
    # The retry read the seat count (a group read has none) and did not PATCH again.
    assert world.zentitle_emulator.count("PATCH", "/api/v1/entitlements/") == 1


@pytest.mark.parametrize("fault", ["lost_response", "502_after", "503_after", "504_after"])
def test_group_create_that_landed_without_an_answer_is_found_not_repeated(
    world: EmulatedWorld, fault: str
) -> None:
    subscription_id, paid = subscribe_two(world)
    world.zentitle_emulator.inject_fault("POST", r"/entitlements/groups$", fault)
    response = world.deliver(paid)
    assert response.status == 200, detail(response)
    (group,) = world.groups(subscription_id)  # created once, the answer lost, then found
    assert world.activation_codes(subscription_id) == ",".join(group.activation_codes)
    assert world.zentitle_emulator.count("POST", "/api/v1/entitlements/groups") == 1

    assert world.deliver(paid).status == 200
    assert len(world.groups(subscription_id)) == 1


def flows_on_a_fake_clock(world: EmulatedWorld) -> FakeClock:
    """Put the flows (locks, create markers) on a fake clock; returns it."""
    clock = FakeClock()
    processor: Any = world.provisioner.processor
    processor.clock = clock
    return clock


@pytest.mark.parametrize("fault", ["timeout", "502", "503", "504"])
def test_group_create_that_may_have_failed_is_looked_for_then_left_to_a_retry(
    world: EmulatedWorld, fault: str
) -> None:
    clock = flows_on_a_fake_clock(world)
    subscription_id, paid = subscribe_two(world)
    world.zentitle_emulator.inject_fault("POST", r"/entitlements/groups$", fault)
    response = world.deliver(paid)
    assert response.status == 503, detail(response)
    assert "Retry-After" in response.headers
    assert world.groups(subscription_id) == []  # it never landed, and was not repeated
    assert world.zentitle_emulator.count("POST", "/api/v1/entitlements/groups") == 1
    # Inside the window it may still land: waited for, not repeated.
    assert world.deliver(paid).status == 503
    assert world.zentitle_emulator.count("POST", "/api/v1/entitlements/groups") == 1

    clock.advance(DEFAULT_CREATE_WINDOW)
    assert world.deliver(paid).status == 200
    assert len(world.groups(subscription_id)) == 1


@pytest.mark.parametrize("fault", ["lost_response", "503_after"])
def test_customer_create_that_landed_without_an_answer_leaves_one_customer(
    world: EmulatedWorld, fault: str
) -> None:
    subscription_id, paid = subscribe_two(world, email="late@example.com")
    world.zentitle_emulator.inject_fault("POST", r"/api/v1/customers$", fault)
    first = world.deliver(paid)
    if first.status != 200:
        assert first.status == 503, detail(first)
        assert world.deliver(paid).status == 200
    (customer,) = world.zentitle_emulator.customers()
    requests = world.zentitle_emulator.requests
    assert [r.method for r in requests if r.path == "/api/v1/customers"] == ["POST", "GET"]
    (group,) = world.groups(subscription_id)
    assert group.customer_id == customer.id


@pytest.mark.parametrize("fault", ["lost_response", "503_after"])
def test_contact_create_that_landed_without_an_answer_is_found(
    world: EmulatedWorld, fault: str
) -> None:
    subscription_id, paid = subscribe_two(world, email="contact@example.com")
    world.zentitle_emulator.inject_fault("POST", r"/contacts$", fault)
    assert world.deliver(paid).status == 200
    (customer,) = world.zentitle_emulator.customers()
    contacts = world.zentitle.search_contacts("contact@example.com")
    assert [c.customer_id for c in contacts] == [customer.id]
    assert len(world.groups(subscription_id)) == 1


@pytest.mark.parametrize("fault", ["timeout", "connect", "429", "500", "502", "503", "504"])
def test_zentitle_failures_answer_503_and_leave_state_a_retry_finishes(
    world: EmulatedWorld, fault: str
) -> None:
    subscription_id, paid = subscribe_two(world)
    world.zentitle_emulator.inject_fault("*", r"/api/v1/", fault, times=10)
    response = world.deliver(paid)
    assert response.status == 503, detail(response)
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert record.status is EventStatus.FAILED

    world.zentitle_emulator.clear_faults()
    assert world.deliver(paid).status == 200
    assert len(world.groups(subscription_id)) == 1


def test_garbled_zentitle_body_is_recorded_and_replayable(world: EmulatedWorld) -> None:
    subscription_id, paid = subscribe_two(world)
    clock = flows_on_a_fake_clock(world)
    world.zentitle_emulator.inject_fault("POST", r"/entitlements/groups$", "bad_body")
    response = world.deliver(paid)
    assert response.status == 503  # not JSON: a glitch worth a retry
    assert b"Traceback" not in response.body
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert record.status is EventStatus.FAILED
    clock.advance(DEFAULT_CREATE_WINDOW)  # the emulator's bad body did no work
    assert world.provisioner.replay(paid["id"]).status == 200
    assert len(world.groups(subscription_id)) == 1


@pytest.mark.parametrize("fault", ["429", "500", "503", "timeout"])
def test_stripe_failures_on_the_code_write_back_are_503_then_completed(
    world: EmulatedWorld, fault: Any
) -> None:
    subscription_id, paid = subscribe_two(world)
    world.stripe_emulator.inject_fault("POST", r"/v1/subscriptions/", fault)
    response = world.deliver(paid)
    assert response.status == 503, detail(response)
    assert world.deliver(paid).status == 200
    assert len(world.groups(subscription_id)) == 1
    assert world.activation_codes(subscription_id)


# -- Zentitle2 webhooks ------------------------------------------------------------------


def test_group_created_webhook_reaches_the_handler_with_email_details(
    world: EmulatedWorld,
) -> None:
    sent: list[str] = []

    @world.provisioner.on_zentitle("entitlement.group.created")
    def send_activation_email(event: Any) -> None:
        details = world.provisioner.activation_details(event)
        sent.append(f"{details.email}:{','.join(details.activation_codes)}")

    world.zentitle_emulator.add_webhook("http://app.test/zentitle", ["entitlement.group.created"])
    subscription_id, paid = subscribe_two(world)
    world.deliver(paid)
    (webhook,) = world.zentitle_emulator.outbox
    response = world.provisioner.handle_zentitle_event(webhook.body, webhook.headers["N-Signature"])
    assert response.status == 200
    assert kind(response) is OutcomeKind.HANDLED
    assert sent == [f"buyer@example.com:{world.activation_codes(subscription_id)}"]
    again = world.provisioner.handle_zentitle_event(webhook.body, webhook.headers["N-Signature"])
    assert kind(again) is OutcomeKind.DUPLICATE
    assert len(sent) == 1


class PendingEntitlements:
    """A Zentitle2 client whose groups list no entitlements for the first ``n`` reads,
    as an eventually consistent API might right after creation."""

    def __init__(self, inner: Any, n: int) -> None:
        self.inner, self.remaining = inner, n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_entitlement_group(self, group_id: str) -> Any:
        group = self.inner.get_entitlement_group(group_id)
        if self.remaining > 0:
            self.remaining -= 1
            return attrs.evolve(group, entitlements=())
        return group


def test_entitlements_not_listed_yet_is_503_and_the_retry_renews(world: EmulatedWorld) -> None:
    subscription_id, paid = subscribe_two(world)
    world.deliver(paid)
    expiries = [e.expiry_date for e in world.entitlements(subscription_id)]
    processor: Any = world.provisioner.processor
    processor.zentitle = PendingEntitlements(processor.zentitle, n=1)
    renewal = world.renew(subscription_id)
    response = world.deliver(renewal)
    assert response.status == 503
    assert "lists no entitlements yet" in detail(response)
    assert kind(world.deliver(renewal)) is OutcomeKind.RENEWED
    assert [e.expiry_date for e in world.entitlements(subscription_id)] == [
        plus_year(expiry) for expiry in expiries
    ]


def test_renewals_delivered_late_and_out_of_order_still_cover_the_paid_period(
    world: EmulatedWorld,
) -> None:
    """Three renewals billed, delivered last-first while Zentitle2's clock is still at the
    start (a long outage, then a replay): the licence must reach the last paid period."""
    start = world.stripe_emulator.now
    subscription_id, first = subscribe_two(world)
    renewals = [world.renew(subscription_id) for _ in range(3)]
    world.zentitle_emulator.now = datetime.fromtimestamp(start, timezone.utc)
    for event in (first, renewals[2], renewals[0], renewals[1]):
        assert world.deliver(event).status == 200
    paid_through = world.stripe_emulator.subscription(subscription_id)["items"]["data"][0][
        "current_period_end"
    ]
    for entitlement in world.entitlements(subscription_id):
        assert entitlement.expiry_date is not None
        assert entitlement.expiry_date.timestamp() == pytest.approx(paid_through, abs=86400)


def test_two_subscriptions_of_one_buyer_at_once_make_one_customer(tmp_path: Path) -> None:
    world = EmulatedWorld(storage=SQLiteStorage(str(tmp_path / "events.db")))
    world.offering("PRO-1Y")
    buyer = world.customer()
    events = [world.subscribe(buyer, [(world.price("PRO-1Y"), 1)])[1] for _ in range(4)]
    barrier = threading.Barrier(len(events))

    def deliver(event: dict[str, Any]) -> int:
        barrier.wait()
        for _ in range(50):
            status = world.deliver(event).status
            if status == 200:
                return status
            time.sleep(0.02)
        return status

    with ThreadPoolExecutor(len(events)) as pool:
        assert list(pool.map(deliver, events)) == [200] * len(events)
    assert len(world.zentitle_emulator.customers()) == 1
    assert len(world.zentitle_emulator.groups()) == len(events)


def test_renewal_that_provisions_then_fails_to_renew_is_renewed_on_retry(
    world: EmulatedWorld,
) -> None:
    """The renewal arrives first, creates the licence, then the renew call fails (it never
    reached Zentitle2): the retry must still renew (the invoice is not remembered as
    applied until it is). A 5xx instead makes the retry wait: test_uncertain_creates."""
    start = world.stripe_emulator.now
    subscription_id, _first = subscribe_two(world)
    renewal = world.renew(subscription_id)
    world.zentitle_emulator.now = datetime.fromtimestamp(start, timezone.utc)
    world.zentitle_emulator.inject_fault("PATCH", r"/renew$", "connect", times=20)
    assert world.deliver(renewal).status == 503
    world.zentitle_emulator.clear_faults()
    assert world.deliver(renewal).status == 200
    period_end = renewal["data"]["object"]["lines"]["data"][0]["period"]["end"]
    for entitlement in world.entitlements(subscription_id):
        assert entitlement.expiry_date is not None
        assert entitlement.expiry_date.timestamp() == pytest.approx(period_end, abs=86400)


def test_deleted_stripe_customer_is_licensed_without_a_metadata_write(
    world: EmulatedWorld,
) -> None:
    subscription_id, paid = subscribe_two(world)
    world.stripe_emulator.delete_customer(
        world.stripe_emulator.subscription(subscription_id)["customer"]
    )
    response = world.deliver(paid)
    assert response.status == 200, detail(response)
    assert len(world.groups(subscription_id)) == 1
    assert world.stripe_emulator.count("POST", "/v1/customers/") == 0
