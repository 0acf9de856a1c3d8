"""An in-memory Stripe for offline tests and the demo.

It serves the few ``/v1`` endpoints zentitle-stripe calls, form-encoded and authenticated like
the real API, so tests exercise stripe-python's real HTTP code (over a loopback uvicorn server
from :meth:`StripeEmulator.serve`, or in process through :meth:`StripeEmulator.transport`).
A story API (``create_subscription``, ``renew_subscription``, ``cancel_subscription``, ...)
changes the state and returns the webhook event Stripe would send, rendered by the same
factories as :mod:`zentitle_stripe.testing` in the shape of the emulator's ``api_version``.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import copy
import fnmatch
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import parse_qsl

import attrs
import httpx

from ._events import (
    NEW_API_VERSION,
    LineSpec,
    invoice_paid_event,
    is_old_shape,
    make_event,
    sign_stripe_payload,
)

__all__ = ["FaultKind", "RecordedRequest", "StripeEmulator"]

FaultKind = Literal["429", "500", "503", "timeout", "bad_body"]

_JSON = dict[str, Any]
_Handler = Callable[[str, _JSON], _JSON]


@attrs.frozen
class RecordedRequest:
    """One request the emulator received; ``params`` is the decoded query or form body."""

    method: str
    path: str
    params: Mapping[str, Any]


@attrs.define
class _Fault:
    method: str
    pattern: re.Pattern[str]
    kind: FaultKind
    remaining: int
    delay: float


@attrs.frozen
class _Response:
    status: int
    body: bytes
    headers: Mapping[str, str]
    delay: float = 0.0
    """A ``timeout`` fault: hold the response this long (served) or time out (transport)."""


class _APIError(Exception):
    """A Stripe error response: ``{"error": {"type", "message", "code", "param"}}``."""

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


class StripeEmulator:
    """An in-memory Stripe; see the module docstring.

    ``now`` (unix seconds) is the clock for ``created`` and periods; set it freely.
    ``embedded_line_limit`` caps the lines embedded in an invoice (the rest are reachable
    through ``GET /v1/invoices/{id}/lines``), as Stripe does. ``requests`` records every
    request; :meth:`inject_fault` makes the next matching requests fail.
    """

    def __init__(
        self,
        api_key: str = "sk_test_emulator",
        webhook_secret: str = "whsec_emulator",  # noqa: S107 (a test fixture)
        api_version: str = NEW_API_VERSION,
    ) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.api_version = api_version
        self.now = int(time.time())
        self.embedded_line_limit = 10
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._products: dict[str, _JSON] = {}
        self._prices: dict[str, _JSON] = {}
        self._customers: dict[str, _JSON] = {}
        self._subscriptions: dict[str, _JSON] = {}
        self._invoice_lines: dict[str, list[_JSON]] = {}
        self._events: list[_JSON] = []
        self._endpoints: dict[str, _JSON] = {}
        self._faults: list[_Fault] = []
        self._routes: list[tuple[str, re.Pattern[str], _Handler]] = [
            (method, re.compile(pattern), handler)
            for method, pattern, handler in [
                ("GET", r"/v1/prices/([^/]+)", self._get_price),
                ("GET", r"/v1/products/([^/]+)", self._get_product),
                ("GET", r"/v1/invoices/([^/]+)/lines", self._list_invoice_lines),
                ("GET", r"/v1/subscriptions/([^/]+)", self._get_subscription),
                ("POST", r"/v1/subscriptions/([^/]+)", self._update_subscription),
                ("GET", r"/v1/customers/([^/]+)", self._get_customer),
                ("POST", r"/v1/customers/([^/]+)", self._update_customer),
                ("GET", r"/v1/events()", self._list_events),
                ("GET", r"/v1/webhook_endpoints()", self._list_endpoints),
                ("POST", r"/v1/webhook_endpoints()", self._create_endpoint),
                ("GET", r"/v1/webhook_endpoints/([^/]+)", self._get_endpoint),
                ("POST", r"/v1/webhook_endpoints/([^/]+)", self._update_endpoint),
                ("DELETE", r"/v1/webhook_endpoints/([^/]+)", self._delete_endpoint),
                ("GET", r"/v1/account()", self._get_account),
                ("GET", r"/v1/prices()", self._list_prices),
                ("GET", r"/v1/subscriptions()", self._list_subscriptions),
            ]
        ]

    def __repr__(self) -> str:
        return f"StripeEmulator(api_version={self.api_version!r})"

    # -- seeding --------------------------------------------------------------------------

    def create_product(self, name: str, metadata: Mapping[str, str] | None = None) -> str:
        """Add a Product; returns its id."""
        with self._lock:
            product_id = self._new_id("prod")
            self._products[product_id] = {
                "id": product_id,
                "object": "product",
                "active": True,
                "created": self.now,
                "livemode": False,
                "metadata": dict(metadata or {}),
                "name": name,
            }
            return product_id

    def create_price(
        self,
        product_id: str,
        *,
        metadata: Mapping[str, str] | None = None,
        lookup_key: str | None = None,
        interval: Literal["day", "week", "month", "year"] = "year",
        recurring: bool = True,
        unit_amount: int = 4900,
    ) -> str:
        """Add a Price of ``product_id`` (recurring every ``interval`` unless not
        ``recurring``); returns its id."""
        with self._lock:
            self._require(self._products, product_id, "product")
            price_id = self._new_id("price")
            self._prices[price_id] = {
                "id": price_id,
                "object": "price",
                "active": True,
                "created": self.now,
                "currency": "usd",
                "livemode": False,
                "lookup_key": lookup_key,
                "metadata": dict(metadata or {}),
                "product": product_id,
                "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"}
                if recurring
                else None,
                "type": "recurring" if recurring else "one_time",
                "unit_amount": unit_amount,
                "unit_amount_decimal": str(unit_amount),
            }
            return price_id

    def create_customer(
        self,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Add a Customer; returns its id."""
        with self._lock:
            customer_id = self._new_id("cus")
            self._customers[customer_id] = {
                "id": customer_id,
                "object": "customer",
                "created": self.now,
                "email": email,
                "livemode": False,
                "metadata": dict(metadata or {}),
                "name": name,
            }
            return customer_id

    def archive_price(self, price_id: str) -> None:
        """Make a Price inactive, as archiving it in the Dashboard does."""
        with self._lock:
            self._require(self._prices, price_id, "price")["active"] = False

    def delete_customer(self, customer_id: str) -> None:
        """Delete a Customer; Stripe then serves a ``{"deleted": true}`` stub for its id."""
        with self._lock:
            self._require(self._customers, customer_id, "customer")
            self._customers[customer_id] = {
                "id": customer_id,
                "object": "customer",
                "deleted": True,
            }

    # -- stories: each returns the webhook event Stripe would send --------------------------

    def create_subscription(
        self, customer_id: str, items: Sequence[tuple[str, int]]
    ) -> tuple[str, dict[str, Any]]:
        """Start a subscription on ``(price_id, quantity)`` items and pay its first invoice;
        returns ``(subscription_id, invoice.paid event)``."""
        with self._lock:
            self._require(self._customers, customer_id, "customer")
            if not items:
                raise ValueError("a subscription needs at least one item")
            prices = [self._require(self._prices, price_id, "price") for price_id, _ in items]
            for price in prices:
                if price["recurring"] is None:
                    raise ValueError(f"price {price['id']} is not recurring")
            subscription_id = self._new_id("sub")
            start = self.now
            subscription: _JSON = {
                "id": subscription_id,
                "customer": customer_id,
                "status": "active",
                "created": start,
                "metadata": {},
                "items": [
                    {"id": self._new_id("si"), "price": price_id, "quantity": quantity}
                    for price_id, quantity in items
                ],
                "current_period_start": start,
                "current_period_end": self._advance(start, prices[0]),
                "canceled_at": None,
                "ended_at": None,
                "cancellation_reason": None,
            }
            self._subscriptions[subscription_id] = subscription
            return subscription_id, self._pay_subscription(subscription, "subscription_create")

    def renew_subscription(self, subscription_id: str) -> dict[str, Any]:
        """Start the next period and pay it (``invoice.paid``, ``subscription_cycle``).

        The clock moves to the new period's start if it is behind, as the renewal invoice
        is created then.
        """
        with self._lock:
            subscription = self._require(self._subscriptions, subscription_id, "subscription")
            if subscription["status"] != "active":
                raise ValueError(f"subscription {subscription_id} is {subscription['status']}")
            start = subscription["current_period_end"]
            first_price = self._prices[subscription["items"][0]["price"]]
            subscription["current_period_start"] = start
            subscription["current_period_end"] = self._advance(start, first_price)
            self.now = max(self.now, start)
            return self._pay_subscription(subscription, "subscription_cycle")

    def one_time_payment(self, customer_id: str, price_id: str) -> dict[str, Any]:
        """Pay a one-off ``manual`` invoice for ``price_id`` (no subscription)."""
        with self._lock:
            self._require(self._customers, customer_id, "customer")
            self._require(self._prices, price_id, "price")
            return self._invoice_paid(
                customer_id,
                None,
                [(price_id, 1, None)],
                billing_reason="manual",
                period=(self.now, self.now),
            )

    def cancel_subscription(self, subscription_id: str) -> dict[str, Any]:
        """Cancel now; returns ``customer.subscription.deleted`` with the final Subscription
        (metadata included, e.g. written-back ``activation_codes``)."""
        with self._lock:
            subscription = self._require(self._subscriptions, subscription_id, "subscription")
            subscription.update(
                status="canceled",
                canceled_at=self.now,
                ended_at=self.now,
                cancellation_reason="cancellation_requested",
            )
            return self._record_event(
                make_event(
                    "customer.subscription.deleted",
                    self._render_subscription(subscription),
                    event_id=self._new_id("evt"),
                    api_version=self.api_version,
                    created=self.now,
                )
            )

    def sign(self, event: Mapping[str, Any], *, timestamp: int | None = None) -> tuple[bytes, str]:
        """``(body, Stripe-Signature header)`` for ``event`` with the emulator's webhook
        secret; signed at the real time unless ``timestamp`` is given, as a delivery is."""
        return sign_stripe_payload(event, self.webhook_secret, timestamp=timestamp)

    # -- inspection -----------------------------------------------------------------------

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        """The Subscription as ``GET /v1/subscriptions/{id}`` returns it."""
        with self._lock:
            return self._render_subscription(
                self._require(self._subscriptions, subscription_id, "subscription")
            )

    def customer(self, customer_id: str) -> dict[str, Any]:
        """The Customer as ``GET /v1/customers/{id}`` returns it."""
        with self._lock:
            return copy.deepcopy(self._require(self._customers, customer_id, "customer"))

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event generated so far, oldest first."""
        with self._lock:
            return copy.deepcopy(self._events)

    def count(self, method: str | None = None, path_prefix: str | None = None) -> int:
        """How many recorded requests match ``method`` and start with ``path_prefix``."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (path_prefix is None or r.path.startswith(path_prefix))
            )

    def reset_requests(self) -> None:
        """Forget recorded requests (not the state)."""
        with self._lock:
            self.requests.clear()

    def inject_fault(
        self,
        method: str,
        path_regex: str,
        kind: FaultKind,
        times: int = 1,
        *,
        delay: float = 2.0,
    ) -> None:
        """Fail the next ``times`` requests whose method (``*`` for any) and path
        (``re.search``) match.

        ``429``/``500``/``503`` answer with that Stripe error; ``bad_body`` answers 200 with
        a non-JSON body; ``timeout`` processes the request, then holds the response for
        ``delay`` seconds (served) or raises ``httpx.ReadTimeout`` (transport), so a client
        with a shorter timeout gives up while the change may have happened, as in reality.
        """
        if kind not in ("429", "500", "503", "timeout", "bad_body"):
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._faults.append(_Fault(method.upper(), re.compile(path_regex), kind, times, delay))

    # -- serving --------------------------------------------------------------------------

    def transport(self) -> httpx.BaseTransport:
        """An httpx transport answering in process (``StripeGateway(http_transport=...)``)."""

        def handler(request: httpx.Request) -> httpx.Response:
            response = self._handle(
                request.method,
                request.url.path,
                request.url.query.decode(),
                request.read(),
                request.headers,
            )
            if response.delay:
                raise httpx.ReadTimeout("emulated timeout", request=request)
            return httpx.Response(
                response.status, headers=dict(response.headers), content=response.body
            )

        return httpx.MockTransport(handler)

    async def asgi_app(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        """A plain ASGI 3 application serving the emulated API."""
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        response = self._handle(
            scope["method"], scope["path"], scope["query_string"].decode(), body, headers
        )
        if response.delay:
            await asyncio.sleep(response.delay)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Run :attr:`asgi_app` with uvicorn on a free 127.0.0.1 port in a background
        thread; yields the base URL. Needs the ``server`` extra; importing this module
        does not."""
        from ..server import serve_in_thread

        with serve_in_thread(self.asgi_app, name="stripe-emulator") as url:
            yield url

    # -- request handling -----------------------------------------------------------------

    def _handle(
        self, method: str, path: str, query: str, body: bytes, headers: Mapping[str, str]
    ) -> _Response:
        method = method.upper()
        params = _parse_form(query)
        if method == "POST":
            params.update(_parse_form(body.decode("utf-8", "replace")))
        with self._lock:
            self.requests.append(RecordedRequest(method, path, params))
            fault = self._take_fault(method, path)
            if fault is not None and fault.kind == "bad_body":
                return _Response(
                    200, b"<html>502 Bad Gateway</html>", {"Content-Type": "text/html"}
                )
            if fault is not None and fault.kind != "timeout":
                status = int(fault.kind)
                error = (
                    _APIError(429, "Too many requests.", type="rate_limit_error", code="rate_limit")
                    if status == 429
                    else _APIError(status, "An unknown error occurred.", type="api_error")
                )
                return self._error_response(error)
            try:
                self._authenticate(headers)
                response = _Response(
                    200, json.dumps(self._route(method, path, params)).encode(), self._headers()
                )
            except _APIError as exc:
                response = self._error_response(exc)
            return attrs.evolve(response, delay=fault.delay) if fault is not None else response

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.method in (method, "*") and fault.pattern.search(path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, key = auth.partition(" ")
        if not key:
            raise _APIError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth.",
            )
        if scheme.lower() != "bearer" or not secrets.compare_digest(key, self.api_key):
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

    def _error_response(self, error: _APIError) -> _Response:
        body = json.dumps({"error": error.payload}).encode()
        return _Response(error.status, body, self._headers())

    # -- endpoints ------------------------------------------------------------------------

    def _get_price(self, price_id: str, params: _JSON) -> _JSON:
        return copy.deepcopy(self._require(self._prices, price_id, "price", api=True))

    def _get_product(self, product_id: str, params: _JSON) -> _JSON:
        return copy.deepcopy(self._require(self._products, product_id, "product", api=True))

    def _list_invoice_lines(self, invoice_id: str, params: _JSON) -> _JSON:
        lines = self._invoice_lines.get(invoice_id)
        if lines is None:
            raise _missing("invoice", invoice_id, "invoice")
        return _paginate(copy.deepcopy(lines), params, f"/v1/invoices/{invoice_id}/lines")

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
        checks: dict[str, Callable[[int, int], bool]] = {
            "gte": lambda a, b: a >= b,
            "gt": lambda a, b: a > b,
            "lte": lambda a, b: a <= b,
            "lt": lambda a, b: a < b,
        }
        newest_first = [
            event
            for _, event in sorted(
                enumerate(self._events), key=lambda p: (p[1]["created"], p[0]), reverse=True
            )
            if (not patterns or any(fnmatch.fnmatchcase(event["type"], p) for p in patterns))
            and all(checks[op](event["created"], v) for op, v in limits.items() if op in checks)
        ]
        return _paginate(copy.deepcopy(newest_first), params, "/v1/events")

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
        endpoint_id = self._new_id("we")
        endpoint: _JSON = {
            "id": endpoint_id,
            "object": "webhook_endpoint",
            "api_version": params.get("api_version") or self.api_version,
            "created": self.now,
            "description": params.get("description") or None,
            "enabled_events": [],
            "livemode": False,
            "metadata": {},
            "status": "enabled",
            "url": "",
        }
        self._endpoints[endpoint_id] = endpoint
        self._update_endpoint(endpoint_id, params)
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

    def _get_account(self, _: str, params: _JSON) -> _JSON:
        return {
            "id": "acct_emulator",
            "object": "account",
            "country": "US",
            "default_currency": "usd",
            "livemode": self.api_key.startswith(("sk_live_", "rk_live_")),
        }

    def _list_prices(self, _: str, params: _JSON) -> _JSON:
        """``active`` and ``type`` filters, newest first, as Stripe lists them."""
        active = params.get("active")
        kind = params.get("type")
        prices = [
            price
            for _, price in sorted(
                enumerate(self._prices.values()),
                key=lambda p: (p[1]["created"], p[0]),
                reverse=True,
            )
            if (active is None or str(price["active"]).lower() == str(active).lower())
            and (kind is None or price["type"] == kind)
        ]
        return _paginate(copy.deepcopy(prices), params, "/v1/prices")

    def _list_subscriptions(self, _: str, params: _JSON) -> _JSON:
        """``status`` filter (default: all but canceled, as Stripe; ``all`` for every one)."""
        status = params.get("status")
        subscriptions = [
            self._render_subscription(subscription)
            for _, subscription in sorted(
                enumerate(self._subscriptions.values()),
                key=lambda p: (p[1]["created"], p[0]),
                reverse=True,
            )
            if (status == "all")
            or (status is None and subscription["status"] != "canceled")
            or subscription["status"] == status
        ]
        return _paginate(subscriptions, params, "/v1/subscriptions")

    # -- rendering ------------------------------------------------------------------------

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
            "cancel_at": None,
            "cancel_at_period_end": False,
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
            "start_date": subscription["created"],
            "status": subscription["status"],
        }
        if is_old_shape(self.api_version):
            # basil moved the period onto the items.
            rendered["current_period_start"] = start
            rendered["current_period_end"] = end
        return rendered

    def _pay_subscription(self, subscription: _JSON, billing_reason: str) -> _JSON:
        return self._invoice_paid(
            subscription["customer"],
            subscription,
            [(item["price"], item["quantity"], item["id"]) for item in subscription["items"]],
            billing_reason=billing_reason,
            period=(subscription["current_period_start"], subscription["current_period_end"]),
        )

    def _invoice_paid(
        self,
        customer_id: str,
        subscription: _JSON | None,
        lines: Sequence[tuple[str, int, str | None]],
        *,
        billing_reason: str,
        period: tuple[int, int],
    ) -> _JSON:
        """Store a paid invoice and record its ``invoice.paid`` event.

        The lead's factory renders the shape; the fix-ups make it match this emulator's
        objects (real Price, item ids, amounts, metadata snapshot, line-list URL).
        """
        customer = self._customers[customer_id]
        invoice_id = self._new_id("in")
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
            invoice_id=invoice_id,
            event_id=self._new_id("evt"),
            created=self.now,
            period_start=period[0],
            period_end=period[1],
        )
        invoice = event["data"]["object"]
        old_shape = is_old_shape(self.api_version)
        all_lines: list[_JSON] = invoice["lines"]["data"]
        for line, price, (_, quantity, item_id) in zip(all_lines, prices, lines, strict=True):
            line["amount"] = price["unit_amount"] * quantity
            line["invoice"] = invoice_id
            if old_shape:
                line["price"] = copy.deepcopy(price)
                line["subscription_item"] = item_id
            elif item_id is not None:
                line["parent"]["subscription_item_details"]["subscription_item"] = item_id
        if subscription is not None:
            snapshot = dict(subscription["metadata"])
            details = (
                invoice["subscription_details"]
                if old_shape
                else invoice["parent"]["subscription_details"]
            )
            details["metadata"] = snapshot
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
        return self._record_event(event)

    def _record_event(self, event: _JSON) -> _JSON:
        self._events.append(copy.deepcopy(event))
        return event

    # -- helpers --------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_emu{next(self._ids):06d}"

    @staticmethod
    def _require(store: dict[str, _JSON], object_id: str, kind: str, *, api: bool = False) -> _JSON:
        """The stored object; a 404 Stripe error over HTTP, a ``KeyError`` for the story API."""
        try:
            return store[object_id]
        except KeyError:
            if api:
                raise _missing(kind, object_id) from None
            raise KeyError(f"the emulator has no {kind} {object_id!r}") from None

    @staticmethod
    def _advance(timestamp: int, price: _JSON) -> int:
        """``timestamp`` plus one billing interval of ``price``, in calendar months for
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


def _mask(api_key: str) -> str:
    return f"{api_key[:8]}****{api_key[-4:]}" if len(api_key) > 12 else "****"


def _parse_form(text: str) -> _JSON:
    """Decode Stripe's form encoding: ``a[b][c]=v`` nests, ``a[0]=``/``a[]=`` build lists."""
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
    """Stripe's semantics: keys merge, ``""`` unsets a key, ``metadata=""`` clears all."""
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
    """One page of a list, as Stripe's cursor pagination (``limit``, ``starting_after``)."""
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
