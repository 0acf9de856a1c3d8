"""Stripe's webhook signature (`Stripe-Signature`), verified without any Stripe object.

The ``Stripe-Signature`` header is ``t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]``. Each ``v1``
is the hex HMAC-SHA256 of ``f"{t}.".encode() + raw_body`` keyed with an endpoint secret.
A request is genuine when any ``v1`` matches any configured secret (secret rotation
sends one ``v1`` per live secret) and ``t`` is not older than the tolerance. Every other
scheme (``v0`` in test mode, future ones) is ignored so it cannot downgrade the check.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable, Sequence

from ..exceptions import SignatureVerificationError

__all__ = ["DEFAULT_TOLERANCE", "compute_signature", "verify_stripe_signature"]

DEFAULT_TOLERANCE = 300
"""Seconds a signature stays valid; Stripe's own default."""

_MAX_HEADER_LENGTH = 8192
_MAX_TIMESTAMP_DIGITS = 15


def compute_signature(timestamp: int | str, payload: bytes, secret: str | bytes) -> str:
    """The hex ``v1`` signature Stripe sends for ``payload`` at ``timestamp``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def verify_stripe_signature(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str | bytes],
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    clock: Callable[[], float] = time.time,
) -> int:
    """Check ``header`` against the exact bytes received and return its timestamp.

    ``tolerance`` of ``None`` or ``0`` disables the age check (like stripe-python);
    timestamps in the future are accepted, as Stripe does, since clocks drift. A
    tolerance that is negative, ``nan`` or infinite refuses every signature (it would
    otherwise switch the check off unnoticed). Raises
    [`SignatureVerificationError`][zentitle_stripe.exceptions.SignatureVerificationError]
    with a reason safe to send back.
    """
    if not header:
        raise SignatureVerificationError(
            "missing Stripe-Signature header: send the header Stripe set on the request"
        )
    if len(header) > _MAX_HEADER_LENGTH:
        raise SignatureVerificationError("Stripe-Signature header is too long")
    if not secrets:
        raise SignatureVerificationError("no webhook signing secret is configured")
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        raise SignatureVerificationError(
            f"the signature age check is misconfigured (tolerance {tolerance!r}): set "
            "ZENTITLE_STRIPE_TOLERANCE to a finite number of seconds (0 disables the check)"
        )

    timestamp_text, candidates = _parse_header(header)
    signed = timestamp_text.encode() + b"." + payload
    matched = False
    for secret in secrets:
        key = secret.encode() if isinstance(secret, str) else secret
        expected = hmac.digest(key, signed, "sha256").hex().encode()
        for candidate in candidates:
            # Keep comparing after a match: the time spent must not depend on the input.
            matched |= hmac.compare_digest(expected, candidate)
    timestamp = int(timestamp_text)
    if not matched:
        raise SignatureVerificationError(
            "signature does not match: check that STRIPE_WEBHOOK_SECRET is this endpoint's "
            "signing secret and that the body reaches the library unmodified",
            diagnosis=_mismatch(len(candidates), len(secrets), timestamp, clock, len(payload)),
        )

    if tolerance and timestamp < clock() - tolerance:
        raise SignatureVerificationError(
            f"signature timestamp is older than the {tolerance:g} s tolerance "
            "(a replayed request, or this server's clock is wrong)",
            diagnosis=f"timestamp age {_age(timestamp, clock)}, tolerance {tolerance:g} s",
        )
    return timestamp


def _age(timestamp: int, clock: Callable[[], float]) -> str:
    """How old the signed timestamp is, for the log: a clock that is off shows here."""
    age = clock() - timestamp
    return f"{age:.0f} s" if age >= 0 else f"{-age:.0f} s in the future"


def _mismatch(
    signatures: int, secrets: int, timestamp: int, clock: Callable[[], float], size: int
) -> str:
    """The log's account of a mismatch: counts and ages only, never a value."""
    plural = "" if secrets == 1 else "s"
    return (
        f"no v1 signature matched any of {secrets} secret{plural} ({signatures} v1 in the "
        f"header); timestamp age {_age(timestamp, clock)}; body {size} bytes"
    )


def _parse_header(header: str) -> tuple[str, list[bytes]]:
    """The header's first `t` and every `v1`; other schemes are dropped, not trusted."""
    timestamp_text: str | None = None
    candidates: list[bytes] = []
    for item in header.split(","):
        scheme, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if scheme == "t" and timestamp_text is None:
            timestamp_text = value
        elif scheme == "v1":
            candidates.append(value.encode("ascii", "replace"))
    if timestamp_text is None:
        raise SignatureVerificationError(
            "malformed Stripe-Signature header: expected 't=<unix time>,v1=<signature>'"
        )
    # str.isdigit() is also true for other scripts' digits ('\u0663', '\u00b3'), which
    # int() reads or refuses: only ASCII digits are a Unix time.
    ascii_digits = timestamp_text.isascii() and timestamp_text.isdigit()
    if not ascii_digits or len(timestamp_text) > _MAX_TIMESTAMP_DIGITS:
        raise SignatureVerificationError(
            "malformed Stripe-Signature header: its t is not a Unix time in ASCII digits "
            f"(at most {_MAX_TIMESTAMP_DIGITS}); expected 't=<unix time>,v1=<signature>'"
        )
    if not candidates:
        raise SignatureVerificationError(
            "Stripe-Signature header has no v1 signature (v0 and other schemes are ignored)"
        )
    return timestamp_text, candidates
