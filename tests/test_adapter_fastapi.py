"""The FastAPI adapter: raw bytes in, the core's response out, the core off the event loop."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import EXAMPLES, ExampleEnv, make_world

pytest.importorskip("fastapi")

from fastapi import FastAPI
from fastapi.testclient import TestClient

from zentitle_stripe.exceptions import MissingExtraError
from zentitle_stripe.fastapi import make_router
from zentitle_stripe.responses import WebhookResponse
from zentitle_stripe.testing import EmulatedWorld, sign_stripe_payload
from zentitle_stripe.zentitle_webhooks import EntitlementGroupCreated


@pytest.fixture
def world() -> Iterator[EmulatedWorld]:
    world = make_world()
    yield world
    world.close()


def client_for(world: EmulatedWorld, **kw: Any) -> TestClient:
    app = FastAPI()
    app.include_router(make_router(world.provisioner, **kw))
    return TestClient(app)


def first_payment(world: EmulatedWorld) -> tuple[str, dict[str, Any]]:
    items = [(world.price("PRO-1Y"), 1), (world.price("ADDON-1Y"), 1)]
    return world.subscribe(world.customer(), items)


def post_signed(
    client: TestClient, world: EmulatedWorld, event: Any, path: str = "/stripe/webhook"
) -> Any:
    body, header = world.stripe_emulator.sign(event)
    return client.post(path, content=body, headers={"Stripe-Signature": header})


def test_first_payment_provisions_and_writes_codes(world: EmulatedWorld) -> None:
    client = client_for(world)
    subscription_id, paid = first_payment(world)
    response = post_signed(client, world, paid)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["outcome"] == "provisioned"
    assert len(world.entitlements(subscription_id)) == 2
    assert world.activation_codes(subscription_id)


def test_the_core_runs_in_the_threadpool(
    world: EmulatedWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_loop: list[bool] = []
    original = world.provisioner.handle_event

    def spy(payload: bytes | str, signature: str | None) -> WebhookResponse:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return original(payload, signature)

    monkeypatch.setattr(world.provisioner, "handle_event", spy)
    client = client_for(world)
    _, paid = first_payment(world)
    assert post_signed(client, world, paid).status_code == 200
    assert on_loop == [False]


def test_bad_signature_is_400_and_nothing_happens(world: EmulatedWorld) -> None:
    client = client_for(world)
    subscription_id, paid = first_payment(world)
    body, _ = world.stripe_emulator.sign(paid)
    _, wrong = sign_stripe_payload(body, "whsec_someone_else")
    response = client.post("/stripe/webhook", content=body, headers={"Stripe-Signature": wrong})
    assert response.status_code == 400
    assert client.post("/stripe/webhook", content=body).status_code == 400
    assert world.groups(subscription_id) == []


def test_duplicate_delivery_is_acknowledged_once(world: EmulatedWorld) -> None:
    client = client_for(world)
    subscription_id, paid = first_payment(world)
    assert post_signed(client, world, paid).json()["outcome"] == "provisioned"
    again = post_signed(client, world, paid)
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert len(world.groups(subscription_id)) == 1


def test_raw_body_reaches_verification_byte_for_byte(world: EmulatedWorld) -> None:
    client = client_for(world)
    _, paid = first_payment(world)
    odd = dict(paid, note="naïve ☃ \u2028 café")
    body = (json.dumps(odd, indent=3, ensure_ascii=False) + " \r\n\t ").encode()
    body, header = sign_stripe_payload(body, world.stripe_emulator.webhook_secret)
    response = client.post("/stripe/webhook", content=body, headers={"Stripe-Signature": header})
    assert response.status_code == 200, response.json()
    assert response.json()["outcome"] == "provisioned"


def test_body_over_the_limit_is_413() -> None:
    world = make_world(max_body_bytes=256)
    client = client_for(world)
    _, paid = first_payment(world)
    response = post_signed(client, world, paid)
    assert response.status_code == 413
    assert response.json()["outcome"] == "failed"


def test_streamed_body_over_the_limit_is_413() -> None:
    world = make_world(max_body_bytes=256)
    client = client_for(world)
    _, paid = first_payment(world)
    body, header = world.stripe_emulator.sign(paid)
    chunks = iter([body[i : i + 64] for i in range(0, len(body), 64)])
    response = client.post("/stripe/webhook", content=chunks, headers={"Stripe-Signature": header})
    assert response.status_code == 413


def test_transient_failure_is_503_with_retry_after(world: EmulatedWorld) -> None:
    client = client_for(world)
    world.zentitle_emulator.inject_fault("POST", r"/entitlements/groups", "503")
    _, paid = first_payment(world)
    response = post_signed(client, world, paid)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert post_signed(client, world, paid).json()["outcome"] == "provisioned"


def test_zentitle_webhook_reaches_the_handler(world: EmulatedWorld) -> None:
    client = client_for(world)
    seen: list[EntitlementGroupCreated] = []
    world.provisioner.on_zentitle("entitlement.group.created")(seen.append)
    world.zentitle_emulator.add_webhook(
        "http://testserver/zentitle/webhook", ["entitlement.group.created"]
    )
    subscription_id, paid = first_payment(world)
    assert post_signed(client, world, paid).status_code == 200
    [response] = world.zentitle_emulator.deliver_webhooks(client)
    assert response.status_code == 200
    assert response.json()["outcome"] == "handled"
    assert [event.order_ref_id for event in seen] == [subscription_id]
    forged = client.post("/zentitle/webhook", content=b"{}", headers={"N-Signature": "AAAA"})
    assert forged.status_code == 400


def test_paths_are_configurable(world: EmulatedWorld) -> None:
    client = client_for(world, stripe_path="/hooks/s", zentitle_path="/hooks/z")
    _, paid = first_payment(world)
    assert post_signed(client, world, paid, "/hooks/s").status_code == 200
    assert client.post("/stripe/webhook").status_code == 404
    assert client.get("/hooks/s").status_code == 405


def test_importing_without_fastapi_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.delitem(sys.modules, "zentitle_stripe.fastapi")
    with pytest.raises(MissingExtraError, match=r"pip install 'zentitle-stripe\[fastapi\]'"):
        importlib.import_module("zentitle_stripe.fastapi")


def test_docs_example_app(
    served_example_env: ExampleEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    story, load = served_example_env
    module = load(EXAMPLES / "fastapi_app.py")
    with TestClient(module.app) as client:
        _, paid = story.first_subscription()
        body, header = story.stripe.sign(paid)
        response = client.post(
            "/stripe/webhook", content=body, headers={"Stripe-Signature": header}
        )
        assert response.json()["outcome"] == "provisioned"
        [webhook] = story.zentitle.outbox
        response = client.post(
            "/zentitle/webhook", content=webhook.body, headers=dict(webhook.headers)
        )
        assert response.json()["outcome"] == "handled"
    assert "ada@example.com" in capsys.readouterr().out
