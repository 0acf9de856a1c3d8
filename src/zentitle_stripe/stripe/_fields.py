"""Tolerant readers for Stripe's JSON: a field of the wrong type reads as missing.

Webhook payloads and API objects (`StripeObject.to_dict()`) are plain dicts, read by
[`events`][zentitle_stripe.stripe.events] and [`models`][zentitle_stripe.stripe.models]
alike, so both tolerate the same oddities the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..exceptions import InvalidPayloadError

EMPTY: Mapping[str, Any] = {}


def require_id(obj: Mapping[str, Any], what: str) -> str:
    """The object's `id`; an object without one cannot be acted on at all."""
    value = obj.get("id")
    if not isinstance(value, str) or not value:
        raise InvalidPayloadError(f"the {what} object has no id")
    return value


def as_map(value: Any) -> Mapping[str, Any]:
    return value if type(value) is dict else EMPTY


def as_list(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    """A non-empty string, else `None` (an empty string means "not set" at Stripe)."""
    return value if type(value) is str and value else None


def as_int(value: Any) -> int | None:
    return value if type(value) is int else None  # not bool, a subclass of int


def as_id(value: Any) -> str | None:
    """An id given either as a string or as an expanded object."""
    if type(value) is dict:
        value = value.get("id")
    return value if type(value) is str and value else None


def as_str_map(value: Any) -> Mapping[str, str]:
    """Metadata: Stripe only sends strings, so the dict is usually returned as it is."""
    if type(value) is not dict:
        return EMPTY
    for item in value.values():
        if type(item) is not str:
            return {str(k): v for k, v in value.items() if type(v) is str}
    return value
