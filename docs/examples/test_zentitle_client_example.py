"""The Zentitle2 client against the emulator: seeding, clock, faults, serving.

``pytest test_zentitle_emulator.py`` (the served test needs the ``server`` extra).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from zentitle_stripe.exceptions import ZentitleAPIError
from zentitle_stripe.testing import ZentitleEmulator


def seeded() -> ZentitleEmulator:
    emulator = ZentitleEmulator()
    product = emulator.add_product("Pro")
    plan = emulator.add_plan(product, duration=("year", 1))  # subscription, starts at creation
    emulator.add_offering(sku="PRO-1Y", product_id=product, plan_id=plan, seat_count=5)
    return emulator


def test_client_and_clock() -> None:
    emulator = seeded()
    emulator.now = datetime(2026, 1, 15, tzinfo=timezone.utc)  # the clock stands still
    with emulator.client(sleep=lambda seconds: None) as client:  # in-process transport
        offering = client.find_offering("PRO-1Y")
        assert offering is not None
        assert offering.seat_count == 5

        group = client.create_entitlement_group(skus=["PRO-1Y"], order_ref_id="sub_123")
        (listed,) = client.get_entitlement_group(group.id).entitlements
        assert listed.expiry_date is None  # a group's entitlements carry no expiry...
        entitlement = client.get_entitlement(listed.id)  # ...the entitlement itself does
        assert entitlement.expiry_date == datetime(2027, 1, 15, tzinfo=timezone.utc)

        emulator.advance(timedelta(days=400))  # 2027-02-19: expired
        assert client.get_entitlement(entitlement.id).status == "expired"
        client.renew_entitlement(entitlement.id)  # expired: renewed from now
        renewed = client.get_entitlement(entitlement.id)
        assert renewed.expiry_date == datetime(2028, 2, 19, tzinfo=timezone.utc)


def test_faults_and_the_retry_rules() -> None:
    emulator = seeded()
    with emulator.client(sleep=lambda seconds: None, max_retries=3) as client:
        # Safe requests are retried: two 503s, then success.
        emulator.inject_fault("GET", r"/offerings$", "503", times=2)
        assert client.list_offerings()
        assert emulator.count("GET", "/api/v1/offerings") == 3

        # A create is never repeated once it may have arrived...
        emulator.inject_fault("POST", r"/entitlements/groups$", "lost_response")
        with pytest.raises(ZentitleAPIError) as caught:
            client.create_entitlement_group(skus=["PRO-1Y"], order_ref_id="sub_9")
        assert caught.value.transient
        # ...because it did happen: look it up by orderRefId before creating again.
        assert len(client.find_entitlement_groups("sub_9")) == 1


def test_served_over_http_with_signed_webhooks() -> None:
    pytest.importorskip("uvicorn")
    emulator = seeded()
    emulator.add_webhook("https://app.invalid/zentitle/webhook", ["entitlement.group.created"])
    with emulator.serve() as base_url, emulator.client(base_url) as client:
        client.ping()  # a token, then one GET over real HTTP
        client.create_entitlement_group(skus=["PRO-1Y"], order_ref_id="sub_1")
    (webhook,) = emulator.outbox  # deliver_webhooks() would POST it to its uri
    assert webhook.event_code == "entitlement.group.created"
    assert webhook.headers["N-Signature"] == emulator.sign(webhook.body)
