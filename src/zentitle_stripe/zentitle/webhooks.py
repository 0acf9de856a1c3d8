"""Zentitle2 outgoing webhooks: verify `N-Signature` and parse the event envelope.

Zentitle2 signs the raw body with the account's 2048-bit RSA key (PKCS#1 v1.5, SHA-256)
and sends the standard-base64 signature in `N-Signature`; there is no timestamp, so
replays are stopped by deduplicating on `eventId`. Envelope and payload keys are
matched case-insensitively because the samples disagree on casing (camelCase on the
wire, PascalCase in the .NET models).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .._untrusted import INT64_MAX, INT64_MIN, checked_id, load_json, usable_text
from ..exceptions import ConfigurationError, InvalidPayloadError, SignatureVerificationError
from .models import parse_datetime

__all__ = [
    "EVENT_TYPES",
    "EntitlementCreated",
    "EntitlementGroupCreated",
    "EntitlementRenewed",
    "EntitlementUpdated",
    "ZentitleEvent",
    "ZentitleWebhookKey",
    "parse_zentitle_event",
]

_SETTING = "ZENTITLE_WEBHOOK_PUBLIC_KEY"
_MIN_KEY_BITS = 2048
_MAX_SIGNATURE_LENGTH = 2048
_ID_RULE = (
    "Zentitle2 sends printable text of at most 255 characters, so this body was not "
    "sent by Zentitle2 as it is"
)


def _b64url_int(value: str) -> int:
    text = value.strip().replace("+", "-").replace("/", "_").rstrip("=")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if not raw:
        raise ValueError("empty")
    return int.from_bytes(raw, "big")


@attrs.frozen(repr=False)
class ZentitleWebhookKey:
    """The account's public key, as used to check `N-Signature`."""

    public_key: rsa.RSAPublicKey

    @classmethod
    def from_config(cls, value: str) -> ZentitleWebhookKey:
        """Accept the UI's base64url "RSA Modulus" (exponent AQAB) or the JWK JSON from
        `GET /api/v1/account/key`; raise
        [`ConfigurationError`][zentitle_stripe.exceptions.ConfigurationError] otherwise."""
        text = value.strip()
        try:
            if text.startswith("{"):
                jwk = json.loads(text)
                if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
                    raise ValueError('the JWK must have "kty": "RSA"')
                n, e = _b64url_int(str(jwk["n"])), _b64url_int(str(jwk.get("e", "AQAB")))
            else:
                n, e = _b64url_int(text), 65537
            if n.bit_length() < _MIN_KEY_BITS:
                raise ValueError(
                    f"the modulus has {n.bit_length()} bits, expected {_MIN_KEY_BITS} "
                    "(was it pasted in full?)"
                )
            key = rsa.RSAPublicNumbers(e, n).public_key()
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ConfigurationError(
                f"{_SETTING} is not a usable RSA public key ({exc}): set it to the RSA "
                "modulus shown in the Zentitle2 UI, or to the JSON of GET /api/v1/account/key"
            ) from None
        return cls(key)

    def __repr__(self) -> str:
        n = self.public_key.public_numbers().n
        return f"ZentitleWebhookKey(rsa-{n.bit_length()}, n={format(n, 'x')[:12]}...)"

    def verify(self, payload: bytes, signature: str | None) -> None:
        """Check `signature` (the `N-Signature` header) against the exact body bytes.

        Raises [`SignatureVerificationError`][zentitle_stripe.exceptions.SignatureVerificationError]
        with a reason safe to send back.
        """
        if not signature or not signature.strip():
            raise SignatureVerificationError(
                "missing N-Signature header: send the header Zentitle2 set on the request"
            )
        text = signature.strip()
        if len(text) > _MAX_SIGNATURE_LENGTH:
            raise SignatureVerificationError("N-Signature header is too long")
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        # Re-encoding rejects non-canonical spellings (padding bits) of a valid signature.
        if not raw or base64.b64encode(raw).decode() != text:
            raise SignatureVerificationError("N-Signature header is not standard base64")
        try:
            self.public_key.verify(raw, payload, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise SignatureVerificationError(
                "N-Signature does not match the body: check ZENTITLE_WEBHOOK_PUBLIC_KEY and "
                "verify the raw request bytes, before any JSON parsing",
                diagnosis=(
                    f"a {len(raw)}-byte RSA-SHA256 signature did not verify with the "
                    f"configured {self.public_key.key_size}-bit public key; body "
                    f"{len(payload)} bytes"
                ),
            ) from None


def _lower_camel(key: str) -> str:
    return key[:1].lower() + key[1:]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _number(value: object) -> int | None:
    """An integer within signed 64 bits (not a bool), else `None`."""
    return value if type(value) is int and INT64_MIN <= value <= INT64_MAX else None


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


# A typed field is read by its annotation; anything malformed becomes None.
_READERS: Mapping[str, Callable[[object], Any]] = {
    "str | None": usable_text,
    "int | None": _number,
    "bool | None": _flag,
    "datetime | None": parse_datetime,
}
_FieldRead = tuple[str, str, Callable[[object], Any]]  # (field, payload key, reader)


@attrs.frozen(kw_only=True)
class ZentitleEvent:
    """A Zentitle2 webhook event; known codes parse to a subclass with typed fields.

    `payload` keys are lower-camel (`OrderRefId` becomes `orderRefId`); the `event_code`
    is lower-case. A subclass's own fields are read from the payload key of the same
    name in camelCase (`order_ref_id` from `orderRefId`) by their annotated type; its
    `resource_field` falls back to the envelope's `resourceId`.
    """

    event_id: str
    event_code: str
    event_date: datetime | None
    resource_id: str | None
    call_attempt: int
    payload: Mapping[str, Any]

    code: ClassVar[str] = ""
    resource_field: ClassVar[str] = ""
    payload_fields: ClassVar[tuple[str, ...]] = ()
    """The payload keys this type reads into its own fields."""
    _readers: ClassVar[tuple[_FieldRead, ...]] = ()

    @classmethod
    def _typed(cls, payload: Mapping[str, Any], resource_id: str | None) -> dict[str, Any]:
        """The subclass's own fields from the normalised payload."""
        values = {name: read(payload.get(key)) for name, key, read in cls._readers}
        if cls.resource_field and values[cls.resource_field] is None:
            values[cls.resource_field] = resource_id
        return values


_E = TypeVar("_E", bound=type[ZentitleEvent])


def _typed_event(cls: _E) -> _E:
    """Work out once how `cls` reads its own fields, and which payload keys they are."""
    base = {field.name for field in attrs.fields(ZentitleEvent)}
    cls._readers = tuple(
        (field.name, _camel(field.name), _READERS[str(field.type)])
        for field in attrs.fields(cls)
        if field.name not in base
    )
    cls.payload_fields = tuple(key for _, key, _ in cls._readers)
    return cls


@_typed_event
@attrs.frozen(kw_only=True)
class EntitlementGroupCreated(ZentitleEvent):
    """`entitlement.group.created`: a group (an order's licences) was made."""

    code: ClassVar[str] = "entitlement.group.created"
    resource_field: ClassVar[str] = "entitlement_group_id"

    entitlement_group_id: str | None
    order_ref_id: str | None
    customer_id: str | None
    created_date: datetime | None


@_typed_event
@attrs.frozen(kw_only=True)
class EntitlementCreated(ZentitleEvent):
    """`entitlement.created`: one entitlement of a group was made."""

    code: ClassVar[str] = "entitlement.created"
    resource_field: ClassVar[str] = "entitlement_id"

    entitlement_id: str | None
    entitlement_group_id: str | None
    license_type: str | None
    created_date: datetime | None


@_typed_event
@attrs.frozen(kw_only=True)
class EntitlementUpdated(ZentitleEvent):
    """`entitlement.updated`: seats, expiry or the disabled flag changed."""

    code: ClassVar[str] = "entitlement.updated"
    resource_field: ClassVar[str] = "entitlement_id"

    entitlement_id: str | None
    entitlement_group_id: str | None
    expiry_date: datetime | None
    seat_count: int | None
    disabled: bool | None
    updated_date: datetime | None


@_typed_event
@attrs.frozen(kw_only=True)
class EntitlementRenewed(ZentitleEvent):
    """`entitlement.renewed`: the expiry moved by one plan period."""

    code: ClassVar[str] = "entitlement.renewed"
    resource_field: ClassVar[str] = "entitlement_id"

    entitlement_id: str | None
    renewed_at: datetime | None
    previous_expiry_date: datetime | None
    new_expiry_date: datetime | None


EVENT_TYPES: Mapping[str, type[ZentitleEvent]] = MappingProxyType(
    {
        cls.code: cls
        for cls in (
            EntitlementGroupCreated,
            EntitlementCreated,
            EntitlementUpdated,
            EntitlementRenewed,
        )
    }
)
"""Event code -> the [`ZentitleEvent`][zentitle_stripe.zentitle.webhooks.ZentitleEvent]
subclass [`parse_zentitle_event`][zentitle_stripe.zentitle.webhooks.parse_zentitle_event]
returns."""

_KNOWN_PAYLOAD_KEYS = {k.lower(): k for cls in EVENT_TYPES.values() for k in cls.payload_fields}


def _normalise_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Known keys get their canonical spelling in any casing; others are lower-camelled."""
    result: dict[str, Any] = {}
    for key, value in payload.items():
        name = _KNOWN_PAYLOAD_KEYS.get(key.lower(), _lower_camel(key))
        result.setdefault(name, value)
    return result


def parse_zentitle_event(payload: bytes) -> ZentitleEvent:
    """The event in a (verified) webhook body.

    Requires a non-empty `eventId` and `eventCode` (printable, at most 255 characters:
    they are stored), else raises
    [`InvalidPayloadError`][zentitle_stripe.exceptions.InvalidPayloadError] saying what is
    wrong, as for JSON nested too deeply; everything else is optional and a malformed
    optional field (text with a NUL, a number beyond 64 bits) becomes `None`
    (`callAttempt` defaults to 1).
    """
    document = load_json(payload, "Zentitle2 webhook body")
    if not isinstance(document, dict):
        raise InvalidPayloadError("Zentitle2 webhook body is not a JSON object")
    envelope: dict[str, Any] = {}
    for key, value in document.items():
        envelope.setdefault(key.lower(), value)
    event_id, code = envelope.get("eventid"), envelope.get("eventcode")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidPayloadError("Zentitle2 webhook body has no eventId")
    event_id = checked_id(event_id, "Zentitle2 webhook eventId", _ID_RULE)
    if not isinstance(code, str) or not code:
        raise InvalidPayloadError("Zentitle2 webhook body has no eventCode")
    code = checked_id(code, "Zentitle2 webhook eventCode", _ID_RULE)
    body = envelope.get("payload")
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidPayloadError("Zentitle2 webhook 'payload' is not a JSON object")
    attempt = _number(envelope.get("callattempt"))
    resource = usable_text(envelope.get("resourceid"))
    normalised = _normalise_payload(body)
    cls = EVENT_TYPES.get(code.lower(), ZentitleEvent)
    return cls(
        event_id=event_id,
        event_code=code.lower(),
        event_date=parse_datetime(envelope.get("eventdate")),
        resource_id=resource,
        call_attempt=1 if attempt is None else attempt,
        payload=MappingProxyType(normalised),
        **cls._typed(normalised, resource),
    )
