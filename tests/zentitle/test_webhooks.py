"""N-Signature verification and the tolerant Zentitle2 event parser."""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zentitle_stripe.exceptions import (
    ConfigurationError,
    InvalidPayloadError,
    SignatureVerificationError,
)
from zentitle_stripe.testing import ZentitleEmulator
from zentitle_stripe.zentitle_webhooks import (
    EVENT_TYPES,
    EntitlementCreated,
    EntitlementGroupCreated,
    EntitlementRenewed,
    EntitlementUpdated,
    ZentitleEvent,
    ZentitleWebhookKey,
    parse_zentitle_event,
)

EMULATOR = ZentitleEmulator()
KEY = ZentitleWebhookKey.from_config(EMULATOR.public_key_modulus)
BODY = json.dumps(
    {
        "eventId": "event_abc",
        "eventDate": "2025-06-06T11:39:22.7393261Z",
        "eventCode": "entitlement.group.created",
        "resourceId": "egr_1",
        "callAttempt": 2,
        "payload": {
            "entitlementGroupId": "egr_1",
            "createdDate": "2025-06-06T11:39:22Z",
            "orderRefId": "in_1",
            "customerId": "cust_1",
        },
    }
).encode()
SIGNATURE = EMULATOR.sign(BODY)


def test_key_from_modulus_and_jwk() -> None:
    KEY.verify(BODY, SIGNATURE)
    ZentitleWebhookKey.from_config(json.dumps(EMULATOR.jwk)).verify(BODY, SIGNATURE)
    padded = EMULATOR.public_key_modulus + "=" * (-len(EMULATOR.public_key_modulus) % 4)
    ZentitleWebhookKey.from_config(f"  {padded}\n").verify(BODY, SIGNATURE)
    assert len(repr(KEY)) < 60
    assert repr(KEY).startswith("ZentitleWebhookKey(rsa-2048")


@pytest.mark.parametrize(
    "value",
    ["", "not base64 at all!", "AQAB", '{"kty": "EC", "n": "x"}', '{"kty": "RSA"}', "{broken"],
)
def test_malformed_key_names_the_setting(value: str) -> None:
    with pytest.raises(ConfigurationError, match="ZENTITLE_WEBHOOK_PUBLIC_KEY"):
        ZentitleWebhookKey.from_config(value)


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "missing N-Signature"),
        ("", "missing N-Signature"),
        ("%%%not-base64%%%", "not standard base64"),
        (base64.b64encode(b"x" * 256).decode(), "does not match"),
    ],
)
def test_bad_signatures_say_why(signature: str | None, reason: str) -> None:
    with pytest.raises(SignatureVerificationError, match=reason):
        KEY.verify(BODY, signature)


def test_body_must_be_the_raw_bytes() -> None:
    reserialised = json.dumps(json.loads(BODY), indent=1).encode()
    with pytest.raises(SignatureVerificationError, match="does not match"):
        KEY.verify(reserialised, SIGNATURE)


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_flipped_body_byte_is_rejected(position: int, bit: int) -> None:
    body = bytearray(BODY)
    body[position % len(body)] ^= 1 << bit
    with pytest.raises(SignatureVerificationError):
        KEY.verify(bytes(body), SIGNATURE)


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_flipped_signature_byte_is_rejected(position: int, bit: int) -> None:
    raw = bytearray(base64.b64decode(SIGNATURE))
    raw[position % len(raw)] ^= 1 << bit
    with pytest.raises(SignatureVerificationError):
        KEY.verify(BODY, base64.b64encode(bytes(raw)).decode())


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0), replacement=st.characters(codec="ascii"))
def test_any_changed_header_character_is_rejected(position: int, replacement: str) -> None:
    index = position % len(SIGNATURE)
    if SIGNATURE[index] == replacement:
        return
    header = SIGNATURE[:index] + replacement + SIGNATURE[index + 1 :]
    with pytest.raises(SignatureVerificationError):
        KEY.verify(BODY, header)


def test_parse_group_created() -> None:
    event = parse_zentitle_event(BODY)
    assert isinstance(event, EntitlementGroupCreated)
    assert (event.event_id, event.event_code, event.resource_id) == (
        "event_abc",
        "entitlement.group.created",
        "egr_1",
    )
    assert event.call_attempt == 2
    assert event.event_date == datetime(2025, 6, 6, 11, 39, 22, 739326, tzinfo=timezone.utc)
    assert (event.entitlement_group_id, event.order_ref_id, event.customer_id) == (
        "egr_1",
        "in_1",
        "cust_1",
    )
    assert event.created_date == datetime(2025, 6, 6, 11, 39, 22, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("code", "payload", "expected"),
    [
        (
            "entitlement.created",
            {"EntitlementId": "ent_1", "licenseType": "subscription"},
            {"entitlement_id": "ent_1", "license_type": "subscription"},
        ),
        (
            "entitlement.updated",
            {"seatCount": 5, "disabled": True, "expiryDate": None},
            {"entitlement_id": "ent_res", "seat_count": 5, "disabled": True, "expiry_date": None},
        ),
        (
            "entitlement.renewed",
            {"entitlementId": "ent_1", "NEWEXPIRYDATE": "2026-01-01T00:00:00Z"},
            {"new_expiry_date": datetime(2026, 1, 1, tzinfo=timezone.utc)},
        ),
    ],
)
def test_parse_typed_events(code: str, payload: dict[str, Any], expected: dict[str, Any]) -> None:
    body = {"EventId": "event_1", "EventCode": code, "ResourceId": "ent_res", "Payload": payload}
    event = parse_zentitle_event(json.dumps(body).encode())
    assert type(event) is EVENT_TYPES[code]
    for name, value in expected.items():
        assert getattr(event, name) == value


def test_event_types_mapping() -> None:
    assert EVENT_TYPES["entitlement.group.created"] is EntitlementGroupCreated
    assert EVENT_TYPES["entitlement.created"] is EntitlementCreated
    assert EVENT_TYPES["entitlement.updated"] is EntitlementUpdated
    assert EVENT_TYPES["entitlement.renewed"] is EntitlementRenewed


def test_unknown_code_is_a_plain_event_with_lower_camel_payload() -> None:
    body = {
        "eventId": "e",
        "eventCode": "customer.created",
        "payload": {"CustomerId": "c", "Name": "n"},
    }
    event = parse_zentitle_event(json.dumps(body).encode())
    assert type(event) is ZentitleEvent
    assert dict(event.payload) == {"customerId": "c", "name": "n"}
    assert (event.call_attempt, event.event_date, event.resource_id) == (1, None, None)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"eventCode": "x"}', "no eventId"),
        (b'{"eventId": "e", "eventCode": ""}', "no eventCode"),
        (b'{"eventId": "e", "eventCode": "x", "payload": [1]}', "'payload' is not a JSON object"),
    ],
)
def test_invalid_payloads_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidPayloadError, match=reason):
        parse_zentitle_event(body)


def recase(key: str, flips: list[bool]) -> str:
    padded = flips + [False] * len(key)
    return "".join(
        c.upper() if flip else c.lower() for c, flip in zip(key, padded[: len(key)], strict=True)
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=5,
)


@settings(max_examples=100, deadline=None)
@given(
    flips=st.lists(st.booleans(), min_size=20, max_size=20),
    extra=st.dictionaries(
        st.text(min_size=1).filter(
            lambda k: (
                k.lower()
                not in {"eventid", "eventcode", "eventdate", "resourceid", "callattempt", "payload"}
            )
        ),
        json_values,
        max_size=4,
    ),
    date=st.one_of(st.none(), st.text(), st.integers()),
    attempt=json_values,
)
def test_envelope_parser_tolerates_casing_and_junk(
    flips: list[bool], extra: dict[str, Any], date: Any, attempt: Any
) -> None:
    document: dict[str, Any] = {
        recase("eventId", flips): "event_1",
        recase("eventCode", flips[3:]): "entitlement.group.created",
        recase("eventDate", flips[5:]): date,
        recase("callAttempt", flips[7:]): attempt,
        recase("payload", flips[9:]): {recase("orderRefId", flips[11:]): "in_1"},
        **extra,
    }
    event = parse_zentitle_event(json.dumps(document).encode())
    assert isinstance(event, EntitlementGroupCreated)
    assert event.event_id == "event_1"
    assert event.order_ref_id == "in_1"
    assert isinstance(event.call_attempt, int)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_parser_only_raises_invalid_payload(body: bytes) -> None:
    with contextlib.suppress(InvalidPayloadError):
        parse_zentitle_event(body)


WEBHOOK_NAMES = [
    "EVENT_TYPES",
    "EntitlementCreated",
    "EntitlementGroupCreated",
    "EntitlementRenewed",
    "EntitlementUpdated",
    "ZentitleEvent",
    "ZentitleWebhookKey",
    "parse_zentitle_event",
]


@pytest.mark.parametrize(
    ("module", "old", "names"),
    [
        ("zentitle_stripe.zentitle.webhooks", "zentitle_stripe.zentitle_webhooks", WEBHOOK_NAMES),
        (
            "zentitle_stripe.zentitle.router",
            "zentitle_stripe.zentitle_router",
            ["ANY", "Router", "ZentitleHandler"],
        ),
    ],
)
def test_public_names_and_the_alias_at_the_old_home(
    module: str, old: str, names: list[str]
) -> None:
    new_module, old_module = importlib.import_module(module), importlib.import_module(old)
    assert new_module.__all__ == names
    assert old_module.__all__ == names
    for name in names:
        assert getattr(old_module, name) is getattr(new_module, name)
