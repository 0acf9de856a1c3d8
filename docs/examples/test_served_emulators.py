"""Point your own app at the emulators over HTTP: ``pytest test_served_emulators.py``.

Both emulators run on 127.0.0.1 (``serve()``, the ``server`` extra); your app reads the
same environment variables it reads in production, pointed at them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from zentitle_stripe import Services
from zentitle_stripe.server import create_app, serve_in_thread
from zentitle_stripe.testing import EmulatedWorld


@pytest.fixture
def world() -> Iterator[EmulatedWorld]:
    world = EmulatedWorld()
    world.offering("PRO-1Y")  # Zentitle2: an offering on a 1-year plan
    yield world
    world.close()


@pytest.fixture
def environ(world: EmulatedWorld, tmp_path: Path) -> Iterator[dict[str, str]]:
    """STRIPE_*, ZENTITLE_* and ZENTITLE_STRIPE_STORAGE for the served emulators."""
    with world.served(str(tmp_path)) as environ:
        yield environ


def test_stripe_takes_the_test_key_as_curl_sends_it(environ: dict[str, str]) -> None:
    # curl -u sk_test_emulator: $STRIPE_API_BASE/v1/prices (Basic auth, no password)
    key = environ["STRIPE_API_KEY"]
    prices = httpx.get(f"{environ['STRIPE_API_BASE']}/v1/prices", auth=(key, ""))
    assert prices.status_code == 200
    assert prices.json()["object"] == "list"
    bearer = httpx.get(
        f"{environ['STRIPE_API_BASE']}/v1/prices", headers={"Authorization": f"Bearer {key}"}
    )
    assert bearer.status_code == 200


def test_zentitle_takes_a_client_credentials_token(environ: dict[str, str]) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": environ["ZENTITLE_CLIENT_ID"],
        "client_secret": environ["ZENTITLE_CLIENT_SECRET"],
    }
    token = httpx.post(environ["ZENTITLE_TOKEN_URL"], data=form).json()["access_token"]
    offerings = httpx.get(
        f"{environ['ZENTITLE_API_URL']}/api/v1/offerings",
        headers={
            "Authorization": f"Bearer {token}",
            "N-TenantId": environ["ZENTITLE_TENANT_ID"],
            "N-Api-Version": "2025-10-10",
        },
    )
    assert offerings.status_code == 200
    assert [o["sku"] for o in offerings.json()["items"]] == ["PRO-1Y"]


def test_your_app_provisions_through_the_served_emulators(
    world: EmulatedWorld, environ: dict[str, str]
) -> None:
    # Your app, built from the environment as in production (here: the standalone server).
    with Services.from_env(environ) as services, serve_in_thread(create_app(services)) as url:
        # Zentitle2 signs its webhooks with the key in ZENTITLE_WEBHOOK_PUBLIC_KEY.
        world.zentitle_emulator.add_webhook(
            f"{url}/zentitle/webhook", ["entitlement.group.created"]
        )
        customer = world.customer(email="ada@example.com")
        subscription_id, paid = world.subscribe(customer, [(world.price("PRO-1Y"), 1)])
        body, header = world.stripe_emulator.sign(paid)  # signed with STRIPE_WEBHOOK_SECRET
        response = httpx.post(
            f"{url}/stripe/webhook",
            content=body,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        (sent,) = world.zentitle_emulator.deliver_webhooks()  # entitlement.group.created
    assert response.status_code == 200
    assert response.json()["outcome"] == "provisioned"
    assert sent.status_code == 200  # verified and recorded by your app
    (group,) = world.groups(subscription_id)  # the same emulators, inspected in process
    assert world.activation_codes(subscription_id) == ",".join(group.activation_codes)
