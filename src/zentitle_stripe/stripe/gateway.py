"""[`StripeGateway`][zentitle_stripe.stripe.gateway.StripeGateway]: the Stripe protocols over
stripe-python's `StripeClient`.

Every stripe-python error becomes a
[`StripeAPIError`][zentitle_stripe.exceptions.StripeAPIError], so callers only ever see one
error type with a `transient` flag.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import httpx
import stripe

from ..exceptions import ConfigurationError, InvalidPayloadError, StripeAPIError
from ._http import HTTPXClient
from ._payments import PaymentReads
from .events import InvoiceLine, Subscription, parse_invoice_line, parse_subscription
from .models import (
    Account,
    Customer,
    KeyMode,
    Price,
    Product,
    WebhookEndpoint,
    key_mode,
    mask_key,
    parse_account,
    parse_customer,
    parse_endpoint,
    parse_price,
    parse_product,
)

__all__ = ["StripeGateway"]

_Item = TypeVar("_Item", bound=stripe.StripeObject)
_Result = TypeVar("_Result")


class _PriceCache:
    """A thread-safe LRU with expiry: Prices rarely change, but they can (metadata edits)."""

    def __init__(self, maxsize: int, ttl: float) -> None:
        self._maxsize = maxsize
        self._ttl = ttl
        self._data: OrderedDict[str, tuple[float, Price]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Price | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return entry[1]

    def put(self, key: str, value: Price) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            self._data[key] = (time.monotonic() + self._ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self._maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class StripeGateway(PaymentReads):
    """[`StripeAPI`][zentitle_stripe.stripe.api.StripeAPI] (and `StripeOpsAPI`, for the
    operations commands) over stripe-python's `StripeClient`.

    `api_base` points it at another server (the emulator, stripe-mock); stripe-python
    retries connection errors, 409 and 5xx `max_network_retries` times itself. Prices are
    cached by id (LRU, `price_cache_ttl` seconds; 0 disables). `http_transport` runs the
    real stripe-python HTTP code over an httpx transport, e.g. `StripeEmulator.transport()`.
    """

    PRICE_CACHE_SIZE = 1024

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        timeout: float = 20.0,
        max_network_retries: int = 2,
        price_cache_ttl: float = 600.0,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ConfigurationError("the Stripe API key is empty")
        self._api_key = api_key
        self._api_base = api_base.rstrip("/") if api_base else None
        self._http_client = HTTPXClient(timeout, http_transport)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": self._api_base} if self._api_base else None,
            max_network_retries=max_network_retries,
            http_client=self._http_client,
        )
        self._prices = _PriceCache(self.PRICE_CACHE_SIZE, price_cache_ttl)

    @property
    def mode(self) -> KeyMode:
        """`test`/`live`/`unknown`, from the key prefix (a `doctor` check)."""
        return key_mode(self._api_key)

    def __repr__(self) -> str:
        base = f", api_base={self._api_base!r}" if self._api_base else ""
        return f"StripeGateway(api_key={mask_key(self._api_key)!r}{base})"

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._http_client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> StripeGateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def clear_caches(self) -> None:
        """Forget cached Prices, e.g. after fixing a Price's metadata."""
        self._prices.clear()

    # -- StripeAPI ------------------------------------------------------------------------

    def retrieve_price(self, price_id: str) -> Price:
        """Fetch a Price (`GET /v1/prices/{id}`), cached by id."""
        cached = self._prices.get(price_id)
        if cached is not None:
            return cached
        with self._errors(f"retrieving price {price_id}"):
            price = parse_price(self._client.v1.prices.retrieve(price_id).to_dict())
        self._prices.put(price_id, price)
        return price

    def retrieve_product(self, product_id: str) -> Product:
        """Fetch a Product (`GET /v1/products/{id}`)."""
        with self._errors(f"retrieving product {product_id}"):
            return parse_product(self._client.v1.products.retrieve(product_id).to_dict())

    def list_invoice_lines(self, invoice_id: str) -> list[InvoiceLine]:
        """Every line of an invoice (`GET /v1/invoices/{id}/lines`, 100 per page)."""
        lines = self._client.v1.invoices.line_items
        return list(
            self._each(
                f"listing the lines of invoice {invoice_id}",
                lambda: lines.list(invoice_id, params={"limit": 100}),
                lambda line: parse_invoice_line(line.to_dict()),
            )
        )

    def retrieve_subscription(self, subscription_id: str) -> Subscription:
        """Fetch a Subscription (`GET /v1/subscriptions/{id}`)."""
        with self._errors(f"retrieving subscription {subscription_id}"):
            data = self._client.v1.subscriptions.retrieve(subscription_id).to_dict()
            return parse_subscription(data)

    def update_subscription_metadata(
        self, subscription_id: str, metadata: Mapping[str, str]
    ) -> None:
        """Merge metadata keys into a Subscription (`POST /v1/subscriptions/{id}`)."""
        with self._errors(f"updating the metadata of subscription {subscription_id}"):
            self._client.v1.subscriptions.update(
                subscription_id, params={"metadata": dict(metadata)}
            )

    def retrieve_customer(self, customer_id: str) -> Customer:
        """Fetch a Customer (`GET /v1/customers/{id}`)."""
        with self._errors(f"retrieving customer {customer_id}"):
            return parse_customer(self._client.v1.customers.retrieve(customer_id).to_dict())

    def update_customer_metadata(self, customer_id: str, metadata: Mapping[str, str]) -> None:
        """Merge metadata keys into a Customer (`POST /v1/customers/{id}`)."""
        with self._errors(f"updating the metadata of customer {customer_id}"):
            self._client.v1.customers.update(customer_id, params={"metadata": dict(metadata)})

    # -- StripeOpsAPI (operations commands) -------------------------------------------------

    def retrieve_account(self) -> Account:
        """The key's account (`GET /v1/account`): proves the key works, changes nothing."""
        with self._errors("retrieving the account"):
            return parse_account(self._client.v1.accounts.retrieve_current().to_dict())

    def list_prices(self, *, active: bool = True, recurring: bool = True) -> Iterator[Price]:
        """Prices, 100 per page (`GET /v1/prices`); a generator, so progress can show."""
        params: dict[str, Any] = {"limit": 100, "active": active}
        if recurring:
            params["type"] = "recurring"
        return self._each(
            "listing prices",
            lambda: self._client.v1.prices.list(params=_untyped(params)),
            lambda item: parse_price(item.to_dict()),
        )

    def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        """Every webhook endpoint (`GET /v1/webhook_endpoints`, 100 per page)."""
        endpoints = self._client.v1.webhook_endpoints
        return list(
            self._each(
                "listing webhook endpoints",
                lambda: endpoints.list(params={"limit": 100}),
                lambda endpoint: parse_endpoint(endpoint.to_dict()),
            )
        )

    def create_webhook_endpoint(
        self, url: str, enabled_events: Sequence[str], *, api_version: str | None = None
    ) -> WebhookEndpoint:
        """Create an endpoint (`POST /v1/webhook_endpoints`); the only time Stripe
        returns its signing secret."""
        params: dict[str, Any] = {"url": url, "enabled_events": list(enabled_events)}
        if api_version:
            params["api_version"] = api_version
        with self._errors(f"creating the webhook endpoint for {url}"):
            data = self._client.v1.webhook_endpoints.create(params=_untyped(params)).to_dict()
            return parse_endpoint(data)

    def update_webhook_endpoint(
        self,
        endpoint_id: str,
        *,
        enabled_events: Sequence[str] | None = None,
        disabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Change an endpoint's events and/or status (`POST /v1/webhook_endpoints/{id}`)."""
        params: dict[str, Any] = {}
        if enabled_events is not None:
            params["enabled_events"] = list(enabled_events)
        if disabled is not None:
            params["disabled"] = disabled
        with self._errors(f"updating webhook endpoint {endpoint_id}"):
            data = self._client.v1.webhook_endpoints.update(
                endpoint_id, params=_untyped(params)
            ).to_dict()
            return parse_endpoint(data)

    def list_events(
        self, types: Sequence[str], *, created_gte: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Events of `types` as plain JSON, newest first, 100 per page (`GET /v1/events`)."""
        params: dict[str, Any] = {"limit": 100, "types": list(types)}
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        return self._each(
            "listing events",
            lambda: self._client.v1.events.list(params=_untyped(params)),
            # for_json: decimal fields come back as strings, as in a webhook body
            lambda event: event.to_dict(for_json=True),
        )

    def list_subscriptions(self, *, status: str = "active") -> Iterator[Subscription]:
        """Subscriptions with `status` (`all` for every one), 100 per page."""
        return self._each(
            "listing subscriptions",
            lambda: self._client.v1.subscriptions.list(params={"limit": 100, "status": status}),
            lambda item: parse_subscription(item.to_dict()),
        )

    # -- paging and errors ------------------------------------------------------------------

    def _each(
        self,
        action: str,
        first_page: Callable[[], stripe.ListObject[_Item]],
        convert: Callable[[_Item], _Result],
    ) -> Iterator[_Result]:
        """Every item of a listing, all pages, converted; a generator, so nothing is
        fetched before the first item is asked for."""
        with self._errors(action):
            for item in first_page().auto_paging_iter():
                yield convert(item)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn stripe-python errors (and unreadable objects) into `StripeAPIError`."""
        try:
            yield
        except stripe.StripeError as exc:
            raise self._wrap(exc, action) from exc
        except InvalidPayloadError as exc:
            raise StripeAPIError(f"Stripe error while {action}: {exc}") from exc

    def _wrap(self, exc: stripe.StripeError, action: str) -> StripeAPIError:
        status = exc.http_status
        if isinstance(exc, stripe.APIConnectionError):
            detail = "could not reach Stripe (network error or timeout)"
            transient = True
        else:
            reason = exc.user_message or type(exc).__name__
            detail = f"HTTP {status}: {reason[:300]}"
            # 429, 5xx and 409 (lock_timeout) pass; a garbled 2xx body (a plain APIError) is
            # a proxy or network fault, not something a human must fix.
            transient = (
                isinstance(exc, stripe.RateLimitError)
                or status in (409, 429)
                or (status is not None and status >= 500)
                or (type(exc) is stripe.APIError and (status is None or status < 400))
            )
        message = f"Stripe error while {action}: {detail}".replace(
            self._api_key, mask_key(self._api_key)
        )
        return StripeAPIError(
            message,
            status=status,
            transient=transient,
            retry_after=_retry_after(exc.headers),
            # stripe-python sets ``code`` only on some error classes; the body always has it.
            error_code=exc.code or (exc.error.code if exc.error is not None else None),
        )


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = (headers or {}).get("retry-after") or (headers or {}).get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _untyped(params: dict[str, Any]) -> Any:
    """stripe-python types `api_version` and event names as Literals of the versions it
    knows; a pinned version or event newer than the installed SDK is still valid."""
    return cast(Any, params)
