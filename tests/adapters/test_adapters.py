"""Every web adapter behaves the same: raw bytes in, the core's response out.

Each scenario runs against Flask, FastAPI, Django and the standalone server (see
`tests.support.apps`); what only one framework has lives in its own test file.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Iterator

import pytest

from tests.support import ExampleEnv, subscribe_two
from tests.support.apps import APPS, App, Paths
from zentitle_stripe.exceptions import MissingExtraError
from zentitle_stripe.responses import WebhookResponse
from zentitle_stripe.testing import EmulatedWorld, sign_stripe_payload
from zentitle_stripe.zentitle_webhooks import EntitlementGroupCreated


@pytest.fixture(params=list(APPS.values()), ids=list(APPS))
def app_kind(request: pytest.FixtureRequest) -> type[App]:
    kind: type[App] = request.param
    kind.require()
    return kind


@pytest.fixture
def app(app_kind: type[App], world: EmulatedWorld) -> Iterator[App]:
    with app_kind.serving(world.provisioner) as app:
        yield app


def test_first_payment_provisions_and_writes_codes(app: App, world: EmulatedWorld) -> None:
    subscription_id, paid = subscribe_two(world)
    reply = app.deliver(world.stripe_emulator, paid)
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["outcome"] == "provisioned"
    assert len(world.entitlements(subscription_id)) == 2
    assert world.activation_codes(subscription_id)


def test_bad_signature_is_400_with_a_reason_and_nothing_happens(
    app: App, world: EmulatedWorld
) -> None:
    subscription_id, paid = subscribe_two(world)
    body, _ = world.stripe_emulator.sign(paid)
    _, wrong = sign_stripe_payload(body, "whsec_someone_else")
    reply = app.post(app.paths.stripe, body, {"Stripe-Signature": wrong})
    assert reply.status == 400
    assert reply.json()["outcome"] == "failed"
    assert "signature does not match" in reply.json()["detail"]
    assert b"Traceback" not in reply.body
    unsigned = app.post(app.paths.stripe, body)
    assert unsigned.status == 400
    assert "missing Stripe-Signature header" in unsigned.json()["detail"]
    assert app.post(app.paths.stripe, body, {"Stripe-Signature": "t=1,v1=00"}).status == 400
    assert world.groups(subscription_id) == []


def test_duplicate_delivery_is_acknowledged_once(app: App, world: EmulatedWorld) -> None:
    subscription_id, paid = subscribe_two(world)
    assert app.deliver(world.stripe_emulator, paid).json()["outcome"] == "provisioned"
    again = app.deliver(world.stripe_emulator, paid)
    assert again.status == 200
    assert again.json()["outcome"] == "duplicate"
    assert len(world.groups(subscription_id)) == 1


def test_raw_body_reaches_verification_byte_for_byte(app: App, world: EmulatedWorld) -> None:
    _, paid = subscribe_two(world)
    odd = dict(paid, note="naïve ☃ \u2028 café")
    body = (json.dumps(odd, indent=3, ensure_ascii=False) + " \r\n\t ").encode()
    body, header = sign_stripe_payload(body, world.stripe_emulator.webhook_secret)
    reply = app.post(app.paths.stripe, body, {"Stripe-Signature": header})
    assert reply.status == 200, reply.json()
    assert reply.json()["outcome"] == "provisioned"


@pytest.mark.world(max_body_bytes=256)
def test_body_over_the_limit_is_413(app: App, world: EmulatedWorld) -> None:
    _, paid = subscribe_two(world)
    reply = app.deliver(world.stripe_emulator, paid)
    assert reply.status == 413
    assert reply.json()["outcome"] == "failed"


@pytest.mark.world(max_body_bytes=256)
def test_streamed_body_over_the_limit_is_413(app: App, world: EmulatedWorld) -> None:
    _, paid = subscribe_two(world)
    body, header = world.stripe_emulator.sign(paid)
    chunks = [body[i : i + 64] for i in range(0, len(body), 64)]
    assert app.stream(app.paths.stripe, chunks, {"Stripe-Signature": header}).status == 413


def test_transient_failure_is_503_with_retry_after(app: App, world: EmulatedWorld) -> None:
    # A write that is safe to repeat (a create in doubt is waited for: see
    # tests/flows/test_uncertain_creates.py).
    world.stripe_emulator.inject_fault("POST", r"/v1/subscriptions/", "503")
    _, paid = subscribe_two(world)
    reply = app.deliver(world.stripe_emulator, paid)
    assert reply.status == 503
    assert int(reply.headers["retry-after"]) >= 1
    # Stripe's retry succeeds once the remote is back.
    assert app.deliver(world.stripe_emulator, paid).json()["outcome"] == "provisioned"


def test_zentitle_webhook_reaches_the_handler(app: App, world: EmulatedWorld) -> None:
    seen: list[EntitlementGroupCreated] = []
    world.provisioner.on_zentitle("entitlement.group.created")(seen.append)
    world.zentitle_emulator.add_webhook(
        "http://testserver/zentitle/webhook", ["entitlement.group.created"]
    )
    subscription_id, paid = subscribe_two(world)
    assert app.deliver(world.stripe_emulator, paid).status == 200
    [webhook] = world.zentitle_emulator.outbox
    reply = app.forward(webhook)
    assert reply.status == 200
    assert reply.json()["outcome"] == "handled"
    assert [event.order_ref_id for event in seen] == [subscription_id]
    forged = app.post(app.paths.zentitle, webhook.body, {"N-Signature": "AAAA"})
    assert forged.status == 400


def test_only_post_is_allowed(app: App) -> None:
    assert app.request("GET", app.paths.stripe).status == 405
    assert app.request("PUT", app.paths.zentitle).status == 405


def test_paths_are_configurable(app_kind: type[App], world: EmulatedWorld) -> None:
    with app_kind.serving(world.provisioner, Paths("/hooks/s", "/hooks/z")) as app:
        _, paid = subscribe_two(world)
        assert app.deliver(world.stripe_emulator, paid).status == 200
        assert app.deliver(world.stripe_emulator, paid).json()["outcome"] == "duplicate"
        assert app.post("/stripe/webhook", b"").status == 404
        assert app.request("GET", "/hooks/s").status == 405


def test_the_core_never_runs_on_the_event_loop(
    app: App, world: EmulatedWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The core blocks on I/O: async adapters hand it to the threadpool."""
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
    _, paid = subscribe_two(world)
    assert app.deliver(world.stripe_emulator, paid).status == 200
    assert on_loop == [False]


def test_docs_example_app(
    app_kind: type[App], served_example_env: ExampleEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    story, load = served_example_env
    with app_kind.from_example(load) as app:
        _, paid = story.first_subscription()
        assert app.deliver(story.stripe, paid).json()["outcome"] == "provisioned"
        [webhook] = story.zentitle.outbox
        assert app.forward(webhook).json()["outcome"] == "handled"
    assert "ada@example.com" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("module", "framework", "extra"),
    [
        ("zentitle_stripe.flask", "flask", "flask"),
        ("zentitle_stripe.fastapi", "fastapi", "fastapi"),
        ("zentitle_stripe.django", "django", "django"),
    ],
    ids=["flask", "fastapi", "django"],
)
def test_importing_without_the_framework_names_the_extra(
    module: str, framework: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, framework, None)
    for name in [n for n in sys.modules if n == module or n.startswith(f"{module}.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingExtraError, match=rf"pip install 'zentitle-stripe\[{extra}\]'"):
        importlib.import_module(module)
