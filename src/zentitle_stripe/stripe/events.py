"""Stripe's webhook events, read version-tolerantly: the Stripe side of intake.

The payload shape follows the webhook endpoint's ``api_version``, fixed when the endpoint
was created, so one deployment can receive either generation:

- old shape (``2025-02-24.acacia`` and earlier): ``invoice.subscription``, line ``type``,
  line ``price`` as a full Price *with* ``metadata``;
- basil and later (``2025-03-31.basil`` ... ``endive``): ``invoice.parent.subscription_details``,
  line ``parent.subscription_item_details``, line ``pricing.price_details.price`` as an *id*.

The parsers read plain dicts (never ``StripeObject``) and look for whichever fields are
present, so they do not need to know the version;
[`StripeEvent.api_version`][zentitle_stripe.stripe.events.StripeEvent.api_version] is kept
for the record. Missing and ``null`` fields are treated alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .._untrusted import (
    INT64_MAX,
    INT64_MIN,
    checked_id,
    checked_int64,
    load_json,
    plain_id,
    shown,
)
from ..exceptions import InvalidPayloadError
from ._fields import (
    EMPTY,
    ID_RULE,
    as_id,
    as_list,
    as_map,
    as_quantity,
    as_str,
    as_str_map,
    as_time,
    require_id,
)

__all__ = [
    "Invoice",
    "InvoiceLine",
    "StripeEvent",
    "Subscription",
    "SubscriptionItem",
    "parse_event",
    "parse_invoice",
    "parse_invoice_line",
    "parse_subscription",
]

_ENVELOPE_RULE = f"{ID_RULE}, so this body was not sent by Stripe as it is"


@attrs.frozen
class StripeEvent:
    """The envelope of a verified Stripe event; ``object`` is ``data.object`` as a dict."""

    id: str
    type: str
    created: int | None
    api_version: str | None
    livemode: bool
    object: Mapping[str, Any] = attrs.field(repr=False)
    thin: bool = False
    """A ``v2.core.event`` notification: it carries a reference, not the object."""


@attrs.frozen
class InvoiceLine:
    """One invoice line; price metadata is only inline in the old payload shape."""

    id: str
    price_id: str | None
    product_id: str | None
    quantity: int
    period_start: int | None
    period_end: int | None
    subscription_id: str | None
    subscription_item_id: str | None
    is_subscription: bool
    """The line bills a subscription item (not a one-off invoice item)."""
    proration: bool
    price_metadata: Mapping[str, str] | None = attrs.field(default=None, repr=False)
    """``None`` when the payload does not carry the Price (basil and later)."""
    price_lookup_key: str | None = None


@attrs.frozen
class Invoice:
    """An ``invoice.paid`` object, reduced to what provisioning needs."""

    id: str
    customer_id: str | None
    customer_email: str | None
    customer_name: str | None
    subscription_id: str | None
    billing_reason: str | None
    status: str | None
    lines: tuple[InvoiceLine, ...]
    lines_has_more: bool
    lines_readable: bool = True
    """False when the payload has no readable `lines.data` list: a malformed invoice,
    never one with nothing to license."""
    amount_paid: int | None = None
    """What was paid (smallest currency unit); 0 for a trial's first invoice, `None`
    when the payload does not say."""

    @property
    def is_subscription_invoice(self) -> bool:
        """Whether the invoice bills a subscription (and so may grant a licence)."""
        return self.subscription_id is not None

    @property
    def period_end(self) -> int | None:
        """The latest service-period end over the subscription lines."""
        ends = [line.period_end for line in self.lines if line.is_subscription and line.period_end]
        return max(ends) if ends else None


@attrs.frozen
class SubscriptionItem:
    """A subscription item; the Price (with metadata) is inline at every API version."""

    id: str
    price_id: str | None
    product_id: str | None
    quantity: int
    price_metadata: Mapping[str, str] | None = attrs.field(default=None, repr=False)
    price_lookup_key: str | None = None
    current_period_end: int | None = None


@attrs.frozen
class Subscription:
    """A Subscription object, as in ``customer.subscription.*`` events or the API."""

    id: str
    customer_id: str | None
    status: str | None
    metadata: Mapping[str, str]
    items: tuple[SubscriptionItem, ...]
    items_has_more: bool
    ended_at: int | None
    cancellation_reason: str | None
    trial_end: int | None = None
    """When the trial ends (or ended); `None` for a subscription never on trial."""
    cancel_at_period_end: bool = False
    """A cancellation is scheduled for the period's end (nothing changes until then)."""
    pause_collection: str | None = None
    """`pause_collection.behavior` when payment collection is paused (the status stays
    `active`: Stripe's way to offer the service for free for a while), else `None`."""
    current_period_start: int | None = None
    """The current period's start: top-level before basil, on the items since."""


def parse_event(payload: bytes | str) -> StripeEvent:
    """Parse a verified body into a [`StripeEvent`][zentitle_stripe.stripe.events.StripeEvent].

    Anything that is not a Stripe event raises `InvalidPayloadError` saying what is wrong,
    and so does an envelope storage could not record: an `id` or `type` that is not
    printable text of at most 255 characters, a `created` beyond 64 bits, JSON nested
    more than [`MAX_DEPTH`][zentitle_stripe._untrusted.MAX_DEPTH] levels.
    """
    data = load_json(payload, "body")
    if not isinstance(data, dict):
        raise InvalidPayloadError("body is not a JSON object, so it is not a Stripe event")
    kind = data.get("object")
    event_id = data.get("id")
    if kind not in ("event", "v2.core.event") or not isinstance(event_id, str):
        raise InvalidPayloadError(
            'body is not a Stripe event: expected an object with "object": "event" and an id'
        )
    if not plain_id(event_id):  # the label is built only for a refusal
        event_id = checked_id(event_id, "event id", _ENVELOPE_RULE)
    event_type = data.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise InvalidPayloadError(f"event {event_id} has no type")
    if not plain_id(event_type):
        event_type = checked_id(event_type, f"event {event_id}: type", _ENVELOPE_RULE)
    thin = kind == "v2.core.event"
    obj: Any = EMPTY
    if not thin:
        event_data = data.get("data")
        obj = event_data.get("object") if isinstance(event_data, dict) else None
        if not isinstance(obj, dict):
            raise InvalidPayloadError(f"event {event_id} has no data.object")
    created = data.get("created")
    return StripeEvent(
        id=event_id,
        type=event_type,
        created=created
        if type(created) is int and INT64_MIN <= created <= INT64_MAX
        else checked_int64(created, f"event {event_id}: created"),
        api_version=as_str(data.get("api_version")),
        livemode=data.get("livemode") is True,
        object=obj,
        thin=thin,
    )


def parse_invoice(obj: Mapping[str, Any]) -> Invoice:
    """Read an Invoice in either payload generation."""
    invoice_id = require_id(obj, "event's invoice")
    parent = as_map(obj.get("parent"))
    sub_details = as_map(parent.get("subscription_details"))
    what = f"invoice {invoice_id}: the subscription"
    subscription_id = as_id(sub_details.get("subscription"), what) or as_id(
        obj.get("subscription"), what
    )
    lines_obj = as_map(obj.get("lines"))
    lines = tuple(parse_invoice_line(line) for line in as_list(lines_obj.get("data")))
    readable = isinstance(lines_obj.get("data"), list)
    customer = obj.get("customer")
    customer_map = as_map(customer)
    return Invoice(
        id=invoice_id,
        customer_id=as_id(customer, f"invoice {invoice_id}: the customer"),
        customer_email=as_str(obj.get("customer_email")) or as_str(customer_map.get("email")),
        customer_name=as_str(obj.get("customer_name")) or as_str(customer_map.get("name")),
        subscription_id=subscription_id,
        billing_reason=as_str(obj.get("billing_reason")),
        status=as_str(obj.get("status")),
        lines=lines,
        lines_has_more=lines_obj.get("has_more") is True,
        lines_readable=readable,
        amount_paid=_amount(obj.get("amount_paid")),
    )


def _amount(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def parse_invoice_line(obj: Mapping[str, Any]) -> InvoiceLine:
    """Read one invoice line in either payload generation."""
    get = obj.get
    parent = as_map(get("parent"))
    item_details = as_map(parent.get("subscription_item_details"))
    price_details = as_map(as_map(get("pricing")).get("price_details"))

    # basil+: pricing.price_details.price is an id (a dict only if expanded);
    # old shape: price is a full Price (or plan, for very old versions).
    price_ref = price_details.get("price") or get("price") or get("plan")
    price = as_map(price_ref)
    metadata = price.get("metadata")
    if parent:
        is_subscription = parent.get("type") == "subscription_item_details"
    else:
        is_subscription = get("type") == "subscription"
    period = as_map(get("period"))
    line = f"invoice line {shown(as_str(get('id')) or '')}"

    def ref(*values: Any, name: str) -> str | None:
        return next((i for v in values if (i := as_id(v, f"{line}: the {name}"))), None)

    return InvoiceLine(
        as_str(get("id")) or "",
        ref(price_ref, name="price"),
        ref(price_details.get("product"), price.get("product"), name="product"),
        as_quantity(get("quantity"), line),
        as_time(period.get("start")),
        as_time(period.get("end")),
        ref(item_details.get("subscription"), get("subscription"), name="subscription"),
        ref(
            item_details.get("subscription_item"),
            get("subscription_item"),
            name="subscription item",
        ),
        is_subscription,
        bool(item_details.get("proration") or get("proration")),
        as_str_map(metadata) if type(metadata) is dict else None,
        as_str(price.get("lookup_key")),
    )


def parse_subscription(obj: Mapping[str, Any]) -> Subscription:
    """Read a Subscription (the same at every API version for what we use)."""
    subscription_id = require_id(obj, "event's subscription")
    items_obj = as_map(obj.get("items"))
    items = []
    for item in as_list(items_obj.get("data")):
        price = as_map(item.get("price") or item.get("plan"))
        metadata = price.get("metadata")
        what = f"subscription {subscription_id}: item {shown(as_str(item.get('id')) or '')}"
        items.append(
            SubscriptionItem(
                id=as_str(item.get("id")) or "",
                price_id=as_id(item.get("price") or item.get("plan"), f"{what}: the price"),
                product_id=as_id(price.get("product"), f"{what}: the product"),
                quantity=as_quantity(item.get("quantity"), what),
                price_metadata=as_str_map(metadata) if isinstance(metadata, dict) else None,
                price_lookup_key=as_str(price.get("lookup_key")),
                current_period_end=as_time(item.get("current_period_end"))
                or as_time(obj.get("current_period_end")),
            )
        )
    details = as_map(obj.get("cancellation_details"))
    first_item = as_map(as_list(items_obj.get("data"))[0]) if items else EMPTY
    return Subscription(
        id=subscription_id,
        customer_id=as_id(obj.get("customer"), f"subscription {subscription_id}: the customer"),
        status=as_str(obj.get("status")),
        metadata=as_str_map(obj.get("metadata")),
        items=tuple(items),
        items_has_more=items_obj.get("has_more") is True,
        ended_at=as_time(obj.get("ended_at")),
        cancellation_reason=as_str(details.get("reason")),
        trial_end=as_time(obj.get("trial_end")),
        cancel_at_period_end=obj.get("cancel_at_period_end") is True,
        pause_collection=_pause_behavior(obj.get("pause_collection")),
        current_period_start=as_time(first_item.get("current_period_start"))
        or as_time(obj.get("current_period_start")),
    )


def _pause_behavior(value: Any) -> str | None:
    """`pause_collection.behavior`; a present object without a readable one still means
    paused collection (the harsher reading), shown as `"unknown"`."""
    if type(value) is not dict:
        return None
    return as_str(value.get("behavior")) or "unknown"
