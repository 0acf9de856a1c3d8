"""What a webhook body may bring in: bounded bytes, bounded JSON, storable text and numbers.

A signed body is authentic, not harmless: whoever holds a signing secret (or a bug
between Stripe and here) can send JSON nested thousands deep, ids with a NUL or a lone
surrogate, or numbers no database column holds. Every value that reaches storage, a
lock name or a remote API passes one of these checks first; the ones that fail become
an [`InvalidPayloadError`][zentitle_stripe.exceptions.InvalidPayloadError] naming the
field and what is wrong with it, never a driver's error.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from .exceptions import ConfigurationError, InvalidPayloadError, PayloadTooLargeError

__all__ = [
    "MAX_DEPTH",
    "MAX_ID_LENGTH",
    "MAX_TIMESTAMP",
    "bounded_body",
    "checked_id",
    "checked_int64",
    "finite_number",
    "load_json",
    "shown",
    "storable_text",
    "usable_text",
]

_N = TypeVar("_N", int, float)

MAX_DEPTH = 64
"""How deeply a body's JSON may nest; Stripe's and Zentitle2's events use about ten."""

MAX_ID_LENGTH = 255
"""The longest id accepted; Stripe documents ids of at most 255 characters."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""The range of a signed 64-bit integer: what SQLite's and PostgreSQL's columns hold."""

MAX_TIMESTAMP = 253_402_300_799
"""9999-12-31T23:59:59Z, the latest Unix time a `datetime` can show."""


def bounded_body(payload: bytes | str, limit: int) -> bytes:
    """The body as bytes, refused when over `limit` or when text that is not Unicode."""
    if isinstance(payload, str):
        try:
            payload = payload.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidPayloadError(
                "body is text that cannot be encoded as UTF-8 (a lone surrogate): "
                "pass the raw request bytes, not decoded text"
            ) from None
    body = bytes(payload)
    if len(body) > limit:
        raise PayloadTooLargeError(
            f"body is larger than the {limit} byte limit (ZENTITLE_STRIPE_MAX_BODY_BYTES)",
            diagnosis=f"received at least {len(body)} bytes, limit {limit}",
        )
    return body


def load_json(payload: bytes | str, what: str) -> Any:
    """Parse `payload`, refusing invalid JSON and JSON nested over
    [`MAX_DEPTH`][zentitle_stripe._untrusted.MAX_DEPTH] levels; `what` names the body."""
    try:
        document = json.loads(payload)
    except RecursionError:
        raise _too_deep(what) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPayloadError(
            f"{what} is not valid JSON ({exc.__class__.__name__})",
            diagnosis=_where_json_broke(exc, len(payload)),
        ) from None
    if _too_nested(document, payload):
        raise _too_deep(what)
    return document


def _where_json_broke(exc: ValueError, size: int) -> str:
    """Where the body stopped being JSON, for the log: a position, never its content."""
    if isinstance(exc, json.JSONDecodeError):
        where = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    elif isinstance(exc, UnicodeDecodeError):
        where = f"not UTF-8 at byte {exc.start}"
    else:
        where = type(exc).__name__
    return f"{where}; body {size} bytes"


def _too_deep(what: str) -> InvalidPayloadError:
    return InvalidPayloadError(
        f"{what} nests JSON more than {MAX_DEPTH} levels deep; real events nest about ten"
    )


def _too_nested(document: Any, text: bytes | str = "") -> bool:
    """Whether `document` nests over `MAX_DEPTH`, found without recursion.

    Nesting needs an opening bracket per level, so a `text` (the JSON `document` was read
    from) with at most `MAX_DEPTH` of them cannot nest deeper: a count in C instead of a
    walk of every value, for the common small event.
    """
    if isinstance(text, bytes):
        if text.count(b"{") + text.count(b"[") <= MAX_DEPTH:
            return False
    elif text and text.count("{") + text.count("[") <= MAX_DEPTH:
        return False
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def shown(value: str, limit: int = 40) -> str:
    """`value` quoted for a message: ASCII only (so storable and loggable), shortened."""
    text = ascii(value[:limit])
    return text if len(value) <= limit else f"{text}..."


def _text_problem(value: str) -> str | None:
    """What makes `value` unstorable (a NUL, a lone surrogate), if anything."""
    if "\x00" in value:
        return "contains a NUL character (\\x00), which PostgreSQL cannot store"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        return f"contains a lone surrogate ({ascii(bad)[1:-1]}), which is not valid Unicode"
    return None


def storable_text(value: object) -> bool:
    """Whether `value` is a string that storage and JSON encoders can take."""
    return type(value) is str and _text_problem(value) is None


def usable_text(value: object) -> str | None:
    """A non-empty string that storage and JSON encoders can take, else `None`."""
    return value if type(value) is str and value and storable_text(value) else None


def plain_id(value: str) -> bool:
    """Whether `value` is an id as Stripe sends them, which `checked_id` returns as it
    is: printable ASCII (so no surrogate, no NUL) of 1 to `MAX_ID_LENGTH` characters. A
    fast path: a caller can skip building `checked_id`'s labels."""
    return 0 < len(value) <= MAX_ID_LENGTH and value.isascii() and value.isprintable()


def checked_id(value: object, field: str, rule: str) -> str:
    """`value` if it is a usable id; otherwise raise, naming `field` and what is wrong.

    An id is stored, put in lock names and URLs: it must be non-empty printable text of
    at most [`MAX_ID_LENGTH`][zentitle_stripe._untrusted.MAX_ID_LENGTH] characters. `rule`
    says what a good one looks like.
    """
    if type(value) is not str or not value:
        raise InvalidPayloadError(f"{field} is missing or not a string; {rule}")
    if plain_id(value):
        return value
    problem = _text_problem(value)
    if problem is None and len(value) > MAX_ID_LENGTH:
        problem = f"has {len(value)} characters, more than {MAX_ID_LENGTH}"
    if problem is None and not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        problem = f"contains the control or format character {ascii(bad)[1:-1]}"
    if problem is not None:
        raise InvalidPayloadError(f"{field} {shown(value)} {problem}; {rule}")
    return value


def checked_int64(value: object, field: str) -> int | None:
    """An integer (not a bool) within signed 64 bits, `None` for a non-integer; an
    integer out of that range raises, naming `field`."""
    if type(value) is not int:
        return None
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidPayloadError(
            f"{field} {str(value)[:30]} is out of range: it must fit in a signed 64-bit "
            "integer (a Unix time in seconds)"
        )
    return value


def finite_number(value: _N, name: str, *, positive: bool = False) -> _N:
    """`value` if it is a finite number `>= 0` (`> 0` when `positive`); otherwise raise
    [`ConfigurationError`][zentitle_stripe.exceptions.ConfigurationError] naming `name`.

    `nan` and `inf` pass comparisons silently (`t < now - nan` is false), so a limit set
    to one of them would switch its check off.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        rule = "must be positive" if positive else "must not be negative"
        raise ConfigurationError(f"{name} {rule}, got {value!r}")
    return value
