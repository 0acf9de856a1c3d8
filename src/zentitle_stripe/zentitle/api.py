"""What the provisioning flows rely on: the
[`ZentitleAPI`][zentitle_stripe.zentitle.ZentitleAPI] protocol.

[`ZentitleClient`][zentitle_stripe.zentitle.ZentitleClient] implements it over HTTP and
[`ZentitleEmulator`][zentitle_stripe.testing.ZentitleEmulator] hands out clients of it in
tests; the method descriptions here are the contract both honour.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from .models import Contact, Customer, Entitlement, EntitlementGroup, Offering

__all__ = ["DEFAULT_API_VERSION", "ZentitleAPI"]

DEFAULT_API_VERSION = "2025-10-10"
"""The pinned `N-Api-Version`: group creation differs between versions (reference §9)."""


class ZentitleAPI(Protocol):
    """What the provisioning flows need from Zentitle2.

    Every method raises [`ZentitleAPIError`][zentitle_stripe.exceptions.ZentitleAPIError]
    on failure; its `transient` flag says whether trying again later may succeed, and
    `may_have_landed` whether the server may have acted all the same. Zentitle2 has no
    idempotency keys, so a create or renew is never blindly repeated: after any error,
    look (find the customer or group, re-read the entitlement) before acting again.
    """

    def create_customer(self, *, name: str, account_ref_id: str | None = None) -> Customer:
        """Create a customer (`POST /api/v1/customers`).

        Not idempotent: after any error the customer may exist, so look it up (by
        contact email, or [`find_customers`][zentitle_stripe.zentitle.ZentitleAPI.find_customers])
        before creating again.
        """
        ...

    def find_customers(self, account_ref_id: str) -> list[Customer]:
        """Customers whose `accountRefId` equals `account_ref_id`, matched client-side.

        `GET /api/v1/customers` has no filter, so this pages every customer: use it only
        to recover from a create whose answer was lost, not for routine lookups.
        """
        ...

    def get_customer(self, customer_id: str) -> Customer:
        """Read one customer (`GET /api/v1/customers/{id}`)."""
        ...

    def create_contact(
        self,
        customer_id: str,
        *,
        email: str,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> Contact:
        """Add a contact to a customer (`POST /api/v1/customers/{id}/contacts`).

        Not repeated after it may have arrived; emails are unique per customer, so a
        repeat would fail anyway.
        """
        ...

    def search_contacts(self, email: str) -> list[Contact]:
        """Contacts with this email, all pages (`GET /api/v1/customers/contacts/search`)."""
        ...

    def list_offerings(self) -> list[Offering]:
        """Every offering with its plan, all pages (`GET /api/v1/offerings?expand=plan`)."""
        ...

    def find_offering(self, sku: str) -> Offering | None:
        """The offering whose SKU equals `sku` exactly (case-sensitive), or `None`.

        Served from a cached
        [`list_offerings`][zentitle_stripe.zentitle.ZentitleAPI.list_offerings].
        """
        ...

    def create_entitlement_group(
        self,
        *,
        skus: Sequence[str],
        customer_id: str | None = None,
        order_ref_id: str | None = None,
    ) -> EntitlementGroup:
        """Create a group with one entitlement per SKU (`POST /api/v1/entitlements/groups`).

        Not idempotent: after any error, including a transient one, call
        [`find_entitlement_groups`][zentitle_stripe.zentitle.ZentitleAPI.find_entitlement_groups]
        with the same `order_ref_id` before creating again. The answer carries the
        activation codes; its `entitlements` may be empty (the API lists them only with
        `expand`), so read the group when they are needed. An unknown SKU raises with
        `status` 404 or 422 and the API's `error_code`.
        """
        ...

    def extend_entitlement_group(
        self, group_id: str, skus: Sequence[str]
    ) -> EntitlementGroup | None:
        """Add one entitlement per SKU to an existing group
        (`POST /api/v1/entitlements/groups/{id}/extend` `{skus}`).

        Not in the pinned 2025-10-10 contract: the reference (§5.4) documents the call and
        says it returns the group, with an unknown status. Both readings are accepted: a
        200/201 with the group gives it, a 204 (or an empty 2xx) gives `None`. Never rely
        on the answer's entitlements (at most the short model, with no seats or expiry):
        read the group, then each new entitlement. Not idempotent (each call adds again):
        after any error read the group and count its entitlements of each SKU before
        extending again.
        """
        ...

    def get_entitlement_group(self, group_id: str) -> EntitlementGroup:
        """One group with its entitlements (`GET /api/v1/entitlements/groups/{id}`)."""
        ...

    def list_entitlement_groups(self, *, customer_id: str | None = None) -> list[EntitlementGroup]:
        """All groups, optionally of one customer, with entitlements, all pages.

        `GET /api/v1/entitlements/groups?customerId=&expand=entitlements`.
        """
        ...

    def find_entitlement_groups(
        self, order_ref_id: str, *, customer_id: str | None = None, max_pages: int | None = None
    ) -> list[EntitlementGroup]:
        """Groups whose `orderRefId` equals `order_ref_id`, matched client-side.

        The API cannot filter on it and does not keep it unique, so this may return
        several groups; pass `customer_id` to avoid paging every group of the tenant, and
        `max_pages` to look at no more than that many pages (a bounded search).
        The found groups' `entitlements` are empty (list entries never carry expiry or
        seats anyway): read a group to get them.
        """
        ...

    def get_entitlement(self, entitlement_id: str) -> Entitlement:
        """One entitlement (`GET /api/v1/entitlements/{id}`).

        The only read with status, expiry, grace, seats and licence period together
        (`EntitlementModel`).
        """
        ...

    def update_entitlement(
        self,
        entitlement_id: str,
        *,
        seat_count: int | None = None,
        expiry_date: datetime | None = None,
    ) -> None:
        """Set seats and/or expiry (`PATCH /api/v1/entitlements/{id}`).

        The only way to set an arbitrary expiry; `expiry_date` must be timezone-aware.
        Safe to repeat: it sets absolute values.
        """
        ...

    def renew_entitlement(self, entitlement_id: str) -> None:
        """Extend a subscription by one plan period (`PATCH /api/v1/entitlements/{id}/renew`).

        Not idempotent (each call extends again): after any error re-read the entitlement
        and compare its expiry before renewing again.
        """
        ...

    def disable_entitlement(self, entitlement_id: str) -> None:
        """Disable an entitlement (`PATCH /api/v1/entitlements/{id}/disable`); idempotent."""
        ...

    def enable_entitlement(self, entitlement_id: str) -> None:
        """Re-enable a disabled entitlement (`PATCH /api/v1/entitlements/{id}/enable`)."""
        ...

    def get_account_key(self) -> dict[str, str]:
        """The account's public key as a JWK (`GET /api/v1/account/key`), for webhooks."""
        ...

    def ping(self) -> None:
        """Obtain a token and make one cheap GET, proving URL, tenant and credentials work."""
        ...
