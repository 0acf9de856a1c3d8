"""The Stripe calls provisioning needs, behind a small protocol.

basil+ webhook payloads carry only price *ids*, so the provisioner must fetch Prices (to read
``offering_sku``), page through long invoices and write activation codes back to the
Subscription. :class:`StripeAPI` is the contract the provisioner depends on (fakes can
implement it); :class:`StripeGateway` implements it with stripe-python's ``StripeClient`` and
turns every stripe-python error into :class:`~zentitle_stripe.exceptions.StripeAPIError`, so
callers only ever see one error type with a ``transient`` flag.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Protocol, cast, runtime_checkable

import attrs
import httpx
import stripe

from .events import InvoiceLine, Subscription, parse_invoice_line, parse_subscription
from .exceptions import ConfigurationError, InvalidPayloadError, StripeAPIError

__all__ = [
    "Account",
    "Customer",
    "KeyMode",
    "Price",
    "Product",
    "StripeAPI",
    "StripeGateway",
    "StripeOpsAPI",
    "WebhookEndpoint",
    "key_mode",
]

KeyMode = Literal["test", "live", "unknown"]


def key_mode(api_key: str) -> KeyMode:
    """Whether ``api_key`` is a test or live secret/restricted key, from its prefix."""
    if api_key.startswith(("sk_test_", "rk_test_")):
        return "test"
    if api_key.startswith(("sk_live_", "rk_live_")):
        return "live"
    return "unknown"


def _mask_key(api_key: str) -> str:
    """``sk_test_****1234``: enough to tell keys apart in logs, useless to an attacker."""
    prefix = next(
        (p for p in ("sk_test_", "rk_test_", "sk_live_", "rk_live_") if api_key.startswith(p)),
        "",
    )
    tail = api_key[-4:] if len(api_key) - len(prefix) >= 12 else ""
    return f"{prefix}****{tail}"


@attrs.frozen
class Price:
    """A Stripe Price: ``metadata['offering_sku']`` or ``lookup_key`` names the offering."""

    id: str
    product_id: str | None
    metadata: Mapping[str, str]
    lookup_key: str | None
    active: bool
    type: str | None
    """``recurring`` or ``one_time``."""
    recurring_interval: str | None
    """``day``, ``week``, ``month`` or ``year``; ``None`` for one-time prices."""
    recurring_interval_count: int | None


@attrs.frozen
class Product:
    """A Stripe Product; fetched only to explain a SKU misplaced on the Product."""

    id: str
    name: str | None
    metadata: Mapping[str, str]


@attrs.frozen
class Customer:
    """A Stripe Customer; ``deleted`` is true for a deleted customer (Stripe keeps a stub)."""

    id: str
    email: str | None
    name: str | None
    metadata: Mapping[str, str]
    deleted: bool


class StripeAPI(Protocol):
    """The Stripe operations provisioning uses; every failure is a ``StripeAPIError``."""

    def retrieve_price(self, price_id: str) -> Price:
        """Fetch a Price (``GET /v1/prices/{id}``); implementations may cache it."""
        ...

    def retrieve_product(self, product_id: str) -> Product:
        """Fetch a Product (``GET /v1/products/{id}``) to diagnose a SKU set on it."""
        ...

    def list_invoice_lines(self, invoice_id: str) -> list[InvoiceLine]:
        """Every line of an invoice (``GET /v1/invoices/{id}/lines``, all pages)."""
        ...

    def retrieve_subscription(self, subscription_id: str) -> Subscription:
        """Fetch a Subscription with full item Prices (``GET /v1/subscriptions/{id}``)."""
        ...

    def update_subscription_metadata(
        self, subscription_id: str, metadata: Mapping[str, str]
    ) -> None:
        """Merge keys into the Subscription's metadata (``POST /v1/subscriptions/{id}``);
        keys not given are kept, ``""`` removes a key."""
        ...

    def retrieve_customer(self, customer_id: str) -> Customer:
        """Fetch a Customer (``GET /v1/customers/{id}``), possibly a deleted stub."""
        ...

    def update_customer_metadata(self, customer_id: str, metadata: Mapping[str, str]) -> None:
        """Merge keys into the Customer's metadata (``POST /v1/customers/{id}``)."""
        ...


@attrs.frozen
class Account:
    """The account a key belongs to (``GET /v1/account``): proof the key works."""

    id: str
    livemode: bool | None


@attrs.frozen
class WebhookEndpoint:
    """A webhook endpoint; ``secret`` is only ever set in the response that created it."""

    id: str
    url: str
    enabled_events: tuple[str, ...]
    status: str | None
    api_version: str | None
    secret: str | None = attrs.field(default=None, repr=False)


@runtime_checkable
class StripeOpsAPI(Protocol):
    """The extra Stripe calls of the operations commands (``doctor``, ``connect``,
    ``reconcile``), kept apart from :class:`StripeAPI` so provisioning fakes stay small."""

    @property
    def mode(self) -> KeyMode:
        """``test``/``live``/``unknown``, from the key prefix."""
        ...

    def retrieve_account(self) -> Account:
        """The key's account (``GET /v1/account``): a cheap authenticated call."""
        ...

    def list_prices(self, *, active: bool = True, recurring: bool = True) -> Iterator[Price]:
        """Prices, all pages (``GET /v1/prices?active=&type=recurring``)."""
        ...

    def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        """Every webhook endpoint of the account (``GET /v1/webhook_endpoints``)."""
        ...

    def create_webhook_endpoint(
        self, url: str, enabled_events: Sequence[str], *, api_version: str | None = None
    ) -> WebhookEndpoint:
        """Create an endpoint (``POST /v1/webhook_endpoints``); the result has the secret."""
        ...

    def update_webhook_endpoint(
        self,
        endpoint_id: str,
        *,
        enabled_events: Sequence[str] | None = None,
        disabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Change an endpoint's events and/or status (``POST /v1/webhook_endpoints/{id}``)."""
        ...

    def list_events(
        self, types: Sequence[str], *, created_gte: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Events as plain JSON, newest first, all pages (``GET /v1/events``)."""
        ...

    def list_subscriptions(self, *, status: str = "active") -> Iterator[Subscription]:
        """Subscriptions with ``status`` (or ``all``), all pages (``GET /v1/subscriptions``)."""
        ...

    def retrieve_subscription(self, subscription_id: str) -> Subscription:
        """Fetch a Subscription (``GET /v1/subscriptions/{id}``)."""
        ...

    def retrieve_product(self, product_id: str) -> Product:
        """Fetch a Product (``GET /v1/products/{id}``)."""
        ...

    def retrieve_customer(self, customer_id: str) -> Customer:
        """Fetch a Customer (``GET /v1/customers/{id}``)."""
        ...


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


class _HTTPXClient(stripe.HTTPXClient):
    """stripe-python's httpx client, optionally on a given transport (in-process tests)."""

    def __init__(self, timeout: float, transport: httpx.BaseTransport | None) -> None:
        super().__init__(timeout=timeout, allow_sync_methods=True)
        if transport is not None:
            # stripe.HTTPXClient has no transport option; swap its sync client for one that
            # has, keeping the rest of its request/error handling.
            self._client.close()  # type: ignore[union-attr]
            self._client = httpx.Client(transport=transport)

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> Any:
        # stripe-python passes the encoded form as ``data=``, which httpx deprecates for
        # raw text; ``content=`` sends the same bytes without the warning.
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        if isinstance(kwargs.get("data"), (str, bytes)):
            kwargs["content"] = kwargs.pop("data")
        return args, kwargs


class StripeGateway:
    """:class:`StripeAPI` over stripe-python's ``StripeClient``.

    ``api_base`` points it at another server (the emulator, stripe-mock); stripe-python
    retries connection errors, 409 and 5xx ``max_network_retries`` times itself. Prices are
    cached by id (LRU, ``price_cache_ttl`` seconds; 0 disables). ``http_transport`` runs the
    real stripe-python HTTP code over an httpx transport, e.g. ``StripeEmulator.transport()``.
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
        self._http_client = _HTTPXClient(timeout, http_transport)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": self._api_base} if self._api_base else None,
            max_network_retries=max_network_retries,
            http_client=self._http_client,
        )
        self._prices = _PriceCache(self.PRICE_CACHE_SIZE, price_cache_ttl)

    @property
    def mode(self) -> KeyMode:
        """``test``/``live``/``unknown``, from the key prefix (a ``doctor`` check)."""
        return key_mode(self._api_key)

    def __repr__(self) -> str:
        base = f", api_base={self._api_base!r}" if self._api_base else ""
        return f"StripeGateway(api_key={_mask_key(self._api_key)!r}{base})"

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
        """Fetch a Price (``GET /v1/prices/{id}``), cached by id."""
        cached = self._prices.get(price_id)
        if cached is not None:
            return cached
        with self._errors(f"retrieving price {price_id}"):
            data = self._client.v1.prices.retrieve(price_id).to_dict()
            price = _parse_price(data)
        self._prices.put(price_id, price)
        return price

    def retrieve_product(self, product_id: str) -> Product:
        """Fetch a Product (``GET /v1/products/{id}``)."""
        with self._errors(f"retrieving product {product_id}"):
            data = self._client.v1.products.retrieve(product_id).to_dict()
            return Product(
                id=_require_id(data, "product"),
                name=_opt_str(data.get("name")),
                metadata=_str_map(data.get("metadata")),
            )

    def list_invoice_lines(self, invoice_id: str) -> list[InvoiceLine]:
        """Every line of an invoice (``GET /v1/invoices/{id}/lines``, 100 per page)."""
        with self._errors(f"listing the lines of invoice {invoice_id}"):
            page = self._client.v1.invoices.line_items.list(invoice_id, params={"limit": 100})
            return [parse_invoice_line(line.to_dict()) for line in page.auto_paging_iter()]

    def retrieve_subscription(self, subscription_id: str) -> Subscription:
        """Fetch a Subscription (``GET /v1/subscriptions/{id}``)."""
        with self._errors(f"retrieving subscription {subscription_id}"):
            data = self._client.v1.subscriptions.retrieve(subscription_id).to_dict()
            return parse_subscription(data)

    def update_subscription_metadata(
        self, subscription_id: str, metadata: Mapping[str, str]
    ) -> None:
        """Merge metadata keys into a Subscription (``POST /v1/subscriptions/{id}``)."""
        with self._errors(f"updating the metadata of subscription {subscription_id}"):
            self._client.v1.subscriptions.update(
                subscription_id, params={"metadata": dict(metadata)}
            )

    def retrieve_customer(self, customer_id: str) -> Customer:
        """Fetch a Customer (``GET /v1/customers/{id}``)."""
        with self._errors(f"retrieving customer {customer_id}"):
            data = self._client.v1.customers.retrieve(customer_id).to_dict()
            return Customer(
                id=_require_id(data, "customer"),
                email=_opt_str(data.get("email")),
                name=_opt_str(data.get("name")),
                metadata=_str_map(data.get("metadata")),
                deleted=data.get("deleted") is True,
            )

    def update_customer_metadata(self, customer_id: str, metadata: Mapping[str, str]) -> None:
        """Merge metadata keys into a Customer (``POST /v1/customers/{id}``)."""
        with self._errors(f"updating the metadata of customer {customer_id}"):
            self._client.v1.customers.update(customer_id, params={"metadata": dict(metadata)})

    # -- StripeOpsAPI (operations commands) -------------------------------------------------

    def retrieve_account(self) -> Account:
        """The key's account (``GET /v1/account``): proves the key works, changes nothing."""
        with self._errors("retrieving the account"):
            data = self._client.v1.accounts.retrieve_current().to_dict()
            livemode = data.get("livemode")
            return Account(
                id=_require_id(data, "account"),
                livemode=livemode if isinstance(livemode, bool) else None,
            )

    def list_prices(self, *, active: bool = True, recurring: bool = True) -> Iterator[Price]:
        """Prices, 100 per page (``GET /v1/prices``); a generator, so progress can show."""
        params: dict[str, Any] = {"limit": 100, "active": active}
        if recurring:
            params["type"] = "recurring"
        with self._errors("listing prices"):
            for item in self._client.v1.prices.list(params=_untyped(params)).auto_paging_iter():
                yield _parse_price(item.to_dict())

    def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        """Every webhook endpoint (``GET /v1/webhook_endpoints``, 100 per page)."""
        with self._errors("listing webhook endpoints"):
            page = self._client.v1.webhook_endpoints.list(params={"limit": 100})
            return [_parse_endpoint(e.to_dict()) for e in page.auto_paging_iter()]

    def create_webhook_endpoint(
        self, url: str, enabled_events: Sequence[str], *, api_version: str | None = None
    ) -> WebhookEndpoint:
        """Create an endpoint (``POST /v1/webhook_endpoints``); the only time Stripe
        returns its signing secret."""
        params: dict[str, Any] = {"url": url, "enabled_events": list(enabled_events)}
        if api_version:
            params["api_version"] = api_version
        with self._errors(f"creating the webhook endpoint for {url}"):
            data = self._client.v1.webhook_endpoints.create(params=_untyped(params)).to_dict()
            return _parse_endpoint(data)

    def update_webhook_endpoint(
        self,
        endpoint_id: str,
        *,
        enabled_events: Sequence[str] | None = None,
        disabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Change an endpoint's events and/or status (``POST /v1/webhook_endpoints/{id}``)."""
        params: dict[str, Any] = {}
        if enabled_events is not None:
            params["enabled_events"] = list(enabled_events)
        if disabled is not None:
            params["disabled"] = disabled
        with self._errors(f"updating webhook endpoint {endpoint_id}"):
            data = self._client.v1.webhook_endpoints.update(
                endpoint_id, params=_untyped(params)
            ).to_dict()
            return _parse_endpoint(data)

    def list_events(
        self, types: Sequence[str], *, created_gte: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Events of ``types`` as plain JSON, newest first, 100 per page (``GET /v1/events``)."""
        params: dict[str, Any] = {"limit": 100, "types": list(types)}
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        with self._errors("listing events"):
            for event in self._client.v1.events.list(params=_untyped(params)).auto_paging_iter():
                # for_json: decimal fields come back as strings, as in a webhook body
                yield event.to_dict(for_json=True)

    def list_subscriptions(self, *, status: str = "active") -> Iterator[Subscription]:
        """Subscriptions with ``status`` (``all`` for every one), 100 per page."""
        with self._errors("listing subscriptions"):
            page = self._client.v1.subscriptions.list(params={"limit": 100, "status": status})
            for item in page.auto_paging_iter():
                yield parse_subscription(item.to_dict())

    # -- errors ---------------------------------------------------------------------------

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn stripe-python errors (and unreadable objects) into ``StripeAPIError``."""
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
            self._api_key, _mask_key(self._api_key)
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


def _parse_price(data: Mapping[str, Any]) -> Price:
    recurring = data.get("recurring")
    recurring = recurring if isinstance(recurring, dict) else {}
    product = data.get("product")
    if isinstance(product, dict):
        product = product.get("id")
    count = recurring.get("interval_count")
    return Price(
        id=_require_id(data, "price"),
        product_id=_opt_str(product),
        metadata=_str_map(data.get("metadata")),
        lookup_key=_opt_str(data.get("lookup_key")),
        active=data.get("active") is not False,
        type=_opt_str(data.get("type")),
        recurring_interval=_opt_str(recurring.get("interval")),
        recurring_interval_count=count if isinstance(count, int) else None,
    )


def _require_id(data: Mapping[str, Any], what: str) -> str:
    value = data.get("id")
    if not isinstance(value, str) or not value:
        raise InvalidPayloadError(f"the {what} object has no id")
    return value


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def _untyped(params: dict[str, Any]) -> Any:
    """stripe-python types ``api_version`` and event names as Literals of the versions it
    knows; a pinned version or event newer than the installed SDK is still valid."""
    return cast(Any, params)


def _parse_endpoint(data: Mapping[str, Any]) -> WebhookEndpoint:
    events = data.get("enabled_events")
    return WebhookEndpoint(
        id=_require_id(data, "webhook endpoint"),
        url=str(data.get("url") or ""),
        enabled_events=tuple(e for e in events if isinstance(e, str))
        if isinstance(events, list)
        else (),
        status=_opt_str(data.get("status")),
        api_version=_opt_str(data.get("api_version")),
        secret=_opt_str(data.get("secret")),
    )
