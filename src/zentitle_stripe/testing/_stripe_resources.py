"""The Stripe emulator's account state, protocol and route handlers, one class a resource.

[`StripeEmulator`][zentitle_stripe.testing.StripeEmulator] is assembled from these:
`_StripeAccount` holds the state and speaks the protocol (Bearer or Basic keys, form encoding,
Stripe's error shape, cursor pagination); each `_...Routes` class answers one resource.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import copy
import fnmatch
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from typing_extensions import override

from ._events import LineSpec, invoice_paid_event, is_old_shape, make_event
from ._fake import FakeClock, FakeService, FaultKind, Incoming, Reply

__all__: list[str] = []

_JSON = dict[str, Any]
Handler = Callable[[str, _JSON], _JSON]
_Line = tuple[str, int, str | None]
"""An invoice line to bill: `(price_id, quantity, subscription item id or None)`."""


class _APIError(Exception):
    """A Stripe error response: `{"error": {"type", "message", "code", "param"}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.payload = {"type": type, "message": message, "code": code, "param": param}


def _missing(kind: str, object_id: str, param: str = "id") -> _APIError:
    return _APIError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def _api_key(authorization: str) -> str:
    """The key an `Authorization` header carries, `""` when none (or not in Stripe's forms).

    `Bearer sk_...` as the libraries send it, or `Basic base64("sk_...:")` as `curl -u sk_...:`
    does; where Stripe's docs are silent (a password given) the harsher reading: no key.
    """
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    user, colon, password = decoded.partition(":")
    return user if colon and not password else ""


def _mask(api_key: str) -> str:
    return f"{api_key[:8]}****{api_key[-4:]}" if len(api_key) > 12 else "****"


def _parse_form(text: str) -> _JSON:
    """Decode Stripe's form encoding: `a[b][c]=v` nests, `a[0]=`/`a[]=` build lists."""
    root: _JSON = {}
    for raw_key, value in parse_qsl(text, keep_blank_values=True):
        head, _, rest = raw_key.partition("[")
        keys = [head, *re.findall(r"\[([^\]]*)\]", "[" + rest)] if rest else [head]
        node = root
        for key in keys[:-1]:
            key = key or str(len(node))
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[keys[-1] or str(len(node))] = value
    listified = _listify(root)
    assert isinstance(listified, dict)
    return listified


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {key: _listify(child) for key, child in value.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


def _merge_metadata(target: dict[str, str], update: Any) -> None:
    """Stripe's semantics: keys merge, `""` unsets a key, `metadata=""` clears all."""
    if update == "":
        target.clear()
        return
    if not isinstance(update, dict):
        raise _APIError(400, "Invalid metadata: must be a hash.", param="metadata")
    merged = dict(target)
    for key, value in update.items():
        if len(key) > 40:
            raise _APIError(
                400,
                f"Metadata keys can have up to 40 characters; {key!r} has {len(key)}.",
                param=f"metadata[{key}]",
            )
        if not isinstance(value, str) or len(value) > 500:
            raise _APIError(
                400,
                f"Metadata values can have up to 500 characters; {key!r} is longer.",
                param=f"metadata[{key}]",
            )
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > 50:
        raise _APIError(400, "Metadata can have up to 50 keys.", param="metadata")
    target.clear()
    target.update(merged)


def _paginate(items: list[_JSON], params: _JSON, url: str) -> _JSON:
    """One page of a list, as Stripe's cursor pagination (`limit`, `starting_after`)."""
    try:
        limit = int(params.get("limit", 10))
    except (TypeError, ValueError):
        limit = 0
    if not 1 <= limit <= 100:
        raise _APIError(
            400,
            "Invalid limit: must be between 1 and 100",
            code="parameter_invalid_integer",
            param="limit",
        )
    after = params.get("starting_after")
    if after:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise _missing("object", str(after), "starting_after")
        items = items[ids.index(after) + 1 :]
    return {
        "object": "list",
        "data": items[:limit],
        "has_more": len(items) > limit,
        "url": url,
    }


def _newest_first(objects: Iterable[_JSON]) -> list[_JSON]:
    """Newest `created` first; among equals, the later made first, as Stripe lists."""
    pairs = sorted(enumerate(objects), key=lambda p: (p[1]["created"], p[0]), reverse=True)
    return [obj for _, obj in pairs]


def _advance(timestamp: int, price: _JSON) -> int:
    """`timestamp` plus one billing interval of `price`, in calendar months for
    month/year as Stripe bills."""
    recurring = price["recurring"]
    interval, count = recurring["interval"], recurring["interval_count"]
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    if interval in ("day", "week"):
        moment += timedelta(days=count * (7 if interval == "week" else 1))
    else:
        months = count * (12 if interval == "year" else 1)
        years, month0 = divmod(moment.month - 1 + months, 12)
        year = moment.year + years
        day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
        moment = moment.replace(year=year, month=month0 + 1, day=day)
    return int(moment.timestamp())


class _StripeAccount(FakeService[FaultKind]):
    """An account's state and the protocol around every route: keys, errors, ids."""

    _thread_name: ClassVar[str] = "stripe-emulator"
    _bad_body: ClassVar[Reply] = Reply(
        200, {"Content-Type": "text/html"}, b"<html>502 Bad Gateway</html>"
    )
    _held_faults: ClassVar[frozenset[str]] = frozenset({"timeout"})

    def __init__(self, api_key: str, webhook_secret: str, api_version: str) -> None:
        super().__init__(clock=FakeClock(datetime.fromtimestamp(int(time.time()), timezone.utc)))
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.api_version = api_version
        self.embedded_line_limit = 10
        self._ids = itertools.count(1)
        self._products: dict[str, _JSON] = {}
        self._prices: dict[str, _JSON] = {}
        self._customers: dict[str, _JSON] = {}
        self._subscriptions: dict[str, _JSON] = {}
        self._invoice_lines: dict[str, list[_JSON]] = {}
        self._events: list[_JSON] = []
        self._endpoints: dict[str, _JSON] = {}
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    @property
    def now(self) -> int:
        """The clock in unix seconds, for `created` and periods; set it freely.

        An alias of `clock.now` kept from before the emulators shared a clock.
        """
        return int(self.clock.now.timestamp())

    @now.setter
    def now(self, value: int) -> None:
        self.clock.now = datetime.fromtimestamp(value, timezone.utc)

    # -- objects ------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_emu{next(self._ids):06d}"

    def _new_object(self, store: dict[str, _JSON], prefix: str, kind: str, **fields: Any) -> _JSON:
        """Store a new `kind` object with a fresh id, `created` now and test mode."""
        obj_id = self._new_id(prefix)
        store[obj_id] = {"id": obj_id, "object": kind, "created": self.now, "livemode": False}
        store[obj_id].update(fields)
        return store[obj_id]

    @staticmethod
    def _require(store: dict[str, _JSON], object_id: str, kind: str, *, api: bool = False) -> _JSON:
        """The stored object; a 404 Stripe error over HTTP, a `KeyError` for the story API."""
        try:
            return store[object_id]
        except KeyError:
            if api:
                raise _missing(kind, object_id) from None
            raise KeyError(f"the emulator has no {kind} {object_id!r}") from None

    def _settle_invoice(self, invoice: _JSON) -> None:
        """Called for every paid invoice; the payments routes keep it and its charge."""

    def _record_event(self, event: _JSON) -> _JSON:
        self._events.append(copy.deepcopy(event))
        return event

    # -- the protocol -------------------------------------------------------------------

    @override
    def _params(self, request: Incoming) -> _JSON:
        params = _parse_form(request.query_string)
        if request.method == "POST":
            params.update(_parse_form(request.body.decode("utf-8", "replace")))
        return params

    @override
    def _answer(self, request: Incoming) -> Reply:
        try:
            self._authenticate(request.headers)
            result = self._route(request.method, request.path, self._params(request))
            return Reply(200, self._headers(), json.dumps(result).encode())
        except _APIError as exc:
            return self._error_response(exc)

    @override
    def _error_reply(self, status: int) -> Reply:
        if status == 429:
            return self._error_response(
                _APIError(429, "Too many requests.", type="rate_limit_error", code="rate_limit")
            )
        return self._error_response(
            _APIError(status, "An unknown error occurred.", type="api_error")
        )

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        """Bearer `sk_...`, or Basic with the key as user name and no password (`curl -u`)."""
        key = _api_key(headers.get("authorization", ""))
        if not key:
            raise _APIError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth.",
            )
        if not secrets.compare_digest(key.encode(), self.api_key.encode()):
            raise _APIError(401, f"Invalid API Key provided: {_mask(key)}")

    def _route(self, method: str, path: str, params: _JSON) -> _JSON:
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                return handler(match.group(1), params)
        raise _APIError(404, f"Unrecognized request URL ({method}: {path}).")

    def _headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Request-Id": self._new_id("req"),
            "Stripe-Version": self.api_version,
        }

    def _error_response(self, error: _APIError) -> Reply:
        body = json.dumps({"error": error.payload}).encode()
        return Reply(error.status, self._headers(), body)

    def _get_account(self, _: str, params: _JSON) -> _JSON:
        return {
            "id": "acct_emulator",
            "object": "account",
            "country": "US",
            "default_currency": "usd",
            "livemode": self.api_key.startswith(("sk_live_", "rk_live_")),
        }


class _CatalogueRoutes(_StripeAccount):
    """`/v1/prices` and `/v1/products`."""

    def _get_price(self, price_id: str, params: _JSON) -> _JSON:
        return copy.deepcopy(self._require(self._prices, price_id, "price", api=True))

    def _get_product(self, product_id: str, params: _JSON) -> _JSON:
        return copy.deepcopy(self._require(self._products, product_id, "product", api=True))

    def _list_prices(self, _: str, params: _JSON) -> _JSON:
        """`active` and `type` filters, newest first, as Stripe lists them."""
        active = params.get("active")
        kind = params.get("type")
        prices = [
            price
            for price in _newest_first(self._prices.values())
            if (active is None or str(price["active"]).lower() == str(active).lower())
            and (kind is None or price["type"] == kind)
        ]
        return copy.deepcopy(_paginate(prices, params, "/v1/prices"))


class _CustomerRoutes(_StripeAccount):
    """`/v1/customers/{id}`."""

    def _get_customer(self, customer_id: str, params: _JSON) -> _JSON:
        return copy.deepcopy(self._require(self._customers, customer_id, "customer", api=True))

    def _update_customer(self, customer_id: str, params: _JSON) -> _JSON:
        customer = self._require(self._customers, customer_id, "customer", api=True)
        if customer.get("deleted"):
            raise _APIError(400, "You cannot update a deleted customer.", param="customer")
        if "metadata" in params:
            _merge_metadata(customer["metadata"], params["metadata"])
        for field in ("email", "name"):
            if field in params:
                customer[field] = params[field] or None
        return copy.deepcopy(customer)


class _SubscriptionRoutes(_StripeAccount):
    """`/v1/subscriptions` and invoice lines, and the paid invoices they make."""

    def _get_subscription(self, subscription_id: str, params: _JSON) -> _JSON:
        subscription = self._require(self._subscriptions, subscription_id, "subscription", api=True)
        return self._render_subscription(subscription)

    def _update_subscription(self, subscription_id: str, params: _JSON) -> _JSON:
        subscription = self._require(self._subscriptions, subscription_id, "subscription", api=True)
        if subscription["status"] == "canceled" and set(params) - {"metadata", "expand"}:
            raise _APIError(
                400,
                "A canceled subscription can only update its cancellation_details and metadata.",
            )
        if "metadata" in params:
            _merge_metadata(subscription["metadata"], params["metadata"])
        return self._render_subscription(subscription)

    def _list_subscriptions(self, _: str, params: _JSON) -> _JSON:
        """`status` filter (default: all but canceled, as Stripe; `all` for every one)."""
        status = params.get("status")
        subscriptions = [
            subscription
            for subscription in _newest_first(self._subscriptions.values())
            if (status == "all")
            or (status is None and subscription["status"] != "canceled")
            or subscription["status"] == status
        ]
        page = _paginate(subscriptions, params, "/v1/subscriptions")  # render only the page
        page["data"] = [self._render_subscription(s) for s in page["data"]]
        return page

    def _list_invoice_lines(self, invoice_id: str, params: _JSON) -> _JSON:
        lines = self._invoice_lines.get(invoice_id)
        if lines is None:
            raise _missing("invoice", invoice_id, "invoice")
        return copy.deepcopy(_paginate(lines, params, f"/v1/invoices/{invoice_id}/lines"))

    def _render_subscription(self, subscription: _JSON) -> _JSON:
        """The Subscription in the emulator's API version (items embed full Prices)."""
        sub_id = subscription["id"]
        start = subscription["current_period_start"]
        end = subscription["current_period_end"]
        items = [
            {
                "id": item["id"],
                "object": "subscription_item",
                "created": subscription["created"],
                "current_period_start": start,
                "current_period_end": end,
                "metadata": {},
                "price": copy.deepcopy(self._prices[item["price"]]),
                "quantity": item["quantity"],
                "subscription": sub_id,
            }
            for item in subscription["items"]
        ]
        reason = subscription["cancellation_reason"]
        rendered: _JSON = {
            "id": sub_id,
            "object": "subscription",
            "billing_cycle_anchor": subscription["created"],
            "cancel_at": end if subscription.get("cancel_at_period_end") else None,
            "cancel_at_period_end": bool(subscription.get("cancel_at_period_end")),
            "canceled_at": subscription["canceled_at"],
            "cancellation_details": {"comment": None, "feedback": None, "reason": reason},
            "collection_method": "charge_automatically",
            "created": subscription["created"],
            "currency": "usd",
            "customer": subscription["customer"],
            "ended_at": subscription["ended_at"],
            "items": {
                "object": "list",
                "data": items,
                "has_more": False,
                "total_count": len(items),
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
            "livemode": False,
            "metadata": dict(subscription["metadata"]),
            "pause_collection": None,
            "start_date": subscription["created"],
            "status": subscription["status"],
            "trial_end": subscription.get("trial_end"),
            "trial_start": subscription.get("trial_start"),
        }
        if not is_old_shape(self.api_version):
            # endive's `status_details` (2026-09-30: the pause endpoint).
            paused = subscription["status"] == "paused"
            rendered["status_details"] = (
                {"paused": {"subscription": {"type": "requested"}}} if paused else None
            )
        if is_old_shape(self.api_version):
            # basil moved the period onto the items.
            rendered["current_period_start"] = start
            rendered["current_period_end"] = end
        return rendered

    def _pay_subscription(
        self, subscription: _JSON, billing_reason: str, *, free: bool = False
    ) -> _JSON:
        """Pay the current period; `free` bills it at 0 (a trial's first invoice)."""
        return self._invoice_paid(
            subscription["customer"],
            subscription,
            [(item["price"], item["quantity"], item["id"]) for item in subscription["items"]],
            billing_reason=billing_reason,
            period=(subscription["current_period_start"], subscription["current_period_end"]),
            free=free,
        )

    def _subscription_event(
        self, event_type: str, subscription: _JSON, previous: _JSON | None = None
    ) -> _JSON:
        """Record a `customer.subscription.*` event with the Subscription as it is now
        and, for `updated`, `data.previous_attributes`."""
        event = make_event(
            event_type,
            self._render_subscription(subscription),
            event_id=self._new_id("evt"),
            api_version=self.api_version,
            created=self.now,
        )
        if previous is not None:
            event["data"]["previous_attributes"] = previous
        return self._record_event(event)

    def _invoice_paid(
        self,
        customer_id: str,
        subscription: _JSON | None,
        lines: Sequence[_Line],
        *,
        billing_reason: str,
        period: tuple[int, int],
        free: bool = False,
    ) -> _JSON:
        """Store a paid invoice and record its `invoice.paid` event.

        The lead's factory renders the shape; `_match_invoice` makes it match this
        emulator's objects.
        """
        customer = self._customers[customer_id]
        prices = [self._prices[price_id] for price_id, _, _ in lines]
        event = invoice_paid_event(
            [
                LineSpec(
                    price_id=price["id"],
                    quantity=quantity,
                    product_id=price["product"],
                    lookup_key=price["lookup_key"],
                    extra_metadata=price["metadata"],
                )
                for price, (_, quantity, _) in zip(prices, lines, strict=True)
            ],
            api_version=self.api_version,
            subscription_id=subscription["id"] if subscription else None,
            customer_id=customer_id,
            customer_email=customer.get("email"),
            customer_name=customer.get("name"),
            billing_reason=billing_reason,
            invoice_id=self._new_id("in"),
            event_id=self._new_id("evt"),
            created=self.now,
            period_start=period[0],
            period_end=period[1],
        )
        self._match_invoice(event["data"]["object"], subscription, prices, lines, free=free)
        self._settle_invoice(event["data"]["object"])
        return self._record_event(event)

    def _match_invoice(
        self,
        invoice: _JSON,
        subscription: _JSON | None,
        prices: list[_JSON],
        lines: Sequence[_Line],
        *,
        free: bool = False,
    ) -> None:
        """Fix up a rendered invoice: real Prices, item ids, amounts, the metadata
        snapshot and the line-list URL; store its lines for `GET .../lines`."""
        invoice_id = invoice["id"]
        old_shape = is_old_shape(self.api_version)
        all_lines: list[_JSON] = invoice["lines"]["data"]
        for line, price, (_, quantity, item_id) in zip(all_lines, prices, lines, strict=True):
            line["amount"] = 0 if free else price["unit_amount"] * quantity
            line["invoice"] = invoice_id
            if old_shape:
                line["price"] = copy.deepcopy(price)
                line["subscription_item"] = item_id
            elif item_id is not None:
                line["parent"]["subscription_item_details"]["subscription_item"] = item_id
        if subscription is not None:
            details = (
                invoice["subscription_details"]
                if old_shape
                else invoice["parent"]["subscription_details"]
            )
            details["metadata"] = dict(subscription["metadata"])
        total = sum(line["amount"] for line in all_lines)
        invoice.update(amount_due=total, amount_paid=total, total=total, created=self.now)
        self._invoice_lines[invoice_id] = copy.deepcopy(all_lines)
        limit = max(self.embedded_line_limit, 0)
        invoice["lines"].update(
            data=all_lines[:limit],
            has_more=len(all_lines) > limit,
            total_count=len(all_lines),
            url=f"/v1/invoices/{invoice_id}/lines",
        )

    def _cancelled_event(self, subscription: _JSON) -> _JSON:
        """Record `customer.subscription.deleted` with the final Subscription."""
        return self._record_event(
            make_event(
                "customer.subscription.deleted",
                self._render_subscription(subscription),
                event_id=self._new_id("evt"),
                api_version=self.api_version,
                created=self.now,
            )
        )


class _WebhookEndpointRoutes(_StripeAccount):
    """`/v1/webhook_endpoints`: create, read, update, list and delete."""

    def _list_endpoints(self, _: str, params: _JSON) -> _JSON:
        endpoints = sorted(self._endpoints.values(), key=lambda e: e["created"], reverse=True)
        return _paginate(copy.deepcopy(endpoints), params, "/v1/webhook_endpoints")

    def _create_endpoint(self, _: str, params: _JSON) -> _JSON:
        for required in ("url", "enabled_events"):
            if not params.get(required):
                raise _APIError(
                    400,
                    f"Missing required param: {required}.",
                    code="parameter_missing",
                    param=required,
                )
        endpoint = self._new_object(
            self._endpoints,
            "we",
            "webhook_endpoint",
            api_version=params.get("api_version") or self.api_version,
            description=params.get("description") or None,
            enabled_events=[],
            metadata={},
            status="enabled",
            url="",
        )
        self._update_endpoint(endpoint["id"], params)
        return {**copy.deepcopy(endpoint), "secret": f"whsec_{secrets.token_hex(16)}"}

    def _get_endpoint(self, endpoint_id: str, params: _JSON) -> _JSON:
        endpoint = self._require(self._endpoints, endpoint_id, "webhook_endpoint", api=True)
        return copy.deepcopy(endpoint)

    def _update_endpoint(self, endpoint_id: str, params: _JSON) -> _JSON:
        endpoint = self._require(self._endpoints, endpoint_id, "webhook_endpoint", api=True)
        if "url" in params:
            endpoint["url"] = str(params["url"])
        if "enabled_events" in params:
            events = params["enabled_events"]
            endpoint["enabled_events"] = list(events) if isinstance(events, list) else [events]
        if "description" in params:
            endpoint["description"] = params["description"] or None
        if "disabled" in params:
            endpoint["status"] = "disabled" if params["disabled"] == "true" else "enabled"
        if "metadata" in params:
            _merge_metadata(endpoint["metadata"], params["metadata"])
        return copy.deepcopy(endpoint)

    def _delete_endpoint(self, endpoint_id: str, params: _JSON) -> _JSON:
        self._require(self._endpoints, endpoint_id, "webhook_endpoint", api=True)
        del self._endpoints[endpoint_id]
        return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}


_CREATED_CHECKS: dict[str, Callable[[int, int], bool]] = {
    "gte": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "lte": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
}


class _EventRoutes(_StripeAccount):
    """`/v1/events`: `type`/`types` (with `*` patterns) and `created` filters."""

    def _list_events(self, _: str, params: _JSON) -> _JSON:
        types = params.get("types")
        patterns = list(types) if isinstance(types, list) else []
        if isinstance(params.get("type"), str):
            patterns.append(params["type"])
        created = params.get("created")
        bounds = created if isinstance(created, dict) else {}
        if isinstance(created, str):
            bounds = {"gte": created, "lte": created}
        try:
            limits = {op: int(value) for op, value in bounds.items()}
        except ValueError:
            raise _APIError(400, "Invalid integer: created", param="created") from None
        checks = _CREATED_CHECKS
        newest_first = [
            event
            for event in _newest_first(self._events)
            if (not patterns or any(fnmatch.fnmatchcase(event["type"], p) for p in patterns))
            and all(checks[op](event["created"], v) for op, v in limits.items() if op in checks)
        ]
        return copy.deepcopy(_paginate(newest_first, params, "/v1/events"))
