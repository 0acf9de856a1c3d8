"""``Provisioner.handle_zentitle_event``: verify, record once, call the app's handlers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from zentitle_stripe import OutcomeKind, Provisioner
from zentitle_stripe.exceptions import ConfigurationError
from zentitle_stripe.storage import EventStatus, MemoryStorage
from zentitle_stripe.testing import ZentitleEmulator
from zentitle_stripe.zentitle_webhooks import EntitlementGroupCreated, ZentitleEvent


@pytest.fixture(scope="module")
def emulator() -> ZentitleEmulator:
    return ZentitleEmulator()


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def provisioner(emulator: ZentitleEmulator, storage: MemoryStorage) -> Provisioner:
    return Provisioner(
        webhook_secrets=["whsec_x"],
        storage=storage,
        zentitle_webhook_key=emulator.public_key_modulus,
    )


def envelope(
    code: str = "entitlement.group.created", event_id: str = "event_1", **payload: Any
) -> bytes:
    body = {
        "EventId": event_id,  # any casing is accepted
        "eventDate": "2026-11-29T10:00:00.123456Z",
        "eventCode": code,
        "resourceId": "egr_1",
        "callAttempt": 1,
        "payload": {"EntitlementGroupId": "egr_1", "OrderRefId": "sub_1", **payload},
    }
    return json.dumps(body).encode()


def test_handler_receives_a_typed_event_once(
    provisioner: Provisioner, emulator: ZentitleEmulator, storage: MemoryStorage
) -> None:
    received: list[EntitlementGroupCreated] = []
    provisioner.on_zentitle("entitlement.group.created")(received.append)
    body = envelope()
    response = provisioner.handle_zentitle_event(body, emulator.sign(body))
    assert response.status == 200
    assert response.outcome.kind is OutcomeKind.HANDLED
    (event,) = received
    assert isinstance(event, EntitlementGroupCreated)
    assert event.order_ref_id == "sub_1"
    assert event.entitlement_group_id == "egr_1"

    again = provisioner.handle_zentitle_event(body, emulator.sign(body))
    assert again.outcome.kind is OutcomeKind.DUPLICATE
    assert len(received) == 1
    record = storage.get_event("event_1", "zentitle")
    assert record is not None
    assert record.status is EventStatus.DONE


def test_wildcard_handlers_see_every_code_and_unhandled_codes_are_ignored(
    provisioner: Provisioner, emulator: ZentitleEmulator
) -> None:
    body = envelope("entitlement.renewed", event_id="event_2")
    assert provisioner.handle_zentitle_event(body, emulator.sign(body)).outcome.kind is (
        OutcomeKind.IGNORED
    )
    seen: list[str] = []

    @provisioner.on_zentitle("*")
    def audit(event: ZentitleEvent) -> None:
        seen.append(event.event_code)

    body = envelope("customer.created", event_id="event_3")
    assert provisioner.handle_zentitle_event(body, emulator.sign(body)).status == 200
    assert seen == ["customer.created"]


@pytest.mark.parametrize(
    ("signature", "reason"),
    [(None, "missing"), ("bm90IGEgc2lnbmF0dXJl", "does not match"), ("%%%", "base64")],
)
def test_bad_signatures_are_400_and_record_nothing(
    provisioner: Provisioner, storage: MemoryStorage, signature: str | None, reason: str
) -> None:
    response = provisioner.handle_zentitle_event(envelope(), signature)
    assert response.status == 400
    assert reason in json.loads(response.body)["detail"]
    assert storage.list_events() == []


def test_tampered_body_is_rejected(provisioner: Provisioner, emulator: ZentitleEmulator) -> None:
    body = envelope()
    signature = emulator.sign(body)
    assert (
        provisioner.handle_zentitle_event(body.replace(b"sub_1", b"sub_2"), signature).status == 400
    )


@pytest.mark.parametrize("config_error_status", [422, 200])
def test_without_a_key_zentitle_webhooks_are_refused_clearly(
    storage: MemoryStorage, config_error_status: int
) -> None:
    """Always 422: the body cannot be verified, so it is not recorded, and a 200 would
    lose it for good."""
    provisioner = Provisioner(
        webhook_secrets=["whsec_x"], storage=storage, config_error_status=config_error_status
    )
    response = provisioner.handle_zentitle_event(envelope(), "c2ln")
    assert response.status == 422
    assert "ZENTITLE_WEBHOOK_PUBLIC_KEY" in json.loads(response.body)["detail"]


def test_jwk_from_the_account_key_endpoint_works(
    emulator: ZentitleEmulator, storage: MemoryStorage
) -> None:
    provisioner = Provisioner(
        webhook_secrets=["whsec_x"], storage=storage, zentitle_webhook_key=json.dumps(emulator.jwk)
    )
    body = envelope()
    assert provisioner.handle_zentitle_event(body, emulator.sign(body)).status == 200


def test_malformed_key_names_the_setting(storage: MemoryStorage) -> None:
    with pytest.raises(ConfigurationError, match="ZENTITLE_WEBHOOK_PUBLIC_KEY"):
        Provisioner(webhook_secrets=["whsec_x"], storage=storage, zentitle_webhook_key="{nope")


def test_failing_handler_is_500_recorded_and_replayable(
    provisioner: Provisioner, emulator: ZentitleEmulator, storage: MemoryStorage
) -> None:
    calls: list[str] = []

    @provisioner.on_zentitle("entitlement.group.created")
    def flaky_mailer(event: EntitlementGroupCreated) -> None:
        calls.append(event.event_id)
        if len(calls) == 1:
            raise OSError("SMTP server refused the connection")

    body = envelope()
    response = provisioner.handle_zentitle_event(body, emulator.sign(body))
    assert response.status == 500
    assert b"SMTP" not in response.body
    record = storage.get_event("event_1", "zentitle")
    assert record is not None
    assert record.status is EventStatus.FAILED
    assert provisioner.replay("event_1", source="zentitle").status == 200
    assert calls == ["event_1", "event_1"]


def test_not_json_is_400(provisioner: Provisioner, emulator: ZentitleEmulator) -> None:
    response = provisioner.handle_zentitle_event(b"<xml/>", emulator.sign(b"<xml/>"))
    assert response.status == 400
