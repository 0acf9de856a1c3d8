"""Drift: where Stripe and Zentitle2 disagree and no recent event explains it.

A subscription is licensed when one of its Prices resolves to a SKU
([`resolve_sku`][zentitle_stripe.catalogue.resolve_sku]) and licensed *now* when one of
its entitlements is live ([`is_live`][zentitle_stripe.catalogue.is_live]): the same rules
provisioning follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ..catalogue import CUSTOMER_METADATA_KEY, is_live, resolve_sku
from ..exceptions import StripeAPIError
from ..flows.charges import held_for
from ._common import Progress, every, quiet

if TYPE_CHECKING:
    from ..events import Subscription
    from ..storage import Storage
    from ..stripe_api import StripeOpsAPI
    from ..zentitle import ZentitleAPI
    from ..zentitle.models import EntitlementGroup

_ENDED_SUBSCRIPTION = frozenset({"canceled", "incomplete_expired", "unpaid"})
"""Subscription statuses in which its entitlements should be disabled (`unpaid`: the
lifecycle's status moments disable it, whatever the policy)."""
_DELETED_FIX = "replay its customer.subscription.deleted event"
_STATUS_FIX = "replay its latest customer.subscription.updated event (or reconcile)"


@attrs.frozen
class Drift:
    """A disagreement between Stripe and Zentitle2 that no recent event explains.

    `kind` is `unlicensed` (an active subscription without a live licence) or
    `orphaned` (live entitlements of a subscription that ended or does not exist).
    """

    kind: str
    subscription_id: str
    detail: str
    fix: str
    stripe_customer_id: str | None = None
    zentitle_customer_id: str | None = None
    group_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self) | {"group_ids": list(self.group_ids)}


def _live(group: EntitlementGroup) -> bool:
    return any(is_live(e.status) for e in group.entitlements)


def _licensed_skus(subscription: Subscription, lookup_key_fallback: bool) -> list[str]:
    skus = (
        resolve_sku(
            item.price_metadata, item.price_lookup_key, lookup_key_fallback=lookup_key_fallback
        )
        for item in subscription.items
    )
    return [sku for sku in skus if sku]


def find_drift(
    stripe: StripeOpsAPI,
    zentitle: ZentitleAPI,
    storage: Storage,
    *,
    lookup_key_fallback: bool = False,
    progress: Progress = quiet,
) -> list[Drift]:
    """Active licensed subscriptions without a live Zentitle2 group, and live groups whose
    subscription ended or never existed.

    Zentitle2 cannot filter groups by `orderRefId`, and the reverse check needs every
    group anyway, so all groups are listed once and matched here (one paged listing instead
    of one per subscription).
    """
    groups = zentitle.list_entitlement_groups()
    progress(f"listed {len(groups)} Zentitle2 entitlement group(s)")
    by_ref: dict[str, list[EntitlementGroup]] = {}
    for group in groups:
        if group.order_ref_id:
            by_ref.setdefault(group.order_ref_id, []).append(group)
    active = list(stripe.list_subscriptions(status="active"))
    drift = []
    for done, subscription in enumerate(active, 1):
        found = _unlicensed(stripe, storage, subscription, by_ref, lookup_key_fallback)
        if found is not None:
            drift.append(found)
        every(progress, done, len(active), "active subscriptions")
    active_ids = {s.id for s in active}
    suspects = [
        (ref, [g for g in found if _live(g)])
        for ref, found in by_ref.items()
        if ref.startswith("sub_") and ref not in active_ids
    ]
    suspects = [(ref, live) for ref, live in suspects if live]
    for done, (ref, live) in enumerate(suspects, 1):
        found = _orphaned(stripe, ref, live)
        if found is not None:
            drift.append(found)
        every(progress, done, len(suspects), "licensed groups of inactive subscriptions")
    return drift


def _unlicensed(
    stripe: StripeOpsAPI,
    storage: Storage,
    subscription: Subscription,
    by_ref: Mapping[str, list[EntitlementGroup]],
    lookup_key_fallback: bool,
) -> Drift | None:
    skus = _licensed_skus(subscription, lookup_key_fallback)
    if not skus:
        return None
    customer = subscription.customer_id
    linked = storage.get_customer_link(customer) if customer else None
    candidates = by_ref.get(subscription.id, [])
    if linked:
        candidates = [g for g in candidates if g.customer_id in (linked, None)]
    if any(_live(g) for g in candidates) or held_for(storage, subscription.id):
        return None  # live, or disabled on purpose for a refund or dispute
    if linked is None and customer:
        try:
            linked = stripe.retrieve_customer(customer).metadata.get(CUSTOMER_METADATA_KEY)
        except StripeAPIError:
            linked = None
    if candidates:
        what = f"its group(s) {', '.join(g.id for g in candidates)} have no live entitlement"
    elif linked:
        what = f"Zentitle2 customer {linked} has no group for it"
    else:
        what = "no Zentitle2 customer is linked to its Stripe customer and no group names it"
    return Drift(
        "unlicensed",
        subscription.id,
        f"active subscription {subscription.id} sells {', '.join(skus)} but {what}",
        "replay its latest invoice.paid event (zentitle-stripe events / replay), or "
        "reconcile with a --since that covers it",
        stripe_customer_id=customer,
        zentitle_customer_id=linked,
        group_ids=tuple(g.id for g in candidates),
    )


def _orphaned(stripe: StripeOpsAPI, ref: str, live: list[EntitlementGroup]) -> Drift | None:
    subscription: Subscription | None = None
    try:
        subscription = stripe.retrieve_subscription(ref)
    except StripeAPIError as exc:
        if exc.status != 404:
            raise
        state, customer = "does not exist in this Stripe account", None
    else:
        if subscription.status not in _ENDED_SUBSCRIPTION:
            return None
        state, customer = f"is {subscription.status}", subscription.customer_id
    deleted = subscription is None or subscription.status == "canceled"
    return Drift(
        "orphaned",
        ref,
        f"subscription {ref} {state}, but group(s) {', '.join(g.id for g in live)} still "
        "have live entitlements",
        f"{_DELETED_FIX if deleted else _STATUS_FIX}, or disable the entitlements in Zentitle2",
        stripe_customer_id=customer,
        zentitle_customer_id=next((g.customer_id for g in live if g.customer_id), None),
        group_ids=tuple(g.id for g in live),
    )
