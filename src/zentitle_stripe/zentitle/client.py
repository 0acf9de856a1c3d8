"""[`ZentitleClient`][zentitle_stripe.zentitle.ZentitleClient]: the Zentitle2 Management API
operations over HTTP, with typed results.

How requests travel (tokens, retries, paging, errors) is in `_transport`; what each
operation promises is on the [`ZentitleAPI`][zentitle_stripe.zentitle.ZentitleAPI] protocol.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from . import _errors
from ._transport import OnTransport, Transport
from .api import DEFAULT_API_VERSION, ZentitleAPI
from .models import (
    Contact,
    Customer,
    Entitlement,
    EntitlementGroup,
    Offering,
    format_datetime,
)

__all__ = ["DEFAULT_API_VERSION", "ZentitleAPI", "ZentitleClient"]

_MISS_RELIST_INTERVAL = 5.0


def _path(*segments: str) -> str:
    """`/api/v1/` + segments, each percent-encoded so an ID can never change the route."""
    return "/api/v1/" + "/".join(quote(s, safe="") for s in segments)


class ZentitleClient:
    """Synchronous [`ZentitleAPI`][zentitle_stripe.zentitle.ZentitleAPI] over one
    `httpx.Client`; safe to share between threads.

    Creates and `renew` are repeated only when the request certainly did not reach
    Zentitle2 (connect error, 429); a 5xx, a timeout after sending, or a 2xx that is not
    JSON raise with `may_have_landed=True`. Reads and PATCHes that set values are retried
    with backoff. `transport` goes to httpx (tests pass `ZentitleEmulator().transport()`);
    `sleep` and `clock` are injectable so retry and token-expiry tests run instantly.
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
        self.offering_cache_ttl = offering_cache_ttl
        self._api = Transport(
            http=httpx.Client(base_url=self.api_url, timeout=timeout, transport=transport),
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            token_url=token_url,
            api_version=api_version,
            max_retries=max_retries,
            sleep=sleep,
            clock=clock,
        )
        self._offerings_lock = threading.Lock()
        self._offerings: dict[str, Offering] | None = None
        self._offerings_loaded_at = 0.0

    # Settable, as when the client held them (tests point a client at another tenant).
    tenant_id: OnTransport[str] = OnTransport()
    client_id: OnTransport[str] = OnTransport()
    _client_secret: OnTransport[str] = OnTransport()
    token_url: OnTransport[str] = OnTransport()
    api_version: OnTransport[str] = OnTransport()
    max_retries: OnTransport[int] = OnTransport()

    def __repr__(self) -> str:
        return (
            f"ZentitleClient(api_url={self.api_url!r}, tenant_id={self.tenant_id!r}, "
            f"client_id={self.client_id!r}, client_secret='***')"
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._api.close()

    def __enter__(self) -> ZentitleClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- customers ------------------------------------------------------------------------

    def create_customer(self, *, name: str, account_ref_id: str | None = None) -> Customer:
        body: dict[str, str] = {"name": name}
        if account_ref_id is not None:
            body["accountRefId"] = account_ref_id
        path = _path("customers")
        response = self._api.request("POST", path, json=body, idempotent=False)
        return self._api.parse("POST", path, response, Customer.from_json)

    def find_customers(self, account_ref_id: str) -> list[Customer]:
        customers = self._api.get_all(_path("customers"), Customer.from_json)
        return [c for c in customers if c.account_ref_id == account_ref_id]

    def get_customer(self, customer_id: str) -> Customer:
        return self._api.get(_path("customers", customer_id), Customer.from_json)

    def create_contact(
        self,
        customer_id: str,
        *,
        email: str,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> Contact:
        body = {"email": email, "firstName": first_name, "lastName": last_name}
        path = _path("customers", customer_id, "contacts")
        payload = {k: v for k, v in body.items() if v is not None}
        response = self._api.request("POST", path, json=payload, idempotent=False)
        return self._api.parse("POST", path, response, Contact.from_json)

    def search_contacts(self, email: str) -> list[Contact]:
        path = _path("customers", "contacts", "search")
        return self._api.get_all(path, Contact.from_json, {"email": email})

    # -- catalogue ----------------------------------------------------------------------

    def list_offerings(self) -> list[Offering]:
        return self._api.get_all(_path("offerings"), Offering.from_json, {"expand": "plan"})

    def clear_caches(self) -> None:
        """Forget the cached offerings, so the next lookup lists them again."""
        with self._offerings_lock:
            self._offerings = None

    def find_offering(self, sku: str) -> Offering | None:
        """Offerings are listed once and cached for `offering_cache_ttl` seconds.

        A miss re-lists at most every 5 s, so a newly added offering is found soon without
        a list per unknown SKU. The lock makes concurrent misses share one listing.
        """
        with self._offerings_lock:
            age = self._api.clock() - self._offerings_loaded_at
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
                self._offerings_loaded_at = self._api.clock()
            return self._offerings.get(sku)

    # -- entitlement groups ---------------------------------------------------------------

    def create_entitlement_group(
        self,
        *,
        skus: Sequence[str],
        customer_id: str | None = None,
        order_ref_id: str | None = None,
    ) -> EntitlementGroup:
        if isinstance(skus, str):
            raise TypeError("skus must be a sequence of SKUs, not one string")
        body: dict[str, Any] = {"skus": list(skus)}
        if customer_id is not None:
            body["customerId"] = customer_id
        if order_ref_id is not None:
            body["orderRefId"] = order_ref_id
        path = _path("entitlements", "groups")
        response = self._api.request("POST", path, json=body, idempotent=False)
        return self._api.parse("POST", path, response, EntitlementGroup.from_json)

    def extend_entitlement_group(
        self, group_id: str, skus: Sequence[str]
    ) -> EntitlementGroup | None:
        """Not in the pinned contract (reference §5.4 only): the answer's status is unknown,
        so a 204 and an empty 2xx give `None`, a body is parsed as the group (a body that
        is not one is an unexpected answer that may have landed)."""
        if isinstance(skus, str):
            raise TypeError("skus must be a sequence of SKUs, not one string")
        if not skus:
            raise ValueError("extend_entitlement_group needs at least one SKU")
        path = _path("entitlements", "groups", group_id, "extend")
        response = self._api.request("POST", path, json={"skus": list(skus)}, idempotent=False)
        if response.status_code == 204 or not response.content.strip():
            return None
        return self._api.parse("POST", path, response, EntitlementGroup.from_json)

    def get_entitlement_group(self, group_id: str) -> EntitlementGroup:
        path = _path("entitlements", "groups", group_id)
        return self._api.get(path, EntitlementGroup.from_json, expand="entitlements")

    def list_entitlement_groups(self, *, customer_id: str | None = None) -> list[EntitlementGroup]:
        params = {"expand": "entitlements"}
        if customer_id is not None:
            params["customerId"] = customer_id
        return self._list_groups(params)

    def find_entitlement_groups(
        self, order_ref_id: str, *, customer_id: str | None = None, max_pages: int | None = None
    ) -> list[EntitlementGroup]:
        """Listed without `expand`, as Nalpeiron's own lookup does: matching needs only
        ids and `orderRefId`."""
        params = {"customerId": customer_id} if customer_id is not None else None

        def matches(item: Mapping[str, Any]) -> bool:  # only the matches are parsed
            return item.get("orderRefId") == order_ref_id

        groups = self._list_groups(params, max_pages=max_pages, keep=matches)
        return [g for g in groups if g.order_ref_id == order_ref_id]

    def _list_groups(
        self,
        params: Mapping[str, str] | None,
        *,
        max_pages: int | None = None,
        keep: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> list[EntitlementGroup]:
        path = _path("entitlements", "groups")
        return self._api.get_all(
            path, EntitlementGroup.from_json, params, max_pages=max_pages, keep=keep
        )

    # -- entitlements -------------------------------------------------------------------

    def get_entitlement(self, entitlement_id: str) -> Entitlement:
        return self._api.get(_path("entitlements", entitlement_id), Entitlement.from_json)

    def update_entitlement(
        self,
        entitlement_id: str,
        *,
        seat_count: int | None = None,
        expiry_date: datetime | None = None,
    ) -> None:
        body: dict[str, Any] = {}
        if seat_count is not None:
            body["seatCount"] = seat_count
        if expiry_date is not None:
            body["expiryDate"] = format_datetime(expiry_date)
        if not body:
            raise ValueError("update_entitlement needs seat_count and/or expiry_date")
        self._api.request("PATCH", _path("entitlements", entitlement_id), json=body)

    def renew_entitlement(self, entitlement_id: str) -> None:
        path = _path("entitlements", entitlement_id, "renew")
        self._api.request("PATCH", path, idempotent=False)

    def disable_entitlement(self, entitlement_id: str) -> None:
        self._api.request("PATCH", _path("entitlements", entitlement_id, "disable"))

    def enable_entitlement(self, entitlement_id: str) -> None:
        self._api.request("PATCH", _path("entitlements", entitlement_id, "enable"))

    # -- account ------------------------------------------------------------------------

    def get_account_key(self) -> dict[str, str]:
        path = _path("account", "key")
        response = self._api.request("GET", path)
        body = self._api.json("GET", path, response)
        if not isinstance(body, Mapping) or not isinstance(body.get("n"), str):
            raise _errors.unexpected("GET", path, response, "no RSA modulus 'n'")
        return {str(k): v for k, v in body.items() if isinstance(v, str)}

    def ping(self) -> None:
        """Reads one offering (`GET /api/v1/offerings?pageSize=1`)."""
        self._api.request("GET", _path("offerings"), params={"pageNumber": 1, "pageSize": 1})
