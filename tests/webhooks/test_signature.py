"""Stripe-Signature verification: interop with stripe-python, tolerance, rotation, tampering."""

from __future__ import annotations

import json

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st

from zentitle_stripe.exceptions import SignatureVerificationError
from zentitle_stripe.signature import compute_signature, verify_stripe_signature
from zentitle_stripe.testing import LineSpec, invoice_paid_event, sign_stripe_payload

SECRET = "whsec_current"
OLD_SECRET = "whsec_previous"
NOW = 1_800_000_000


def clock() -> float:
    return float(NOW)


def _body() -> bytes:
    return json.dumps(invoice_paid_event([LineSpec("price_1", "SKU-1")], created=NOW)).encode()


def test_stripe_python_headers_verify() -> None:
    body, header = sign_stripe_payload(_body(), SECRET, timestamp=NOW)
    assert verify_stripe_signature(body, header, [SECRET], clock=clock) == NOW


def test_our_signature_is_what_stripe_python_expects() -> None:
    body = _body()
    header = f"t={NOW},v1={compute_signature(NOW, body, SECRET)}"
    stripe.WebhookSignature.verify_header(body.decode(), header, SECRET, tolerance=None)


def test_any_v1_matching_any_secret_passes_during_rotation() -> None:
    body = _body()
    header = (
        f"t={NOW},v1={compute_signature(NOW, body, 'whsec_other')},"
        f"v1={compute_signature(NOW, body, OLD_SECRET)}"
    )
    assert verify_stripe_signature(body, header, [SECRET, OLD_SECRET], clock=clock) == NOW
    with pytest.raises(SignatureVerificationError, match="does not match"):
        verify_stripe_signature(body, header, [SECRET], clock=clock)


def test_v0_and_unknown_schemes_are_ignored() -> None:
    body = _body()
    good = compute_signature(NOW, body, SECRET)
    header = f"t={NOW},v0={good},v2=zzz,v1={good}"
    assert verify_stripe_signature(body, header, [SECRET], clock=clock) == NOW
    with pytest.raises(SignatureVerificationError, match="no v1 signature"):
        verify_stripe_signature(body, f"t={NOW},v0={good}", [SECRET], clock=clock)


@pytest.mark.parametrize(
    ("age", "tolerance", "ok"),
    [
        (299, 300, True),
        (300, 300, True),
        (301, 300, False),
        (-3600, 300, True),  # future timestamps pass, as in Stripe's library
        (10_000, 0, True),  # 0 disables the age check
        (10_000, None, True),
        (61, 60, False),
    ],
)
def test_tolerance_uses_the_injected_clock(age: int, tolerance: float | None, ok: bool) -> None:
    body, header = sign_stripe_payload(_body(), SECRET, timestamp=NOW - age)
    if ok:
        verify_stripe_signature(body, header, [SECRET], tolerance=tolerance, clock=clock)
    else:
        with pytest.raises(SignatureVerificationError, match="older than the"):
            verify_stripe_signature(body, header, [SECRET], tolerance=tolerance, clock=clock)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing Stripe-Signature"),
        ("", "missing Stripe-Signature"),
        ("v1=abc", "malformed"),
        ("t=abc,v1=abc", "malformed"),
        ("t=-5,v1=abc", "malformed"),
        ("garbage", "malformed"),
        ("t=" + "1" * 9000, "too long"),
    ],
)
def test_unusable_headers_say_what_is_wrong(header: str | None, message: str) -> None:
    with pytest.raises(SignatureVerificationError, match=message):
        verify_stripe_signature(_body(), header, [SECRET], clock=clock)


def test_no_configured_secret_is_refused() -> None:
    body, header = sign_stripe_payload(_body(), SECRET, timestamp=NOW)
    with pytest.raises(SignatureVerificationError, match="no webhook signing secret"):
        verify_stripe_signature(body, header, [], clock=clock)


def test_error_messages_never_contain_the_secret_or_expected_signature() -> None:
    body = _body()
    expected = compute_signature(NOW, body, SECRET)
    with pytest.raises(SignatureVerificationError) as info:
        verify_stripe_signature(body, f"t={NOW},v1={'0' * 64}", [SECRET], clock=clock)
    assert SECRET not in str(info.value)
    assert expected not in str(info.value)


@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_flipped_body_byte_is_rejected(position: int, flip: int) -> None:
    body, header = sign_stripe_payload(_body(), SECRET, timestamp=NOW)
    index = position % len(body)
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    with pytest.raises(SignatureVerificationError):
        verify_stripe_signature(tampered, header, [SECRET], clock=clock)


@given(position=st.integers(min_value=0), replacement=st.characters(codec="ascii"))
def test_any_changed_signature_or_timestamp_character_is_rejected(
    position: int, replacement: str
) -> None:
    body, header = sign_stripe_payload(_body(), SECRET, timestamp=NOW)
    t_part, v1_part = header.split(",")
    # Change one character of the timestamp digits or of the hex signature.
    targets = [(0, i) for i in range(2, len(t_part))] + [(1, i) for i in range(3, len(v1_part))]
    part, index = targets[position % len(targets)]
    parts = [t_part, v1_part]
    original = parts[part][index]
    if replacement == original:
        replacement = "0" if original != "0" else "1"
    parts[part] = parts[part][:index] + replacement + parts[part][index + 1 :]
    with pytest.raises(SignatureVerificationError):
        verify_stripe_signature(body, ",".join(parts), [SECRET], tolerance=None, clock=clock)


@given(body=st.binary(max_size=2048), timestamp=st.integers(min_value=0, max_value=2**40))
def test_round_trip_for_arbitrary_bytes(body: bytes, timestamp: int) -> None:
    header = f"t={timestamp},v1={compute_signature(timestamp, body, SECRET)}"
    assert verify_stripe_signature(body, header, [SECRET], tolerance=None) == timestamp
