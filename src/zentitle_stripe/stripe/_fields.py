"""Tolerant readers for Stripe's JSON: a field of the wrong type reads as missing.

Webhook payloads and API objects (`StripeObject.to_dict()`) are plain dicts, read by
[`events`][zentitle_stripe.stripe.events] and [`models`][zentitle_stripe.stripe.models]
alike, so both tolerate the same oddities the same way.

Tolerance stops where a value would be acted on: an id (stored, locked on, sent to an
API) that is present but unusable, a quantity out of range or a number no database
column holds raises [`InvalidPayloadError`][zentitle_stripe.exceptions.InvalidPayloadError]
naming the field, rather than reading as missing and silently doing less. Text that
cannot be stored (a NUL, a lone surrogate) reads as missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._untrusted import MAX_TIMESTAMP, checked_id, storable_text, usable_text
from ..exceptions import InvalidPayloadError

EMPTY: Mapping[str, Any] = {}

MAX_QUANTITY = 2**31 - 1
"""The largest quantity read: Zentitle2's seat counts are 32-bit."""

ID_RULE = "Stripe ids are printable text of at most 255 characters"


def require_id(obj: Mapping[str, Any], what: str) -> str:
    """The object's `id`; an object without a usable one cannot be acted on at all."""
    value = obj.get("id")
    if not isinstance(value, str) or not value:
        raise InvalidPayloadError(f"the {what} object has no id")
    return checked_id(value, f"the {what} object's id", ID_RULE)


def as_map(value: Any) -> Mapping[str, Any]:
    return value if type(value) is dict else EMPTY


def as_list(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    """A non-empty, storable string, else `None` (an empty string means "not set" at
    Stripe; one with a NUL or a lone surrogate cannot be stored or sent)."""
    return usable_text(value)


def as_time(value: Any) -> int | None:
    """A Unix time a `datetime` can show (1970 to 9999), else `None`."""
    return value if type(value) is int and 0 <= value <= MAX_TIMESTAMP else None


def as_id(value: Any, what: str) -> str | None:
    """An id given either as a string or as an expanded object; `None` when absent.

    An id that is there but unusable raises, naming `what` (e.g. "the invoice's
    subscription"): reading it as absent would silently skip the work it names.
    """
    if type(value) is dict:
        value = value.get("id")
    if type(value) is not str or not value:
        return None
    return checked_id(value, f"{what} id", ID_RULE)


def as_quantity(value: Any, what: str) -> int:
    """A line or item quantity: 1 when absent or not positive; out of range raises."""
    if type(value) is not int or value <= 0:
        return 1
    if value > MAX_QUANTITY:
        raise InvalidPayloadError(
            f"{what} quantity {str(value)[:30]} is out of range: at most {MAX_QUANTITY}"
        )
    return value


def as_str_map(value: Any) -> Mapping[str, str]:
    """Metadata: Stripe only sends strings, so the dict is usually returned as it is;
    entries that are not storable strings are dropped."""
    if type(value) is not dict:
        return EMPTY
    for key, item in value.items():
        if not (storable_text(item) and storable_text(key)):
            return {k: v for k, v in value.items() if storable_text(v) and storable_text(k)}
    return value
