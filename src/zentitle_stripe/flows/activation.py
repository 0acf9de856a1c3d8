"""What an activation e-mail needs, gathered for an `entitlement.group.created` event."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ..catalogue import CODES_METADATA_KEY
from ..exceptions import ProvisioningConfigError, TransientError

if TYPE_CHECKING:
    from ..stripe.api import StripeAPI
    from ..zentitle import ZentitleAPI
    from ..zentitle_webhooks import EntitlementGroupCreated

__all__ = ["ActivationDetails", "activation_details"]


@attrs.frozen
class ActivationDetails:
    """What an activation e-mail needs, gathered from Stripe and Zentitle2."""

    subscription_id: str
    group_id: str
    email: str | None
    customer_name: str | None
    activation_codes: tuple[str, ...]


def activation_details(
    event: EntitlementGroupCreated, *, stripe: StripeAPI, zentitle: ZentitleAPI
) -> ActivationDetails:
    """Gather the recipient and codes for an `entitlement.group.created` event.

    The group's `orderRefId` is the Stripe subscription; its metadata holds the codes
    once provisioning wrote them back. Zentitle2 may deliver its webhook before that
    write, so the group's own codes are the fallback.
    """
    group_id = event.entitlement_group_id
    if not group_id or not event.order_ref_id:
        raise ProvisioningConfigError(
            f"entitlement group event {event.event_id} names no group or no orderRefId, so "
            "the group was not created by zentitle-stripe and no Stripe subscription is known"
        )
    subscription = stripe.retrieve_subscription(event.order_ref_id)
    codes = tuple(
        c for c in subscription.metadata.get(CODES_METADATA_KEY, "").split(",") if c.strip()
    )
    if not codes:
        codes = tuple(zentitle.get_entitlement_group(group_id).activation_codes)
    if not codes:
        raise TransientError(
            f"entitlement group {group_id} has no activation codes yet",
            retry_after=10,
        )
    email = name = None
    if subscription.customer_id:
        customer = stripe.retrieve_customer(subscription.customer_id)
        email, name = customer.email, customer.name
    return ActivationDetails(
        subscription_id=subscription.id,
        group_id=group_id,
        email=email,
        customer_name=name,
        activation_codes=codes,
    )
