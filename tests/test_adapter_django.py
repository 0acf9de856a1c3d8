"""The Django adapter: CSRF-exempt POST-only views, lazy settings, Django's test client."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import EXAMPLES, ExampleEnv, make_world

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="zentitle-stripe-tests",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
        USE_TZ=True,
    )
    django.setup()

from django.test import Client, override_settings  # noqa: E402
from django.urls import include, path  # noqa: E402

from zentitle_stripe.django import get_provisioner, make_urlpatterns, set_provisioner  # noqa: E402
from zentitle_stripe.exceptions import MissingExtraError  # noqa: E402
from zentitle_stripe.testing import EmulatedWorld, sign_stripe_payload  # noqa: E402
from zentitle_stripe.zentitle_webhooks import EntitlementGroupCreated  # noqa: E402

urlpatterns = [
    path("", include("zentitle_stripe.django.urls")),
    path("custom/", include(make_urlpatterns("s", "z"))),
]
TEST_SETTINGS: dict[str, Any] = {
    "ROOT_URLCONF": __name__,
    "ALLOWED_HOSTS": ["testserver"],
    "MIDDLEWARE": ["django.middleware.csrf.CsrfViewMiddleware"],
}


@pytest.fixture(autouse=True)
def django_settings() -> Iterator[None]:
    """Our URLs and middleware, even if another module configured Django first."""
    with override_settings(**TEST_SETTINGS):
        yield
    set_provisioner(None)


@pytest.fixture
def world() -> Iterator[EmulatedWorld]:
    world = make_world()
    set_provisioner(world.provisioner)
    yield world
    world.close()


@pytest.fixture
def client() -> Client:
    # CSRF checks on, as in production: the views must be exempt.
    return Client(enforce_csrf_checks=True)


def first_payment(world: EmulatedWorld) -> tuple[str, dict[str, Any]]:
    items = [(world.price("PRO-1Y"), 1), (world.price("ADDON-1Y"), 1)]
    return world.subscribe(world.customer(), items)


def post_signed(
    client: Client, world: EmulatedWorld, event: Any, url: str = "/stripe/webhook"
) -> Any:
    body, header = world.stripe_emulator.sign(event)
    return client.post(url, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def test_first_payment_provisions_and_writes_codes(world: EmulatedWorld, client: Client) -> None:
    subscription_id, paid = first_payment(world)
    response = post_signed(client, world, paid)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["outcome"] == "provisioned"
    assert len(world.entitlements(subscription_id)) == 2
    assert world.activation_codes(subscription_id)


def test_only_post_is_allowed(world: EmulatedWorld, client: Client) -> None:
    assert client.get("/stripe/webhook").status_code == 405
    assert client.put("/zentitle/webhook").status_code == 405


def test_bad_signature_is_400_and_nothing_happens(world: EmulatedWorld, client: Client) -> None:
    subscription_id, paid = first_payment(world)
    body, _ = world.stripe_emulator.sign(paid)
    _, wrong = sign_stripe_payload(body, "whsec_someone_else")
    response = client.post(
        "/stripe/webhook", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=wrong
    )
    assert response.status_code == 400
    assert client.post("/stripe/webhook", body, content_type="application/json").status_code == 400
    assert world.groups(subscription_id) == []


def test_duplicate_delivery_is_acknowledged_once(world: EmulatedWorld, client: Client) -> None:
    subscription_id, paid = first_payment(world)
    assert post_signed(client, world, paid).json()["outcome"] == "provisioned"
    again = post_signed(client, world, paid)
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert len(world.groups(subscription_id)) == 1


def test_raw_body_reaches_verification_byte_for_byte(world: EmulatedWorld, client: Client) -> None:
    _, paid = first_payment(world)
    odd = dict(paid, note="naïve ☃ \u2028 café")
    body = (json.dumps(odd, indent=3, ensure_ascii=False) + " \r\n\t ").encode()
    body, header = sign_stripe_payload(body, world.stripe_emulator.webhook_secret)
    response = client.post(
        "/stripe/webhook", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    assert response.status_code == 200, response.json()
    assert response.json()["outcome"] == "provisioned"


def test_body_over_the_limit_is_413(client: Client) -> None:
    world = make_world(max_body_bytes=256)
    set_provisioner(world.provisioner)
    _, paid = first_payment(world)
    response = post_signed(client, world, paid)
    assert response.status_code == 413
    assert response.json()["outcome"] == "failed"


def test_transient_failure_is_503_with_retry_after(world: EmulatedWorld, client: Client) -> None:
    world.zentitle_emulator.inject_fault("POST", r"/entitlements/groups", "503")
    _, paid = first_payment(world)
    response = post_signed(client, world, paid)
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    assert post_signed(client, world, paid).json()["outcome"] == "provisioned"


def test_zentitle_webhook_reaches_the_handler(world: EmulatedWorld, client: Client) -> None:
    seen: list[EntitlementGroupCreated] = []
    world.provisioner.on_zentitle("entitlement.group.created")(seen.append)
    world.zentitle_emulator.add_webhook(
        "http://testserver/zentitle/webhook", ["entitlement.group.created"]
    )
    subscription_id, paid = first_payment(world)
    assert post_signed(client, world, paid).status_code == 200
    [webhook] = world.zentitle_emulator.outbox
    response = client.post(
        "/zentitle/webhook",
        webhook.body,
        content_type="application/json",
        HTTP_N_SIGNATURE=webhook.headers["N-Signature"],
    )
    assert response.status_code == 200
    assert response.json()["outcome"] == "handled"
    assert [event.order_ref_id for event in seen] == [subscription_id]


def test_paths_are_configurable(world: EmulatedWorld, client: Client) -> None:
    _, paid = first_payment(world)
    assert post_signed(client, world, paid, "/custom/s").status_code == 200
    assert post_signed(client, world, paid, "/custom/s").json()["outcome"] == "duplicate"


def test_provisioner_is_built_once_from_the_settings_dict() -> None:
    config = {
        "STRIPE_API_KEY": "sk_test_django",
        "STRIPE_WEBHOOK_SECRET": "whsec_django",
        "ZENTITLE_API_URL": "https://api.zentitle.invalid",
        "ZENTITLE_TOKEN_URL": "https://auth.zentitle.invalid/token",
        "ZENTITLE_TENANT_ID": "t_1",
        "ZENTITLE_CLIENT_ID": "c_1",
        "ZENTITLE_CLIENT_SECRET": "s_1",
        "ZENTITLE_STRIPE_STORAGE": "memory://",
        "ZENTITLE_STRIPE_MAX_BODY_BYTES": 4096,
    }
    set_provisioner(None)
    built: list[object] = []
    with override_settings(ZENTITLE_STRIPE=config):
        threads = [
            threading.Thread(target=lambda: built.append(get_provisioner())) for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert len(built) == 8
        assert all(p is built[0] for p in built)
        assert get_provisioner().max_body_bytes == 4096
        response = Client().post("/stripe/webhook", b"{}", content_type="application/json")
        assert response.status_code == 400


def test_importing_without_django_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "django", None)
    for name in [n for n in sys.modules if n.startswith("zentitle_stripe.django")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingExtraError, match=r"pip install 'zentitle-stripe\[django\]'"):
        importlib.import_module("zentitle_stripe.django")


def test_docs_example_app(
    served_example_env: ExampleEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    story, load = served_example_env
    example_settings = load(EXAMPLES / "django_settings.py")
    set_provisioner(None)
    with override_settings(ZENTITLE_STRIPE=example_settings.ZENTITLE_STRIPE):
        urls = load(EXAMPLES / "django_urls.py")
        with override_settings(ROOT_URLCONF=urls):
            client = Client(enforce_csrf_checks=True)
            _, paid = story.first_subscription()
            body, header = story.stripe.sign(paid)
            response = client.post(
                "/billing/stripe/webhook",
                body,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=header,
            )
            assert response.json()["outcome"] == "provisioned"
            [webhook] = story.zentitle.outbox
            response = client.post(
                "/billing/zentitle/webhook",
                webhook.body,
                content_type="application/json",
                HTTP_N_SIGNATURE=webhook.headers["N-Signature"],
            )
            assert response.json()["outcome"] == "handled"
    assert "ada@example.com" in capsys.readouterr().out
