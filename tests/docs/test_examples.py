"""The documentation's examples (``docs/examples``) do what the pages say they do.

The framework examples (Flask, FastAPI, Django, ASGI) are tested with their adapters;
this module covers the others: the plain WSGI app, activation e-mails, wiring by hand,
the custom storage backend and the user-facing tests built on the emulators.
"""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support import EXAMPLES, ExampleEnv
from zentitle_stripe import TransientError
from zentitle_stripe.testing import EmulatedWorld, StorageContract, sign_stripe_payload

pytestmark = pytest.mark.world(
    webhooks={"https://app.invalid/zentitle/webhook": ["entitlement.group.created"]}
)


# -- loading ---------------------------------------------------------------------------


@pytest.fixture
def load_example(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Import ``docs/examples/<name>.py`` as a fresh module, with the examples importable
    from each other as they are when a user copies the folder."""
    monkeypatch.syspath_prepend(str(EXAMPLES))

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(
            f"docs_example_{name}_{uuid.uuid4().hex}", EXAMPLES / f"{name}.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def _provision(world: EmulatedWorld, email: str | None = "ada@example.com") -> str:
    customer = world.customer(email=email, name="Ada Lovelace")
    subscription_id, paid = world.subscribe(customer, [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).outcome.kind.value == "provisioned"
    return subscription_id


def _zentitle_delivery(world: EmulatedWorld) -> tuple[bytes, str]:
    (webhook,) = world.zentitle_emulator.outbox
    world.zentitle_emulator.outbox.clear()
    return webhook.body, webhook.headers["N-Signature"]


# -- activation_email.py -------------------------------------------------------------------


def test_activation_email_is_sent_once_with_the_codes(
    world: EmulatedWorld, load_example: Callable[[str], ModuleType]
) -> None:
    example = load_example("activation_email")
    sent: list[EmailMessage] = []
    example.register(world.provisioner, sent.append, sender="licences@example.com")
    subscription_id = _provision(world)
    body, signature = _zentitle_delivery(world)

    response = world.provisioner.handle_zentitle_event(body, signature)
    assert (response.status, response.outcome.kind.value) == (200, "handled")
    (message,) = sent
    assert message["To"] == "ada@example.com"
    assert message["From"] == "licences@example.com"
    codes = world.activation_codes(subscription_id)
    assert codes
    for code in codes.split(","):
        assert code in message.get_content()
    assert "Hello Ada Lovelace" in message.get_content()

    again = world.provisioner.handle_zentitle_event(body, signature)
    assert again.outcome.kind.value == "duplicate"
    assert len(sent) == 1


def test_activation_email_failure_is_503_then_replayed(
    world: EmulatedWorld, load_example: Callable[[str], ModuleType]
) -> None:
    example = load_example("activation_email")
    sent: list[EmailMessage] = []
    down = True

    def send(message: EmailMessage) -> None:
        if down:
            raise TransientError("mail server unavailable: refused", retry_after=60)
        sent.append(message)

    example.register(world.provisioner, send, sender="licences@example.com")
    _provision(world)
    body, signature = _zentitle_delivery(world)

    failed = world.provisioner.handle_zentitle_event(body, signature)
    assert failed.status == 503
    assert failed.headers["Retry-After"] == "60"
    assert failed.outcome.reason == "mail server unavailable: refused"

    down = False
    event_id = failed.event_id
    assert event_id is not None
    replayed = world.provisioner.replay(event_id, "zentitle")
    assert replayed.outcome.kind.value == "handled"
    assert len(sent) == 1


def test_activation_email_skips_a_customer_without_an_address(
    world: EmulatedWorld, load_example: Callable[[str], ModuleType]
) -> None:
    example = load_example("activation_email")
    sent: list[EmailMessage] = []
    example.register(world.provisioner, sent.append, sender="licences@example.com")
    _provision(world, email=None)
    response = world.provisioner.handle_zentitle_event(*_zentitle_delivery(world))
    assert response.outcome.kind.value == "handled"
    assert sent == []


def test_activation_email_ignores_groups_not_made_for_a_subscription(
    world: EmulatedWorld, load_example: Callable[[str], ModuleType]
) -> None:
    example = load_example("activation_email")
    sent: list[EmailMessage] = []
    example.register(world.provisioner, sent.append, sender="licences@example.com")
    world.zentitle.create_entitlement_group(skus=["PRO-1Y"])  # as if made in the UI
    response = world.provisioner.handle_zentitle_event(*_zentitle_delivery(world))
    assert response.outcome.kind.value == "handled"
    assert sent == []


def test_smtp_sender_turns_an_unreachable_server_into_a_transient_error(
    load_example: Callable[[str], ModuleType],
) -> None:
    example = load_example("activation_email")
    send = example.smtp_sender("127.0.0.1", port=1)  # nothing listens on port 1
    with pytest.raises(TransientError, match="mail server unavailable") as caught:
        send(EmailMessage())
    assert caught.value.retry_after == 60


# -- wsgi_app.py -----------------------------------------------------------------------------


def _call(app: Any, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[str, bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }
    status: list[str] = []

    def start_response(line: str, response_headers: list[tuple[str, str]]) -> None:
        status.append(line)

    return_body = b"".join(app(environ, start_response))
    return status[0], return_body


def test_wsgi_app_provisions_and_maps_every_status(
    served_example_env: ExampleEnv, load_example: Callable[[str], ModuleType]
) -> None:
    story, _ = served_example_env
    module = load_example("wsgi_app")
    try:
        subscription_id, paid = story.first_subscription()
        body, header = story.stripe.sign(paid)

        status, answer = _call(module.app, "POST", "/stripe/webhook", body, stripe_signature=header)
        assert status == "200 OK"
        assert b'"outcome":"provisioned"' in answer
        assert len(story.zentitle.groups(order_ref_id=subscription_id)) == 1

        status, _ = _call(module.app, "POST", "/stripe/webhook", body, stripe_signature="t=1,v1=x")
        assert status == "400 Bad Request"
        big = b"x" * (module.provisioner.max_body_bytes + 10)
        status, _ = _call(module.app, "POST", "/stripe/webhook", big, stripe_signature=header)
        # The reason phrase is the running Python's (3.13 renamed 413 "Content Too Large").
        assert status == f"413 {HTTPStatus(413).phrase}"
        assert _call(module.app, "GET", "/stripe/webhook")[0] == "404 Not Found"

        (webhook,) = story.zentitle.outbox
        status, answer = _call(
            module.app,
            "POST",
            "/zentitle/webhook",
            webhook.body,
            n_signature=webhook.headers["N-Signature"],
        )
        assert status == "200 OK"
        assert b'"outcome":"ignored"' in answer  # the example registers no handler
    finally:
        module.provisioner.zentitle.close()
        module.provisioner.stripe.close()
        module.provisioner.storage.close()


# -- wiring.py -------------------------------------------------------------------------------


def test_wiring_by_hand_builds_a_working_provisioner(
    served_example_env: ExampleEnv, load_example: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    story, _ = served_example_env
    example = load_example("wiring")
    provisioner = example.build_provisioner(dict(os.environ), database=str(tmp_path / "z.db"))
    try:
        subscription_id, paid = story.first_subscription()
        body, header = sign_stripe_payload(paid, story.stripe.webhook_secret)
        response = provisioner.handle_event(body, header)
        assert response.outcome.kind.value == "provisioned"
        assert provisioner.zentitle_webhook_key is not None
        assert len(story.zentitle.groups(order_ref_id=subscription_id)) == 1
    finally:
        provisioner.zentitle.close()
        provisioner.stripe.close()
        provisioner.storage.close()


# -- custom_storage.py -----------------------------------------------------------------------

CONTRACT_TESTS = sorted(name for name in dir(StorageContract) if name.startswith("test_"))


@pytest.mark.parametrize("name", CONTRACT_TESTS)
def test_dict_storage_passes_the_storage_contract(
    name: str, load_example: Callable[[str], ModuleType]
) -> None:
    storage_class = load_example("custom_storage").DictStorage

    class Suite(StorageContract):
        def make_storage(self) -> Any:
            return storage_class()

    suite = Suite()
    suite.setup_method()
    try:
        getattr(suite, name)()
    finally:
        suite.teardown_method()


def test_dict_storage_keeps_subscription_state_as_json(
    load_example: Callable[[str], ModuleType],
) -> None:
    from zentitle_stripe.storage import Storage, SubscriptionState

    storage = load_example("custom_storage").DictStorage()
    assert isinstance(storage, Storage)  # the protocol is runtime-checkable
    state = SubscriptionState(subscription_id="sub_1", activation_codes=("A-B",), canceled=True)
    storage.put_subscription(state)
    assert storage.get_subscription("sub_1") == state


# -- the user-facing test files ----------------------------------------------------------------


def test_the_example_test_files_pass_under_pytest() -> None:
    """The ``test_*.py`` examples run as a user would run them, and all pass."""
    names = ("test_with_emulators.py", "test_dict_storage.py", "test_zentitle_client_example.py")
    files = [str(EXAMPLES / name) for name in names]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=EXAMPLES,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
    assert "failed" not in result.stdout


# -- outcome_hooks.py ----------------------------------------------------------------------


def test_outcome_hooks_welcome_once_and_feed_every_change(
    world: EmulatedWorld, load_example: Callable[[str], ModuleType]
) -> None:
    example = load_example("outcome_hooks")
    sent: list[tuple[str, str]] = []
    down = True

    def notify(to: str, text: str) -> None:
        if to == "#sales" and down:
            raise ConnectionError("chat is down")
        sent.append((to, text))

    example.register(world.provisioner, notify)
    customer = world.customer()
    subscription_id, paid = world.subscribe(customer, [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 500  # the feed failed: Stripe will redeliver
    codes = world.activation_codes(subscription_id)
    assert sent == [
        (
            f"stripe-customer:{customer}",
            f"Your PRO-1Y licence is ready; activation code(s): {codes}",
        )
    ]
    down = False
    assert world.deliver(paid).status == 200  # the redelivery runs only the feed
    assert [to for to, _ in sent] == [f"stripe-customer:{customer}", "#sales"]
    world.deliver(world.cancel(subscription_id))
    assert sent[-1][0] == "#sales"
    assert sent[-1][1].startswith(f"revoked: {subscription_id}")
