"""An in-memory Zentitle2 Management API (2025-10-10 subset) for offline tests and demos.

It behaves as the reference document describes the real service: OAuth2 client
credentials, the three mandatory headers, `ApiError` bodies, 201/204 codes, paging,
a non-unique `orderRefId`, the renewal rule and RSA-signed webhooks. Every request it
serves and every answer and webhook it sends is held to Zentitle2's own contract
(`_contract.py`): a divergence raises `ContractViolation` and is recorded, so a test
fails loudly. Its answers use the contract's shapes exactly (group entitlements are the
8-key short model without expiry or seats; the offering list has no `productId`; a
created contact has no `customerId`). Where the real service is unknown it picks the
harsher reading (the create response does not expand `entitlements`; an unknown SKU is
a 422; a gateway may answer 5xx after the work was done; the group `extend`, which is
not in the pinned contract and whose status is unknown, answers 204 with no body unless
`extend_answer` says 200 or 201), so code that passes here does not rely on luck. Use it through
[`transport`][zentitle_stripe.testing.FakeService.transport] (in-process, supports every
fault), [`asgi_app`][zentitle_stripe.testing.FakeService.asgi_app], or
[`serve`][zentitle_stripe.testing.FakeService.serve] (loopback). The route handlers live
in `_zentitle_resources.py`, the recording, faults and serving in `_fake.py`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from typing import Any

import httpx

from zentitle_stripe.zentitle.client import ZentitleClient
from zentitle_stripe.zentitle.models import Customer, Entitlement, EntitlementGroup

from ._fake import FAULT_KINDS, RecordedRequest
from ._zentitle_resources import (
    SECONDS,
    SUPPORTED_API_VERSIONS,
    ExtendAnswer,
    OutgoingWebhook,
    _AccountRoutes,
    _CustomerRoutes,
    _GroupRoutes,
    _OfferingRoutes,
    new_id,
)

__all__ = ["FAULT_KINDS", "OutgoingWebhook", "RecordedRequest", "ZentitleEmulator"]


class ZentitleEmulator(_CustomerRoutes, _OfferingRoutes, _GroupRoutes, _AccountRoutes):
    """A faithful in-memory Zentitle2 tenant; seed it with
    [`add_offering`][zentitle_stripe.testing.ZentitleEmulator.add_offering] and friends.

    Its clock (`now`) stands still unless set or `advance`-d, so expiry and renewal
    maths are exact in tests. Thread-safe: one lock serialises all requests.
    `extend_answer` is how the group `extend` (not in the pinned contract) answers: 204
    with no body by default, or 200 / 201 with the group (settable later too).
    """

    def __init__(
        self,
        tenant_id: str = "t_emulator",
        client_id: str = "emulator-client",
        client_secret: str = "emulator-secret",  # noqa: S107 - a fake credential
        api_version: str = "2025-10-10",
        token_lifetime: int = 300,
        *,
        check_contract: bool = True,
        extend_answer: ExtendAnswer = 204,
    ) -> None:
        if api_version not in SUPPORTED_API_VERSIONS:
            raise ValueError(f"the emulator implements only {sorted(SUPPORTED_API_VERSIONS)}")
        super().__init__(
            tenant_id,
            client_id,
            client_secret,
            api_version,
            token_lifetime,
            check_contract=check_contract,
        )
        if extend_answer not in (204, 200, 201):
            raise ValueError("extend_answer must be 204 (no body), 200 or 201 (the group)")
        self.extend_answer = extend_answer
        self._routes = [
            (m, re.compile(f"^/api/v1/{p}$"), h)
            for m, p, h in (
                ("POST", "customers", self._create_customer),
                ("GET", "customers", self._list_customers),
                ("GET", "customers/contacts/search", self._search_contacts),
                ("GET", "customers/([^/]+)", self._get_customer),
                ("POST", "customers/([^/]+)/contacts", self._create_contact),
                ("GET", "customers/([^/]+)/contacts", self._list_contacts),
                ("GET", "offerings", self._list_offerings),
                ("POST", "entitlements/groups", self._create_group),
                ("GET", "entitlements/groups", self._list_groups),
                ("GET", "entitlements/groups/([^/]+)", self._get_group),
                ("POST", "entitlements/groups/([^/]+)/extend", self._extend_group),
                ("GET", "entitlements/([^/]+)", self._get_entitlement),
                ("PATCH", "entitlements/([^/]+)", self._update_entitlement),
                ("PATCH", "entitlements/([^/]+)/(renew|disable|enable)", self._entitlement_action),
                ("GET", "account/key", self._account_key),
                ("POST", "account/webhooks", self._create_webhook),
                ("GET", "account/webhooks", self._list_webhooks),
            )
        ]

    def __repr__(self) -> str:
        return f"ZentitleEmulator(tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"

    # -- seeding ------------------------------------------------------------------------

    def add_product(self, name: str) -> str:
        """Create a product; returns its `prod_` id."""
        with self._lock:
            product = self._store(self._products, "prod_", name=name, editionId=new_id("edt_"))
            return str(product["id"])

    def add_plan(
        self,
        product_id: str,
        *,
        license_type: str = "subscription",
        license_start_type: str = "entitlementCreation",
        duration: tuple[str, int] | None = ("year", 1),
        plan_type: str = "paid",
        grace_period: tuple[str, int] | None = None,
        name: str | None = None,
    ) -> str:
        """Create a plan; `duration` is the billing period, e.g. `("month", 1)`."""
        with self._lock:
            if product_id not in self._products:
                raise ValueError(f"unknown product {product_id!r}")
            kinds = {"year", "month", *SECONDS}
            for period in (duration, grace_period):
                if period is not None and (period[0] not in kinds or period[1] < 1):
                    raise ValueError(f"bad interval {period!r}: use e.g. ('month', 1)")
            plan = self._store(self._plans, "plan_", productId=product_id, name=name)
            plan["name"] = name or plan["id"]
            plan.update(licenseType=license_type, licenseStartType=license_start_type)
            plan.update(duration=duration, grace=grace_period, planType=plan_type)
            return str(plan["id"])

    def add_offering(
        self,
        *,
        sku: str,
        product_id: str,
        plan_id: str,
        seat_count: int = 1,
        name: str | None = None,
    ) -> str:
        """Create an offering (the orderable item) with a unique `sku`; returns its id."""
        with self._lock:
            if self._plans.get(plan_id, {}).get("productId") != product_id:
                raise ValueError(f"plan {plan_id!r} does not belong to product {product_id!r}")
            if sku in self._offering_by_sku:
                raise ValueError(f"an offering with SKU {sku!r} exists already")
            offering = self._store(
                self._offerings,
                "off_",
                sku=sku,
                name=name or sku,
                productId=product_id,
                editionId=self._products[product_id]["editionId"],
                planId=plan_id,
                seatCount=seat_count,
            )
            self._offering_by_sku[sku] = offering["id"]
            return str(offering["id"])

    def add_customer(self, name: str, *, account_ref_id: str | None = None) -> str:
        """Create a customer directly, as if made in the UI; returns its `cust_` id."""
        with self._lock:
            return str(self._new_customer(name, account_ref_id)["id"])

    def add_webhook(self, uri: str, subscriptions: Iterable[str]) -> str:
        """Register a webhook listener directly; returns its `wh_` id."""
        with self._lock:
            return str(self._new_webhook(uri, subscriptions)["id"])

    # -- inspection ---------------------------------------------------------------------

    def customers(self) -> list[Customer]:
        """Every customer, oldest first."""
        with self._lock:
            return [Customer.from_json(self._customer_json(c)) for c in self._customers.values()]

    def groups(self, order_ref_id: str | None = None) -> list[EntitlementGroup]:
        """Every group (with entitlements), or those with this `orderRefId`, oldest first."""
        with self._lock:
            return [
                EntitlementGroup.from_json(self._group_json(g, ["entitlements"]))
                for g in self._groups.values()
                if order_ref_id is None or g["orderRefId"] == order_ref_id
            ]

    def entitlements(self, group_id: str | None = None) -> list[Entitlement]:
        """Every entitlement, or those of one group, oldest first."""
        with self._lock:
            return [
                Entitlement.from_json(self._entitlement_json(e))
                for e in self._entitlements.values()
                if group_id is None or e["entitlementGroupId"] == group_id
            ]

    # -- webhooks and clients -----------------------------------------------------------

    def deliver_webhooks(self, client: httpx.Client | None = None) -> list[httpx.Response]:
        """POST every queued webhook to its uri (emptying `outbox`); returns responses."""
        with self._lock:
            pending, self.outbox = self.outbox, []
        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(httpx.Client(timeout=10.0))
            return [client.post(w.uri, content=w.body, headers=dict(w.headers)) for w in pending]

    @property
    def token_url(self) -> str:
        """The token URL to configure when using `transport()`."""
        return self.token_url_for(self.api_url)

    def client(self, base_url: str | None = None, **kwargs: Any) -> ZentitleClient:
        """A [`ZentitleClient`][zentitle_stripe.zentitle.client.ZentitleClient] wired to this
        emulator (over `base_url` if given, e.g. from `serve()`, else in-process); `kwargs`
        go to the client."""
        api_url = base_url or self.api_url
        if base_url is None:
            kwargs.setdefault("transport", self.transport())
        return ZentitleClient(
            api_url,
            self.tenant_id,
            self.client_id,
            self.client_secret,
            self.token_url_for(api_url),
            **kwargs,
        )

    def token_url_for(self, api_url: str) -> str:
        """The token URL of this tenant when the emulator is reached at `api_url`."""
        return f"{api_url}/realms/{self.tenant_id}/protocol/openid-connect/token"
