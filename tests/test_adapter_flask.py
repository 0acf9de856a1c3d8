"""The Flask adapter: raw bytes in, the core's response out, with Flask's test client."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import EXAMPLES, ExampleEnv, make_world

pytest.importorskip("flask")

from flask import Flask
from flask.testing import FlaskClient

from zentitle_stripe.exceptions import MissingExtraError
from zentitle_stripe.flask import init_app, make_blueprint
from zentitle_stripe.testing import EmulatedWorld, sign_stripe_payload
from zentitle_stripe.zentitle_webhooks import EntitlementGroupCreated


@pytest.fixture
def world() -> Iterator[EmulatedWorld]:
    world = make_world()
    yield world
    world.close()


def client_for(world: EmulatedWorld, **kw: Any) -> FlaskClient:
    app = Flask(__name__)
    init_app(app, world.provisioner, **kw)
    return app.test_client()


def first_payment(world: EmulatedWorld) -> tuple[str, dict[str, Any]]:
    items = [(world.price("PRO-1Y"), 1), (world.price("ADDON-1Y"), 1)]
    return world.subscribe(world.customer(), items)


def post_signed(
    client: FlaskClient, world: EmulatedWorld, event: Any, path: str = "/stripe/webhook"
) -> Any:
    body, header = world.stripe_emulator.sign(event)
    return client.post(path, data=body, headers={"Stripe-Signature": header})


def test_first_payment_provisions_and_writes_codes(world: EmulatedWorld) -> None:
    client = client_for(world)
    subscription_id, paid = first_payment(world)
    response = post_signed(client, world, paid)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json()["outcome"] == "provisioned"
    assert len(world.entitlements(subscription_id)) == 2
    assert world.activation_codes(subscription_id)


def test_bad_signature_is_400_and_nothing_happens(world: EmulatedWorld) -> None:
    client = client_for(world)
    subscription_id, paid = first_payment(world)
    body, _ = world.stripe_emulator.sign(paid)
    _, wrong = sign_stripe_payload(body, "whsec_someone_else")
    response = client.post("/stripe/webhook", data=body, headers={"Stripe-Signature": wrong})
    assert response.status_code == 400
    assert client.post("/stripe/webhook", data=body).status_code == 400
    assert world.groups(subscription_id) == []


def test_duplicate_delivery_is_acknowledged_once(world: EmulatedWorld) -> None:
    client = client_for(world)
    subscription_id, paid = first_payment(world)
    assert post_signed(client, world, paid).get_json()["outcome"] == "provisioned"
    again = post_signed(client, world, paid)
    assert again.status_code == 200
    assert again.get_json()["outcome"] == "duplicate"
    assert len(world.groups(subscription_id)) == 1


def test_raw_body_reaches_verification_byte_for_byte(world: EmulatedWorld) -> None:
    client = client_for(world)
    _, paid = first_payment(world)
    odd = dict(paid, note="naïve ☃ \u2028 café")
    body = (json.dumps(odd, indent=3, ensure_ascii=False) + " \r\n\t ").encode()
    body, header = sign_stripe_payload(body, world.stripe_emulator.webhook_secret)
    response = client.post("/stripe/webhook", data=body, headers={"Stripe-Signature": header})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["outcome"] == "provisioned"


def test_body_over_the_limit_is_413() -> None:
    world = make_world(max_body_bytes=256)
    client = client_for(world)
    _, paid = first_payment(world)
    response = post_signed(client, world, paid)
    assert response.status_code == 413
    assert response.get_json()["outcome"] == "failed"


def test_body_over_the_limit_without_content_length_is_413() -> None:
    world = make_world(max_body_bytes=256)
    app = Flask(__name__)
    init_app(app, world.provisioner)
    _, paid = first_payment(world)
    body, header = world.stripe_emulator.sign(paid)
    environ_overrides = {"wsgi.input_terminated": True}
    response = app.test_client().post(
        "/stripe/webhook",
        data=body,
        headers={"Stripe-Signature": header, "Transfer-Encoding": "chunked"},
        environ_overrides=environ_overrides,
    )
    assert response.status_code == 413


def test_transient_failure_is_503_with_retry_after(world: EmulatedWorld) -> None:
    client = client_for(world)
    world.zentitle_emulator.inject_fault("POST", r"/entitlements/groups", "503")
    _, paid = first_payment(world)
    response = post_signed(client, world, paid)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    # Stripe's retry succeeds once Zentitle2 is back.
    assert post_signed(client, world, paid).get_json()["outcome"] == "provisioned"


def test_zentitle_webhook_reaches_the_handler(world: EmulatedWorld) -> None:
    client = client_for(world)
    seen: list[EntitlementGroupCreated] = []
    world.provisioner.on_zentitle("entitlement.group.created")(seen.append)
    world.zentitle_emulator.add_webhook(
        "http://localhost/zentitle/webhook", ["entitlement.group.created"]
    )
    subscription_id, paid = first_payment(world)
    assert post_signed(client, world, paid).status_code == 200
    [webhook] = world.zentitle_emulator.outbox
    response = client.post("/zentitle/webhook", data=webhook.body, headers=dict(webhook.headers))
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "handled"
    assert [event.order_ref_id for event in seen] == [subscription_id]
    forged = client.post("/zentitle/webhook", data=webhook.body, headers={"N-Signature": "AAAA"})
    assert forged.status_code == 400


def test_paths_and_blueprint_name_are_configurable(world: EmulatedWorld) -> None:
    app = Flask(__name__)
    app.register_blueprint(
        make_blueprint(
            world.provisioner, stripe_path="/hooks/s", zentitle_path="/hooks/z", name="b"
        )
    )
    client = app.test_client()
    _, paid = first_payment(world)
    assert post_signed(client, world, paid, "/hooks/s").status_code == 200
    assert client.post("/stripe/webhook").status_code == 404
    assert client.get("/hooks/s").status_code == 405
    assert "b.stripe_webhook" in app.view_functions


def test_importing_without_flask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flask", None)
    monkeypatch.delitem(sys.modules, "zentitle_stripe.flask")
    with pytest.raises(MissingExtraError, match=r"pip install 'zentitle-stripe\[flask\]'"):
        importlib.import_module("zentitle_stripe.flask")


def test_docs_example_app(
    served_example_env: ExampleEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    story, load = served_example_env
    module = load(EXAMPLES / "flask_app.py")
    client = module.app.test_client()
    _, paid = story.first_subscription()
    body, header = story.stripe.sign(paid)
    response = client.post("/stripe/webhook", data=body, headers={"Stripe-Signature": header})
    assert response.get_json()["outcome"] == "provisioned"
    [webhook] = story.zentitle.outbox
    response = client.post("/zentitle/webhook", data=webhook.body, headers=dict(webhook.headers))
    assert response.get_json()["outcome"] == "handled"
    assert "ada@example.com" in capsys.readouterr().out
