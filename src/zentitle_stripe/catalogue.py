"""The business rules that connect Stripe's catalogue to Zentitle2's, in one place.

The provisioning flows ([`Provisioning`][zentitle_stripe.flows.Provisioning]), `doctor` and
`reconcile` all decide which Price sells which offering, which events matter and which
entitlements still license something. They call these functions, so what `doctor` approves
and `reconcile` expects is exactly what a payment provisions.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "CODES_METADATA_KEY",
    "CUSTOMER_METADATA_KEY",
    "LIVE_ENTITLEMENT_STATUSES",
    "MISSING_EVENT_CONSEQUENCES",
    "REQUIRED_EVENTS",
    "SKU_METADATA_KEY",
    "SWITCHED_OFF_ENTITLEMENT_STATUSES",
    "is_live",
    "missing_events",
    "near_miss_sku",
    "product_sku",
    "resolve_sku",
]

SKU_METADATA_KEY = "offering_sku"
"""Price metadata naming the Zentitle2 offering SKU (exact, case-sensitive)."""
CODES_METADATA_KEY = "activation_codes"
"""Subscription metadata the activation codes are written to, comma-separated."""
CUSTOMER_METADATA_KEY = "zentitle_customer_id"
"""Stripe Customer metadata linking it to a Zentitle2 customer."""

REQUIRED_EVENTS: tuple[str, ...] = ("invoice.paid", "customer.subscription.deleted")
"""The event types every configuration acts on; the webhook endpoint must send both.
The full list depends on the lifecycle policy:
[`LifecyclePolicy.events`][zentitle_stripe.policy.LifecyclePolicy.events]."""

MISSING_EVENT_CONSEQUENCES: Mapping[str, str] = {
    "invoice.paid": "no payment creates or renews a licence",
    "customer.subscription.updated": (
        "seat and product changes wait for the next renewal, and a trial that ends unpaid "
        "or a subscription that turns unpaid keeps its licence"
    ),
    "customer.subscription.deleted": "a cancelled subscription keeps its licence",
    "customer.subscription.paused": "a paused subscription keeps its licence",
    "customer.subscription.resumed": "a resumed subscription stays disabled",
    "charge.refunded": "a fully refunded subscription payment keeps its licence",
    "charge.dispute.created": "a disputed subscription payment keeps its licence",
}
"""What goes wrong when the endpoint does not send an event the policy needs: `doctor`
names it next to the missing event."""

SWITCHED_OFF_ENTITLEMENT_STATUSES = frozenset({"disabled", "customerDisabled", "exported"})
"""Entitlement statuses the flows leave alone: renewing or disabling them again does
nothing. An `expired` entitlement is not switched off: a payment renews it."""
LIVE_ENTITLEMENT_STATUSES = frozenset({"active", "gracePeriod", "created"})
"""Entitlement statuses that license something right now (`created`: not yet activated).

Narrower than "not switched off": an `expired` entitlement (or one of a status this
library does not know) licenses nothing, so `reconcile` reports its subscription."""


def resolve_sku(
    metadata: Mapping[str, str] | None,
    lookup_key: str | None,
    *,
    lookup_key_fallback: bool = False,
) -> str | None:
    """The offering SKU a Price sells, or `None` when it sells no licence.

    The Price's `offering_sku` metadata wins; with `lookup_key_fallback` its `lookup_key`
    stands in for a missing one. An empty value counts as missing.
    """
    sku = (metadata or {}).get(SKU_METADATA_KEY)
    return sku or (lookup_key if lookup_key_fallback else None) or None


def product_sku(product_metadata: Mapping[str, str]) -> str | None:
    """The `offering_sku` misplaced on a Product, if any (even empty): a set-up error.

    Only a Price's metadata names an offering, so a Product carrying the key means its
    payments create no licence; the caller reports it by name.
    """
    return product_metadata.get(SKU_METADATA_KEY) if SKU_METADATA_KEY in product_metadata else None


def near_miss_sku(sku: str, known: Iterable[str]) -> str | None:
    """The known SKU an unknown `sku` was probably meant to be, for a "did you mean" hint.

    A SKU equal but for case or surrounding spaces comes first (the first one, in order),
    else the closest spelling; `None` when nothing is close.
    """
    candidates: Sequence[str] = list(known)
    folded = sku.strip().casefold()
    same = next((k for k in candidates if k.strip().casefold() == folded), None)
    if same is not None:
        return same
    return next(iter(difflib.get_close_matches(sku, candidates, n=1)), None)


def missing_events(
    enabled_events: Iterable[str], required: Iterable[str] = REQUIRED_EVENTS
) -> list[str]:
    """The `required` event types an endpoint with `enabled_events` does not send (`*`
    sends every type), in the order of `required`."""
    enabled = list(enabled_events)
    if "*" in enabled:
        return []
    return [event for event in required if event not in enabled]


def is_live(status: str | None) -> bool:
    """Whether an entitlement of this status licenses something right now."""
    return status in LIVE_ENTITLEMENT_STATUSES
