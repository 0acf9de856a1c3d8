"""`doctor`'s catalogue check: every licensed Price names an offering that fits.

Which Price is licensed, and the SKU it names, is decided by
[`resolve_sku`][zentitle_stripe.catalogue.resolve_sku], the rule provisioning uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..catalogue import SKU_METADATA_KEY, near_miss_sku, product_sku, resolve_sku
from ..exceptions import RemoteAPIError, StripeAPIError
from ._common import Check, CheckStatus, Progress, every, quiet

if TYPE_CHECKING:
    from ..stripe_api import Price, StripeOpsAPI
    from ..zentitle import ZentitleAPI
    from ..zentitle.models import Offering


def check_catalogue(
    stripe: StripeOpsAPI,
    zentitle: ZentitleAPI,
    *,
    lookup_key_fallback: bool = False,
    progress: Progress = quiet,
) -> list[Check]:
    """Every active recurring Price that names an offering names one that exists, exactly,
    on a plan that starts at creation and lasts one billing period.

    Returns one check per problem and a `catalogue` summary last.
    """
    try:
        offerings = zentitle.list_offerings()
        prices = list(stripe.list_prices(active=True, recurring=True))
    except RemoteAPIError as exc:
        return [Check("catalogue", CheckStatus.FAIL, str(exc), "fix the checks above")]
    by_sku = {o.sku: o for o in offerings if o.sku}
    checks: list[Check] = []
    products: dict[str, Mapping[str, str]] = {}
    licensed = 0
    for done, price in enumerate(prices, 1):
        sku = resolve_sku(price.metadata, price.lookup_key, lookup_key_fallback=lookup_key_fallback)
        if sku:
            licensed += 1
            offering = by_sku.get(sku)
            if offering is None:
                checks.append(_unknown_sku(price, sku, list(by_sku)))
            else:
                checks.extend(_plan_checks(price, sku, offering))
        elif price.product_id:
            checks.extend(_product_sku(stripe, price, products))
        every(progress, done, len(prices), "prices")
    checks.append(_summary(checks, len(prices), licensed, len(by_sku)))
    return checks


def _summary(checks: Sequence[Check], prices: int, licensed: int, offerings: int) -> Check:
    """The closing `catalogue` check: counts, and the verdict of the Price checks."""
    failed = sum(c.status is CheckStatus.FAIL for c in checks)
    warned = sum(c.status is CheckStatus.WARN for c in checks)
    summary = (
        f"{prices} active recurring price(s), {licensed} with {SKU_METADATA_KEY}, "
        f"{offerings} Zentitle2 offering(s): {failed} problem(s), {warned} warning(s)"
    )
    if failed:
        return Check("catalogue", CheckStatus.FAIL, summary, "fix the price problems listed above")
    if not licensed:
        return Check(
            "catalogue",
            CheckStatus.WARN,
            f"{summary}; no payment will create a licence",
            f"add metadata {SKU_METADATA_KEY}=<Zentitle2 offering SKU> to each Price that "
            "sells a licence",
        )
    return Check("catalogue", CheckStatus.WARN if warned else CheckStatus.PASS, summary)


def _unknown_sku(price: Price, sku: str, known: Sequence[str]) -> Check:
    near = near_miss_sku(sku, known)
    if near is not None:
        detail = (
            f"{price.id} has {SKU_METADATA_KEY} {sku!r}; Zentitle2 has {near!r} "
            "(SKUs match exactly, case-sensitively)"
        )
        fix = f"set the Price's {SKU_METADATA_KEY} to {near!r}"
    else:
        detail = f"{price.id} has {SKU_METADATA_KEY} {sku!r}, but no Zentitle2 offering has it"
        fix = "create the offering in Zentitle2 or fix the Price's metadata"
    return Check(f"price {price.id}", CheckStatus.FAIL, detail, fix)


def _plan_checks(price: Price, sku: str, offering: Offering) -> list[Check]:
    name = f"price {price.id}"
    plan = offering.plan
    if plan is None:
        return [
            Check(
                name,
                CheckStatus.WARN,
                f"offering {sku!r} ({offering.id}) came without its plan, so its terms were "
                "not checked",
                None,
            )
        ]
    checks = []
    if plan.license_type != "subscription":
        checks.append(
            Check(
                name,
                CheckStatus.FAIL,
                f"offering {sku!r} is on plan {plan.id} with licenseType "
                f"{plan.license_type!r}, but a Stripe subscription needs a subscription plan",
                "map the Price to an offering whose plan has licenseType subscription",
            )
        )
    if plan.license_start_type != "entitlementCreation":
        checks.append(
            Check(
                name,
                CheckStatus.FAIL,
                f"offering {sku!r} is on plan {plan.id} with licenseStartType "
                f"{plan.license_start_type!r}: the term would not start when the first "
                "payment creates the licence, so renewals drift from Stripe's periods",
                "set the plan's licence start type to entitlementCreation",
            )
        )
    stripe_months = _months(price.recurring_interval, price.recurring_interval_count)
    duration = plan.license_duration
    plan_months = _months(duration.type, duration.count) if duration else None
    if stripe_months is None or plan_months is None or stripe_months != plan_months:
        billed = f"every {price.recurring_interval_count or 1} {price.recurring_interval}"
        lasts = f"{duration.count or 1} {duration.type}" if duration else "no licenseDuration"
        checks.append(
            Check(
                name,
                CheckStatus.WARN,
                f"Stripe bills {billed}, but the plan of offering {sku!r} lasts {lasts}",
                "make the plan's licenseDuration equal the Price's billing interval",
            )
        )
    return checks


def _months(interval: str | None, count: int | None) -> int | None:
    per = {"month": 1, "year": 12}.get(interval or "")
    return per * (count or 1) if per else None


def _product_sku(
    stripe: StripeOpsAPI, price: Price, products: dict[str, Mapping[str, str]]
) -> list[Check]:
    assert price.product_id is not None
    metadata = products.get(price.product_id)
    if metadata is None:
        try:
            metadata = stripe.retrieve_product(price.product_id).metadata
        except StripeAPIError:
            metadata = {}
        products[price.product_id] = metadata
    misplaced = product_sku(metadata)
    if misplaced is None:
        return []
    return [
        Check(
            f"price {price.id}",
            CheckStatus.FAIL,
            f"{SKU_METADATA_KEY} {misplaced!r} is on Product "
            f"{price.product_id}, not on its Price {price.id}, so payments create no licence",
            f"move the {SKU_METADATA_KEY} metadata from the Product to the Price",
        )
    ]
