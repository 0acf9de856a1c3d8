"""Typed, immutable views of the Zentitle2 Management API's JSON (API version 2025-10-10).

Parsing is tolerant on purpose: the API omits nulls, older versions lack fields and new
versions add some, so a missing key, `null` and an unusable value all become `None`
and unknown keys are ignored. Only `id` is required: an object without one cannot be
acted on, so `from_json` raises `ValueError` and the client reports an
unexpected response body.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

__all__ = [
    "Contact",
    "Customer",
    "Entitlement",
    "EntitlementGroup",
    "Interval",
    "Offering",
    "Plan",
    "format_datetime",
    "parse_datetime",
]

_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_datetime(value: object) -> datetime | None:
    """An aware UTC datetime from ISO-8601 text, or `None` if absent or unparseable.

    Accepts a `Z` suffix and .NET's 7-digit fractions, which Python 3.10 rejects; a
    value without an offset is UTC, as the API documents.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = _FRACTION.sub(r"\1", value.strip(), count=1)
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # an offset that moves it past year 1 or 9999
        return None


def format_datetime(value: datetime) -> str:
    """ISO-8601 in UTC with a `Z` suffix, the form the API returns; naive values are refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _id(data: Mapping[str, Any]) -> str:
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    value = data.get("id")
    if not isinstance(value, str) or not value:
        raise ValueError("object has no 'id'")
    return value


def _objects(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = data.get(key)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


_INTERVAL_SECONDS = {"week": 604800, "day": 86400, "hour": 3600, "minute": 60, "second": 1}


@attrs.frozen
class Interval:
    """A plan period such as one year: `type` is `year`, `month`, `day`, ..."""

    type: str
    count: int | None = None

    @classmethod
    def from_json(cls, data: object) -> Interval | None:
        """An interval, or `None` when absent or of type `none` (no period)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("type"), str):
            return None
        if data["type"] == "none":
            return None
        return cls(type=data["type"], count=_int(data, "count"))

    def add_to(self, moment: datetime) -> datetime | None:
        """`moment` plus this interval (months and years keep the day, clamped to the
        month's end); `None` for a type this library does not know."""
        count = 1 if self.count is None else self.count
        if self.type in ("year", "month"):
            months = moment.month - 1 + count * (12 if self.type == "year" else 1)
            year, month = moment.year + months // 12, months % 12 + 1
            day = min(moment.day, calendar.monthrange(year, month)[1])
            return moment.replace(year=year, month=month, day=day)
        seconds = _INTERVAL_SECONDS.get(self.type)
        return None if seconds is None else moment + timedelta(seconds=seconds * count)


@attrs.frozen
class Plan:
    """How an offering licenses: subscription or perpetual, when the term starts, its length."""

    id: str
    license_type: str | None = None
    license_start_type: str | None = None
    license_duration: Interval | None = None
    plan_type: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        return cls(
            id=_id(data),
            license_type=_str(data, "licenseType"),
            license_start_type=_str(data, "licenseStartType"),
            license_duration=Interval.from_json(data.get("licenseDuration")),
            plan_type=_str(data, "planType"),
        )


@attrs.frozen
class Offering:
    """The orderable item; its `sku` is what a Stripe price maps to."""

    id: str
    sku: str | None = None
    name: str | None = None
    plan_id: str | None = None
    seat_count: int | None = None
    product_id: str | None = None
    plan: Plan | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Offering:
        plan, edition = data.get("plan"), data.get("edition")
        # The list model has no productId: only an expanded edition names the product.
        product_id = _str(data, "productId")
        if product_id is None and isinstance(edition, Mapping):
            product_id = _str(edition, "productId")
        return cls(
            id=_id(data),
            sku=_str(data, "sku"),
            name=_str(data, "name"),
            plan_id=_str(data, "planId"),
            seat_count=_int(data, "seatCount"),
            product_id=product_id,
            plan=Plan.from_json(plan) if isinstance(plan, Mapping) and plan.get("id") else None,
        )


@attrs.frozen
class Customer:
    """A Zentitle2 customer; `account_ref_id` is the caller's own key (e.g. `cus_...`)."""

    id: str
    name: str | None = None
    account_ref_id: str | None = None
    status: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Customer:
        return cls(
            id=_id(data),
            name=_str(data, "name"),
            account_ref_id=_str(data, "accountRefId"),
            status=_str(data, "status"),
        )


@attrs.frozen
class Contact:
    """A person of a customer; the only thing Zentitle2 can look up by email."""

    id: str
    customer_id: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Contact:
        return cls(
            id=_id(data),
            customer_id=_str(data, "customerId"),
            email=_str(data, "email"),
            first_name=_str(data, "firstName"),
            last_name=_str(data, "lastName"),
        )


@attrs.frozen
class Entitlement:
    """One licence; `status` is one of the API's strings (`active`, `disabled`, ...).

    Which fields are filled depends on the read (Zentitle2 contract 2025-10-10):
    a group's `entitlements` (`EntitlementGroupEntitlementModel`) carry only id, SKU,
    offering, product, group and status, never an expiry or seats; only
    `GET /api/v1/entitlements/{id}` (`EntitlementModel`) has status, expiry, grace,
    seats and the licence period together. So `expiry_date is None` means "not read
    here" as often as "does not expire": check `license_type` before trusting it.
    """

    id: str
    sku: str | None = None
    offering_id: str | None = None
    product_id: str | None = None
    group_id: str | None = None
    status: str | None = None
    seat_count: int | None = None
    expiry_date: datetime | None = None
    activation_date: datetime | None = None
    license_type: str | None = None
    license_start_type: str | None = None
    disabled_date: datetime | None = None
    grace_period_expiry: datetime | None = None
    created: datetime | None = None
    license_duration: Interval | None = None
    """One licence period (`licenseDurationType`/`Count`): what a renew adds."""
    grace_period: Interval | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entitlement:
        return cls(
            id=_id(data),
            sku=_str(data, "sku"),
            offering_id=_str(data, "offeringId"),
            product_id=_str(data, "productId"),
            group_id=_str(data, "entitlementGroupId"),
            status=_str(data, "status"),
            seat_count=_int(data, "seatCount"),
            expiry_date=parse_datetime(data.get("expiryDate")),
            activation_date=parse_datetime(data.get("activationDate")),
            license_type=_str(data, "licenseType"),
            license_start_type=_str(data, "licenseStartType"),
            disabled_date=parse_datetime(data.get("disabledDate")),
            grace_period_expiry=parse_datetime(data.get("gracePeriodExpiry")),
            created=parse_datetime(data.get("created")),
            license_duration=Interval.from_json(
                {"type": data.get("licenseDurationType"), "count": data.get("licenseDurationCount")}
            ),
            grace_period=Interval.from_json(data.get("gracePeriod")),
        )

    def renewed_expiry(self, now: datetime) -> datetime | None:
        """The expiry one renew gives, by Zentitle2's documented rule, or `None`.

        While the expiry is in the future or the grace period runs: old expiry + one
        period; after that (or with no grace period): `now` + one period. `None` when
        this read carries no expiry or period, so nothing can be predicted.
        """
        if self.expiry_date is None or self.license_duration is None:
            return None
        grace_runs = self.status == "gracePeriod" or (
            self.grace_period_expiry is not None and self.grace_period_expiry > now
        )
        base = self.expiry_date if self.expiry_date > now or grace_runs else now
        return self.license_duration.add_to(base)


@attrs.frozen
class EntitlementGroup:
    """One order's entitlements and activation codes; `order_ref_id` is not unique."""

    id: str
    customer_id: str | None = None
    order_ref_id: str | None = None
    activation_codes: tuple[str, ...] = ()
    entitlements: tuple[Entitlement, ...] = ()
    created: datetime | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EntitlementGroup:
        codes = data.get("activationCodes")
        return cls(
            id=_id(data),
            customer_id=_str(data, "customerId"),
            order_ref_id=_str(data, "orderRefId"),
            activation_codes=tuple(c for c in codes if isinstance(c, str))
            if isinstance(codes, list)
            else (),
            entitlements=tuple(Entitlement.from_json(e) for e in _objects(data, "entitlements")),
            created=parse_datetime(data.get("created")),
        )
