"""Zentitle2 Management API client: OAuth2 tokens, retries, paging and typed results.

Zentitle2 has no idempotency keys (reference §3), so the client never blindly repeats a
request that may have changed something: creates and ``renew`` are retried only when the
request certainly did not reach the server (the connection was refused, or a 429 turned
it away). A 502, 503 or 504 may come from a gateway after the backend acted, and a
timeout after sending says nothing, so those surface as errors with
``may_have_landed=True`` and the caller looks before acting again. Everything else (GETs,
PATCHes that set values) is retried with exponential backoff and full jitter on network
errors, 429, 502, 503 and 504.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx

from zentitle_stripe.exceptions import ZentitleAPIError

from .models import (
    Contact,
    Customer,
    Entitlement,
    EntitlementGroup,
    Offering,
    format_datetime,
)

__all__ = ["DEFAULT_API_VERSION", "ZentitleAPI", "ZentitleClient"]

DEFAULT_API_VERSION = "2025-10-10"
"""The pinned ``N-Api-Version``: group creation differs between versions (reference §9)."""

PAGE_SIZE = 100
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Only a 429 certainly turned the request away before any work, so only then may a create
# repeat: a 503 can come from a gateway after the backend acted.
_UNPROCESSED_STATUSES = frozenset({429})
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER = 30.0
_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 8.0
_MISS_RELIST_INTERVAL = 5.0
_TOKEN_REFRESH_MARGIN = 60.0
_CREDENTIALS_HINT = "check ZENTITLE_CLIENT_ID, ZENTITLE_CLIENT_SECRET and ZENTITLE_TOKEN_URL"

_ModelT = TypeVar("_ModelT")


class ZentitleAPI(Protocol):
    """What the provisioning flows need from Zentitle2; :class:`ZentitleClient` implements it.

    Every method raises :class:`~zentitle_stripe.exceptions.ZentitleAPIError` on failure;
    its ``transient`` flag says whether trying again later may succeed.
    """

    def create_customer(self, *, name: str, account_ref_id: str | None = None) -> Customer:
        """Create a customer (``POST /api/v1/customers``); not retried once it may have arrived."""
        ...

    def find_customers(self, account_ref_id: str) -> list[Customer]:
        """Customers whose ``accountRefId`` equals ``account_ref_id``, matched client-side.

        ``GET /api/v1/customers`` has no filter, so this pages every customer: use it only
        to recover from a create whose answer was lost.
        """
        ...

    def get_customer(self, customer_id: str) -> Customer:
        """Read one customer (``GET /api/v1/customers/{id}``)."""
        ...

    def create_contact(
        self,
        customer_id: str,
        *,
        email: str,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> Contact:
        """Add a contact to a customer (``POST /api/v1/customers/{id}/contacts``)."""
        ...

    def search_contacts(self, email: str) -> list[Contact]:
        """Contacts with this email, all pages (``GET /api/v1/customers/contacts/search``)."""
        ...

    def list_offerings(self) -> list[Offering]:
        """Every offering with its plan, all pages (``GET /api/v1/offerings?expand=plan``)."""
        ...

    def find_offering(self, sku: str) -> Offering | None:
        """The offering whose SKU equals ``sku`` exactly, from a cached :meth:`list_offerings`."""
        ...

    def create_entitlement_group(
        self,
        *,
        skus: Sequence[str],
        customer_id: str | None = None,
        order_ref_id: str | None = None,
    ) -> EntitlementGroup:
        """Create a group with one entitlement per SKU (``POST /api/v1/entitlements/groups``).

        Not idempotent: after any error, call :meth:`find_entitlement_groups` with the
        same ``order_ref_id`` before creating again.
        """
        ...

    def get_entitlement_group(self, group_id: str) -> EntitlementGroup:
        """One group with its entitlements (``GET /api/v1/entitlements/groups/{id}``)."""
        ...

    def list_entitlement_groups(self, *, customer_id: str | None = None) -> list[EntitlementGroup]:
        """All groups, optionally of one customer, with entitlements, all pages.

        ``GET /api/v1/entitlements/groups?customerId=&expand=entitlements``.
        """
        ...

    def find_entitlement_groups(
        self, order_ref_id: str, *, customer_id: str | None = None
    ) -> list[EntitlementGroup]:
        """Groups whose ``orderRefId`` equals ``order_ref_id``, matched client-side.

        The API cannot filter on it and does not keep it unique, so this may return
        several groups; pass ``customer_id`` to avoid paging every group of the tenant.
        """
        ...

    def get_entitlement(self, entitlement_id: str) -> Entitlement:
        """One entitlement (``GET /api/v1/entitlements/{id}``): the only read with status,
        expiry, grace, seats and licence period together (``EntitlementModel``)."""
        ...

    def update_entitlement(
        self,
        entitlement_id: str,
        *,
        seat_count: int | None = None,
        expiry_date: datetime | None = None,
    ) -> None:
        """Set seats and/or expiry (``PATCH /api/v1/entitlements/{id}``); the only way to set
        an arbitrary expiry."""
        ...

    def renew_entitlement(self, entitlement_id: str) -> None:
        """Extend a subscription by one plan period (``PATCH /api/v1/entitlements/{id}/renew``).

        Not idempotent (each call extends again): after any error re-read the entitlement
        and compare its expiry before renewing again.
        """
        ...

    def disable_entitlement(self, entitlement_id: str) -> None:
        """Disable an entitlement (``PATCH /api/v1/entitlements/{id}/disable``)."""
        ...

    def enable_entitlement(self, entitlement_id: str) -> None:
        """Re-enable a disabled entitlement (``PATCH /api/v1/entitlements/{id}/enable``)."""
        ...

    def get_account_key(self) -> dict[str, str]:
        """The account's public key as a JWK (``GET /api/v1/account/key``), for webhooks."""
        ...

    def ping(self) -> None:
        """Obtain a token and make one cheap GET, proving URL, tenant and credentials work."""
        ...


def _path(*segments: str) -> str:
    """``/api/v1/`` + segments, each percent-encoded so an ID can never change the route."""
    return "/api/v1/" + "/".join(quote(s, safe="") for s in segments)


def _api_error_message(body: Any) -> tuple[str | None, str | None, str | None, tuple[str, ...]]:
    """``(reason, errorCode, details, validation messages)`` from an ``ApiError`` body."""
    if not isinstance(body, Mapping):
        return None, None, None, ()
    messages: list[str] = []
    raw = body.get("validationErrors")
    for item in raw if isinstance(raw, list) else ():
        if isinstance(item, Mapping) and item.get("message"):
            prop = item.get("propertyName")
            messages.append(f"{prop}: {item['message']}" if prop else str(item["message"]))
    error = body.get("error")
    code = body.get("errorCode")
    details = body.get("details")
    details_s = str(details) if details else None
    reason = details_s or "; ".join(messages) or (str(error) if error else None)
    return reason, (str(code) if code else None), details_s, tuple(messages)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare enough that the regular backoff will do
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


class ZentitleClient:
    """Synchronous :class:`ZentitleAPI` over one ``httpx.Client``; safe to share between threads.

    ``transport`` goes to httpx (tests pass ``ZentitleEmulator().transport()``); ``sleep``
    and ``clock`` are injectable so retry and token-expiry tests run instantly.
    """

    def __init__(
        self,
        api_url: str,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        token_url: str,
        *,
        api_version: str = DEFAULT_API_VERSION,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        max_retries: int = 3,
        offering_cache_ttl: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_url = token_url
        self.api_version = api_version
        self.max_retries = max_retries
        self.offering_cache_ttl = offering_cache_ttl
        self._sleep = sleep
        self._clock = clock
        self._random = random.Random()
        self._http = httpx.Client(base_url=self.api_url, timeout=timeout, transport=transport)
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_refresh_at = 0.0
        self._offerings_lock = threading.Lock()
        self._offerings: dict[str, Offering] | None = None
        self._offerings_loaded_at = 0.0

    def __repr__(self) -> str:
        return (
            f"ZentitleClient(api_url={self.api_url!r}, tenant_id={self.tenant_id!r}, "
            f"client_id={self.client_id!r}, client_secret='***')"
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ZentitleClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- tokens -------------------------------------------------------------------------

    def _access_token(self, *, rejected: str | None = None) -> str:
        """A valid token; ``rejected`` is one the API refused, so it must not be reused.

        Under the lock, so N threads needing a token cause one token request; a thread
        whose token was rejected reuses a newer one another thread already fetched.
        """
        with self._token_lock:
            token = self._token
            if token is not None and token != rejected and self._clock() < self._token_refresh_at:
                return token
            return self._fetch_token()

    def _fetch_token(self) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        try:
            response = self._send("POST", self.token_url, idempotent=True, data=form)
        except ZentitleAPIError as exc:
            raise ZentitleAPIError(
                f"could not get a Zentitle2 access token from {self.token_url}: "
                f"{exc.message}; {_CREDENTIALS_HINT}",
                status=exc.status,
                transient=exc.transient,
                retry_after=exc.retry_after,
                error_code=exc.error_code,
            ) from None
        if response.status_code >= 400:
            reason = ""
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, Mapping) and body.get("error"):
                reason = f" ({body['error']})"
            raise ZentitleAPIError(
                f"Zentitle2 token endpoint {self.token_url} answered {response.status_code}"
                f"{reason}; {_CREDENTIALS_HINT}",
                status=response.status_code,
                transient=response.status_code in _TRANSIENT_STATUSES,
                error_code=str(body["error"]) if reason and isinstance(body, Mapping) else None,
            )
        try:
            body = response.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in") or 300)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ZentitleAPIError(
                f"Zentitle2 token endpoint {self.token_url} sent an unexpected response "
                f"body; {_CREDENTIALS_HINT}",
                status=response.status_code,
            ) from None
        if not isinstance(token, str) or not token:
            raise ZentitleAPIError(
                f"Zentitle2 token endpoint {self.token_url} sent no access_token; "
                f"{_CREDENTIALS_HINT}",
                status=response.status_code,
            )
        margin = min(_TOKEN_REFRESH_MARGIN, 0.2 * lifetime)
        self._token = token
        self._token_refresh_at = self._clock() + lifetime - margin
        return token

    # -- transport ----------------------------------------------------------------------

    def _backoff(self, attempt: int, retry_after: float | None) -> None:
        if retry_after is not None:
            delay = retry_after
        else:
            delay = self._random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))
        self._sleep(delay)

    def _send(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One logical request with bounded retries; returns any response that is final.

        Raises only for network failures that are not retried (or ran out of attempts);
        HTTP error statuses are returned for the caller to interpret.
        """
        label = f"{method} {httpx.URL(url).path}"
        attempt = 0
        while True:
            try:
                response = self._http.request(method, url, headers=headers, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                error: httpx.TransportError = exc  # never reached the server: always safe
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                if not idempotent:
                    raise ZentitleAPIError(
                        f"Zentitle2 {label} got no response ({type(exc).__name__}); it may "
                        "have been processed, so it is not repeated automatically",
                        transient=True,
                        may_have_landed=True,
                    ) from exc
                error = exc
            else:
                status = response.status_code
                retryable = status in (_RETRY_STATUSES if idempotent else _UNPROCESSED_STATUSES)
                if not retryable or attempt >= self.max_retries:
                    return response
                self._backoff(attempt, _retry_after(response))
                attempt += 1
                continue
            if attempt >= self.max_retries:
                raise ZentitleAPIError(
                    f"Zentitle2 {label} failed after {attempt + 1} attempts: "
                    f"{type(error).__name__}",
                    transient=True,
                ) from error
            self._backoff(attempt, None)
            attempt += 1

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """An authenticated API call; re-authenticates once after a 401; raises on error."""
        headers = {
            "N-TenantId": self.tenant_id,
            "N-Api-Version": self.api_version,
            "Accept": "application/json",
        }
        token = self._access_token()
        for first_try in (True, False):
            headers["Authorization"] = f"Bearer {token}"
            response = self._send(
                method, path, idempotent=idempotent, headers=headers, params=params, json=json
            )
            if response.status_code == 401 and first_try:
                token = self._access_token(rejected=token)
                continue
            break
        if response.status_code >= 400:
            raise self._error(method, path, response)
        return response

    @staticmethod
    def _error(method: str, path: str, response: httpx.Response) -> ZentitleAPIError:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        reason, code, details, messages = _api_error_message(body)
        status = response.status_code
        text = f"Zentitle2 {method} {path} failed with {status}"
        if reason:
            text += f": {reason}"
        elif status == 401:
            text += f": the access token was refused; {_CREDENTIALS_HINT}"
        elif status == 403:
            text += ": forbidden; check ZENTITLE_TENANT_ID and the API client's roles"
        return ZentitleAPIError(
            text,
            status=status,
            transient=status in _TRANSIENT_STATUSES,
            retry_after=_retry_after(response),
            error_code=code,
            details=details,
            validation_errors=messages,
            may_have_landed=status >= 500 or status == 408,
        )

    @staticmethod
    def _unexpected(
        method: str, path: str, response: httpx.Response, why: str, *, transient: bool = False
    ) -> ZentitleAPIError:
        snippet = response.text[:80]
        return ZentitleAPIError(
            f"Zentitle2 {method} {path} returned an unexpected response body ({why}): {snippet!r}",
            status=response.status_code,
            transient=transient,
            may_have_landed=response.is_success,  # it answered 2xx: the work was done
        )

    def _json(self, method: str, path: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            # Not JSON at all: a proxy's page or a cut connection, worth a retry. JSON of
            # the wrong shape (below) is a contract change, which a retry will not fix.
            raise self._unexpected(method, path, response, "not JSON", transient=True) from None

    def _parse(
        self,
        method: str,
        path: str,
        response: httpx.Response,
        parse: Callable[[Mapping[str, Any]], _ModelT],
    ) -> _ModelT:
        body = self._json(method, path, response)
        try:
            return parse(body)
        except (ValueError, TypeError, AttributeError) as exc:
            raise self._unexpected(method, path, response, str(exc)) from None

    def _get(
        self, path: str, parse: Callable[[Mapping[str, Any]], _ModelT], **params: str
    ) -> _ModelT:
        return self._parse("GET", path, self._request("GET", path, params=params), parse)

    def _get_all(
        self,
        path: str,
        parse: Callable[[Mapping[str, Any]], _ModelT],
        params: Mapping[str, str] | None = None,
    ) -> list[_ModelT]:
        """Every item of a paged list, following ``pageNumber`` until ``elementsTotal``.

        Also stops on a short or empty page, so a missing ``elementsTotal`` cannot loop.
        """
        results: list[_ModelT] = []
        page = 1
        while True:
            query: dict[str, str | int] = {**(params or {}), "pageNumber": page}
            query["pageSize"] = PAGE_SIZE
            response = self._request("GET", path, params=query)
            body = self._json("GET", path, response)
            items = body.get("items") if isinstance(body, Mapping) else None
            if not isinstance(items, list):
                raise self._unexpected("GET", path, response, "no 'items' list")
            try:
                results.extend(parse(item) for item in items)
            except (ValueError, TypeError, AttributeError) as exc:
                raise self._unexpected("GET", path, response, str(exc)) from None
            total = body.get("elementsTotal")
            if len(items) < PAGE_SIZE or (isinstance(total, int) and len(results) >= total):
                return results
            page += 1

    # -- customers ------------------------------------------------------------------------

    def create_customer(self, *, name: str, account_ref_id: str | None = None) -> Customer:
        """Create a customer (``POST /api/v1/customers``).

        Retried only when the request certainly did not arrive; after any other error the
        customer may exist, so look it up (e.g. by contact email) before creating again.
        """
        body: dict[str, str] = {"name": name}
        if account_ref_id is not None:
            body["accountRefId"] = account_ref_id
        path = _path("customers")
        response = self._request("POST", path, json=body, idempotent=False)
        return self._parse("POST", path, response, Customer.from_json)

    def find_customers(self, account_ref_id: str) -> list[Customer]:
        """Customers whose ``accountRefId`` equals ``account_ref_id``, matched client-side.

        ``GET /api/v1/customers`` has no filter, so this pages every customer: it is meant
        for recovering from a create whose answer was lost, not for routine lookups.
        """
        customers = self._get_all(_path("customers"), Customer.from_json)
        return [c for c in customers if c.account_ref_id == account_ref_id]

    def get_customer(self, customer_id: str) -> Customer:
        """Read one customer (``GET /api/v1/customers/{id}``)."""
        return self._get(_path("customers", customer_id), Customer.from_json)

    def create_contact(
        self,
        customer_id: str,
        *,
        email: str,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> Contact:
        """Add a contact (``POST /api/v1/customers/{id}/contacts``); not repeated after it
        may have arrived (emails are unique per customer, so a repeat would fail anyway)."""
        body = {"email": email, "firstName": first_name, "lastName": last_name}
        path = _path("customers", customer_id, "contacts")
        payload = {k: v for k, v in body.items() if v is not None}
        response = self._request("POST", path, json=payload, idempotent=False)
        return self._parse("POST", path, response, Contact.from_json)

    def search_contacts(self, email: str) -> list[Contact]:
        """Contacts with this email, all pages (``GET /api/v1/customers/contacts/search``)."""
        return self._get_all(
            _path("customers", "contacts", "search"), Contact.from_json, {"email": email}
        )

    # -- catalogue ----------------------------------------------------------------------

    def list_offerings(self) -> list[Offering]:
        """Every offering with its plan, all pages (``GET /api/v1/offerings?expand=plan``)."""
        return self._get_all(_path("offerings"), Offering.from_json, {"expand": "plan"})

    def clear_caches(self) -> None:
        """Forget the cached offerings, so the next lookup lists them again."""
        with self._offerings_lock:
            self._offerings = None

    def find_offering(self, sku: str) -> Offering | None:
        """The offering whose SKU equals ``sku`` (exact, case-sensitive), or ``None``.

        Offerings are listed once and cached for ``offering_cache_ttl`` seconds; a miss
        re-lists at most every 5 s, so a newly added offering is found soon without a
        list per unknown SKU. The lock makes concurrent misses share one listing.
        """
        with self._offerings_lock:
            now = self._clock()
            age = now - self._offerings_loaded_at
            if (
                self._offerings is None
                or age >= self.offering_cache_ttl
                or (sku not in self._offerings and age >= _MISS_RELIST_INTERVAL)
            ):
                offerings: dict[str, Offering] = {}
                for offering in self.list_offerings():
                    if offering.sku is not None:
                        offerings.setdefault(offering.sku, offering)
                self._offerings = offerings
                self._offerings_loaded_at = self._clock()
            return self._offerings.get(sku)

    # -- entitlement groups ---------------------------------------------------------------

    def create_entitlement_group(
        self,
        *,
        skus: Sequence[str],
        customer_id: str | None = None,
        order_ref_id: str | None = None,
    ) -> EntitlementGroup:
        """Create a group with one entitlement per SKU (``POST /api/v1/entitlements/groups``).

        NOT idempotent and Zentitle2 has no idempotency key: it is retried only when the
        request certainly did not reach the server (connect error, 429, 503). After any
        error, including a transient one, the caller must check
        ``find_entitlement_groups(order_ref_id, customer_id=...)`` before creating again.
        The response carries the activation codes; its ``entitlements`` may be empty (the
        API lists them only with ``expand``), so read the group when they are needed.
        An unknown SKU raises with ``status`` 404 or 422 and the API's ``error_code``.
        """
        if isinstance(skus, str):
            raise TypeError("skus must be a sequence of SKUs, not one string")
        body: dict[str, Any] = {"skus": list(skus)}
        if customer_id is not None:
            body["customerId"] = customer_id
        if order_ref_id is not None:
            body["orderRefId"] = order_ref_id
        path = _path("entitlements", "groups")
        response = self._request("POST", path, json=body, idempotent=False)
        return self._parse("POST", path, response, EntitlementGroup.from_json)

    def get_entitlement_group(self, group_id: str) -> EntitlementGroup:
        """One group with its entitlements (``GET /api/v1/entitlements/groups/{id}``)."""
        path = _path("entitlements", "groups", group_id)
        return self._get(path, EntitlementGroup.from_json, expand="entitlements")

    def list_entitlement_groups(self, *, customer_id: str | None = None) -> list[EntitlementGroup]:
        """All groups (of one customer if given) with entitlements, all pages.

        ``GET /api/v1/entitlements/groups?customerId=&expand=entitlements``.
        """
        params = {"expand": "entitlements"}
        if customer_id is not None:
            params["customerId"] = customer_id
        return self._get_all(_path("entitlements", "groups"), EntitlementGroup.from_json, params)

    def find_entitlement_groups(
        self, order_ref_id: str, *, customer_id: str | None = None
    ) -> list[EntitlementGroup]:
        """Groups whose ``orderRefId`` equals ``order_ref_id``, matched client-side.

        The API has no such filter and does not keep ``orderRefId`` unique, so this can
        return several groups; without ``customer_id`` it pages every group of the tenant.
        Listed without ``expand`` (as Nalpeiron's own lookup does): the matching needs only
        ids and ``orderRefId``, and list entries never carry expiry or seats anyway, so
        the found groups' ``entitlements`` are empty; read a group to get them.
        """
        params = {"customerId": customer_id} if customer_id is not None else None
        groups = self._get_all(_path("entitlements", "groups"), EntitlementGroup.from_json, params)
        return [g for g in groups if g.order_ref_id == order_ref_id]

    # -- entitlements -------------------------------------------------------------------

    def get_entitlement(self, entitlement_id: str) -> Entitlement:
        """One entitlement (``GET /api/v1/entitlements/{id}``): the only read with status,
        expiry, grace, seats and licence period together (``EntitlementModel``)."""
        return self._get(_path("entitlements", entitlement_id), Entitlement.from_json)

    def update_entitlement(
        self,
        entitlement_id: str,
        *,
        seat_count: int | None = None,
        expiry_date: datetime | None = None,
    ) -> None:
        """Set seats and/or expiry (``PATCH /api/v1/entitlements/{id}``, retried: it sets
        absolute values). ``expiry_date`` must be timezone-aware."""
        body: dict[str, Any] = {}
        if seat_count is not None:
            body["seatCount"] = seat_count
        if expiry_date is not None:
            body["expiryDate"] = format_datetime(expiry_date)
        if not body:
            raise ValueError("update_entitlement needs seat_count and/or expiry_date")
        self._request("PATCH", _path("entitlements", entitlement_id), json=body)

    def renew_entitlement(self, entitlement_id: str) -> None:
        """Extend by one plan period (``PATCH /api/v1/entitlements/{id}/renew``).

        NOT idempotent (each call extends again), so treated like a create: after any
        error, re-read the entitlement and compare its expiry before renewing again.
        """
        path = _path("entitlements", entitlement_id, "renew")
        self._request("PATCH", path, idempotent=False)

    def disable_entitlement(self, entitlement_id: str) -> None:
        """Disable (``PATCH /api/v1/entitlements/{id}/disable``); retried, it is idempotent."""
        self._request("PATCH", _path("entitlements", entitlement_id, "disable"))

    def enable_entitlement(self, entitlement_id: str) -> None:
        """Re-enable (``PATCH /api/v1/entitlements/{id}/enable``); retried, it is idempotent."""
        self._request("PATCH", _path("entitlements", entitlement_id, "enable"))

    # -- account ------------------------------------------------------------------------

    def get_account_key(self) -> dict[str, str]:
        """The account's public key as a JWK (``GET /api/v1/account/key``)."""
        path = _path("account", "key")
        response = self._request("GET", path)
        body = self._json("GET", path, response)
        if not isinstance(body, Mapping) or not isinstance(body.get("n"), str):
            raise self._unexpected("GET", path, response, "no RSA modulus 'n'")
        return {str(k): v for k, v in body.items() if isinstance(v, str)}

    def ping(self) -> None:
        """Obtain a token and read one offering (``GET /api/v1/offerings?pageSize=1``)."""
        self._request("GET", _path("offerings"), params={"pageNumber": 1, "pageSize": 1})
