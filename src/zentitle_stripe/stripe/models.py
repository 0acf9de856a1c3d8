"""Typed results of the Stripe API calls, and the readers that build them from JSON.

The gateway hands these out instead of `StripeObject`s, so callers (and fakes) deal in
small frozen values whose fields are checked once, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ._fields import as_map, as_str, as_str_map, require_id

__all__ = [
    "Account",
    "Customer",
    "KeyMode",
    "Price",
    "Product",
    "WebhookEndpoint",
    "key_mode",
]
# mask_key and the parse_* readers are for the gateway, not part of the public API.

KeyMode = Literal["test", "live", "unknown"]

_KEY_PREFIXES = ("sk_test_", "rk_test_", "sk_live_", "rk_live_")


def key_mode(api_key: str) -> KeyMode:
    """Whether `api_key` is a test or live secret/restricted key, from its prefix."""
    if api_key.startswith(("sk_test_", "rk_test_")):
        return "test"
    if api_key.startswith(("sk_live_", "rk_live_")):
        return "live"
    return "unknown"


def mask_key(api_key: str) -> str:
    """`sk_test_****1234`: enough to tell keys apart in logs, useless to an attacker."""
    prefix = next((p for p in _KEY_PREFIXES if api_key.startswith(p)), "")
    tail = api_key[-4:] if len(api_key) - len(prefix) >= 12 else ""
    return f"{prefix}****{tail}"


@attrs.frozen
class Price:
    """A Stripe Price: `metadata['offering_sku']` or `lookup_key` names the offering."""

    id: str
    product_id: str | None
    metadata: Mapping[str, str]
    lookup_key: str | None
    active: bool
    type: str | None
    """`recurring` or `one_time`."""
    recurring_interval: str | None
    """`day`, `week`, `month` or `year`; `None` for one-time prices."""
    recurring_interval_count: int | None


@attrs.frozen
class Product:
    """A Stripe Product; fetched only to explain a SKU misplaced on the Product."""

    id: str
    name: str | None
    metadata: Mapping[str, str]


@attrs.frozen
class Customer:
    """A Stripe Customer; `deleted` is true for a deleted customer (Stripe keeps a stub)."""

    id: str
    email: str | None
    name: str | None
    metadata: Mapping[str, str]
    deleted: bool


@attrs.frozen
class Account:
    """The account a key belongs to (`GET /v1/account`): proof the key works."""

    id: str
    livemode: bool | None


@attrs.frozen
class WebhookEndpoint:
    """A webhook endpoint; `secret` is only ever set in the response that created it."""

    id: str
    url: str
    enabled_events: tuple[str, ...]
    status: str | None
    api_version: str | None
    secret: str | None = attrs.field(default=None, repr=False)


def parse_price(data: Mapping[str, Any]) -> Price:
    recurring = as_map(data.get("recurring"))
    product = data.get("product")
    if isinstance(product, dict):
        product = product.get("id")
    count = recurring.get("interval_count")
    return Price(
        id=require_id(data, "price"),
        product_id=as_str(product),
        metadata=as_str_map(data.get("metadata")),
        lookup_key=as_str(data.get("lookup_key")),
        active=data.get("active") is not False,
        type=as_str(data.get("type")),
        recurring_interval=as_str(recurring.get("interval")),
        recurring_interval_count=count if isinstance(count, int) else None,
    )


def parse_product(data: Mapping[str, Any]) -> Product:
    return Product(
        id=require_id(data, "product"),
        name=as_str(data.get("name")),
        metadata=as_str_map(data.get("metadata")),
    )


def parse_customer(data: Mapping[str, Any]) -> Customer:
    return Customer(
        id=require_id(data, "customer"),
        email=as_str(data.get("email")),
        name=as_str(data.get("name")),
        metadata=as_str_map(data.get("metadata")),
        deleted=data.get("deleted") is True,
    )


def parse_account(data: Mapping[str, Any]) -> Account:
    livemode = data.get("livemode")
    return Account(
        id=require_id(data, "account"),
        livemode=livemode if isinstance(livemode, bool) else None,
    )


def parse_endpoint(data: Mapping[str, Any]) -> WebhookEndpoint:
    events = data.get("enabled_events")
    return WebhookEndpoint(
        id=require_id(data, "webhook endpoint"),
        url=str(data.get("url") or ""),
        enabled_events=tuple(e for e in events if isinstance(e, str))
        if isinstance(events, list)
        else (),
        status=as_str(data.get("status")),
        api_version=as_str(data.get("api_version")),
        secret=as_str(data.get("secret")),
    )
