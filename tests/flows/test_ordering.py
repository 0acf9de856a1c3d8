"""Exactly once under duplicates, concurrency and every delivery order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zentitle_stripe import WebhookResponse
from zentitle_stripe.events import parse_invoice
from zentitle_stripe.flows import COVERAGE_SLACK
from zentitle_stripe.storage import EventStatus
from zentitle_stripe.storage.sqlite import SQLiteStorage
from zentitle_stripe.testing import NEW_API_VERSION, OLD_API_VERSION, EmulatedWorld


def deliver_until_acknowledged(
    deliver: Callable[[], WebhookResponse], attempts: int = 20
) -> WebhookResponse:
    """Stripe's side: redeliver until a 2xx (409 and 503 mean "later")."""
    for attempt in range(attempts):
        response = deliver()
        if 200 <= response.status < 300:
            return response
        assert response.status in (409, 503), response.body
        time.sleep(0.01 * 2 ** min(attempt, 5))
    raise AssertionError("never acknowledged")


def sqlite_world(tmp_path: Path) -> EmulatedWorld:
    world = EmulatedWorld(storage=SQLiteStorage(str(tmp_path / "events.db")))
    world.offering("PRO-1Y")
    world.offering("ADDON-1Y")
    return world


def test_the_same_event_delivered_concurrently_creates_one_group(tmp_path: Path) -> None:
    world = sqlite_world(tmp_path)
    subscription_id, paid = world.subscribe(
        world.customer(), [(world.price("PRO-1Y"), 1), (world.price("ADDON-1Y"), 1)]
    )
    barrier = threading.Barrier(6)
    statuses: list[int] = []  # appended by the threads; a thread's exception fails the test

    def deliver() -> None:
        barrier.wait()
        statuses.append(world.deliver(paid).status)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert set(statuses) <= {200, 409}
    assert statuses.count(200) >= 1
    deliver_until_acknowledged(lambda: world.deliver(paid))
    assert len(world.groups(subscription_id)) == 1
    assert world.zentitle_emulator.count("POST", "/api/v1/entitlements/groups") == 1
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert record.status is EventStatus.DONE


def test_payment_and_cancellation_racing_end_with_no_active_licence(tmp_path: Path) -> None:
    world = sqlite_world(tmp_path)
    for _ in range(5):
        subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
        cancelled = world.cancel(subscription_id)
        barrier = threading.Barrier(4)

        def race(event: dict[str, Any], barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            deliver_until_acknowledged(lambda: world.deliver(event))

        threads = [
            threading.Thread(target=race, args=(event,))
            for event in (paid, cancelled, paid, cancelled)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(world.groups(subscription_id)) <= 1
        assert world.active_entitlements(subscription_id) == []


# -- every order -----------------------------------------------------------------------


def _story(cancel: bool, api_version: str) -> tuple[EmulatedWorld, str, list[dict[str, Any]], int]:
    """First payment, two renewals and maybe a cancellation; returns the world, the
    subscription, its events in the order Stripe created them, and the last period end."""
    world = EmulatedWorld(api_version=api_version)
    world.offering("PRO-1Y")
    world.offering("ADDON-1Y")
    subscription_id, paid = world.subscribe(
        world.customer(), [(world.price("PRO-1Y"), 1), (world.price("ADDON-1Y"), 1)]
    )
    events = [paid, world.renew(subscription_id), world.renew(subscription_id)]
    last_period_end = parse_invoice(events[-1]["data"]["object"]).period_end
    assert last_period_end is not None
    if cancel:
        events.append(world.cancel(subscription_id))
    return world, subscription_id, events, last_period_end


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    cancel=st.booleans(),
    api_version=st.sampled_from([OLD_API_VERSION, NEW_API_VERSION]),
    data=st.data(),
)
def test_any_delivery_order_with_duplicates_ends_in_the_same_licence(
    cancel: bool, api_version: str, data: st.DataObject
) -> None:
    world, subscription_id, events, last_period_end = _story(cancel, api_version)
    copies = data.draw(
        st.lists(st.integers(min_value=1, max_value=2), min_size=len(events), max_size=len(events))
    )
    deliveries = [event for event, n in zip(events, copies, strict=True) for _ in range(n)]
    order = data.draw(st.permutations(deliveries))

    clock = 0
    for event in order:
        # Time only moves forward: an event is delivered no earlier than it was created.
        clock = max(clock, int(event["created"]))
        world.zentitle_emulator.now = datetime.fromtimestamp(clock, timezone.utc)
        deliver_until_acknowledged(partial(world.deliver, event))

    groups = world.groups(subscription_id)
    assert len(groups) <= 1
    renewals = world.zentitle_emulator.count("PATCH", "/api/v1/entitlements/")
    if cancel:
        assert world.active_entitlements(subscription_id) == []
        return
    assert len(groups) == 1
    assert world.zentitle_emulator.count("POST", "/api/v1/entitlements/groups") == 1
    entitlements = world.entitlements(subscription_id)
    assert len(entitlements) == 2
    # Two renewal invoices: at most two renews per entitlement, and the licence covers
    # exactly the last paid period: never short, never a period too long.
    assert renewals <= 2 * len(entitlements)
    for entitlement in entitlements:
        assert entitlement.status == "active"
        assert entitlement.expiry_date is not None
        expiry = entitlement.expiry_date.timestamp()
        assert last_period_end - COVERAGE_SLACK <= expiry <= last_period_end + COVERAGE_SLACK
    for event in events:
        record = world.storage.get_event(event["id"])
        assert record is not None
        assert record.status is EventStatus.DONE
