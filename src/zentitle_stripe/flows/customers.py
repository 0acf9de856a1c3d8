"""Customer matching: which Zentitle2 customer a Stripe customer's licences belong to.

Best evidence first: the link stored by an earlier payment, the Stripe Customer's
`zentitle_customer_id` metadata, a Zentitle2 contact with the buyer's e-mail, what an
earlier attempt created before its answer was lost; only then a new customer, marked as
pending in storage before the create, given the buyer as a contact and linked back in
Stripe's metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..catalogue import CUSTOMER_METADATA_KEY
from ..exceptions import ProvisioningConfigError, ZentitleAPIError
from ..stripe.events import Invoice
from .context import FlowContext, logger

if TYPE_CHECKING:
    from ..stripe.models import Customer

__all__ = ["pending_key", "zentitle_customer"]


def zentitle_customer(ctx: FlowContext, invoice: Invoice, owner: str) -> tuple[str, bool]:
    """Find or create the Zentitle2 customer of the invoice's buyer.

    Runs under a lock on the Stripe customer, so two subscriptions of one buyer processed
    at once create one customer. Returns its id and whether it was created by this call.
    """
    stripe_customer_id = invoice.customer_id
    if stripe_customer_id is None:
        raise ProvisioningConfigError(f"invoice {invoice.id} names no Stripe customer")
    with ctx.lock(f"customer:{stripe_customer_id}", owner):
        linked = ctx.storage.get_customer_link(stripe_customer_id)
        if linked:
            return linked, False
        customer = ctx.stripe.retrieve_customer(stripe_customer_id)
        email = customer.email or invoice.customer_email
        zentitle_id = _existing_customer(ctx, stripe_customer_id, customer, email)
        created = zentitle_id is None
        if zentitle_id is None:
            name = customer.name or invoice.customer_name or email or stripe_customer_id
            ctx.fence.check()
            ctx.storage.put_customer_link(pending_key(stripe_customer_id), "1")
            zentitle_id = _create_customer(ctx, name[:255], stripe_customer_id)
        # Link first: a crash after this point reuses the customer instead of adding one.
        ctx.fence.check()
        ctx.storage.put_customer_link(stripe_customer_id, zentitle_id)
        if created and email:
            _create_contact(ctx, zentitle_id, email)
        if not customer.deleted and customer.metadata.get(CUSTOMER_METADATA_KEY) != zentitle_id:
            ctx.stripe.update_customer_metadata(
                stripe_customer_id, {CUSTOMER_METADATA_KEY: zentitle_id}
            )
        return zentitle_id, created


def pending_key(stripe_customer_id: str) -> str:
    """The storage key marking a Zentitle2 customer creation begun for a Stripe customer."""
    return f"pending-create:{stripe_customer_id}"


def _existing_customer(
    ctx: FlowContext, stripe_customer_id: str, customer: Customer, email: str | None
) -> str | None:
    """The Zentitle2 customer already made for this buyer, if any evidence names one."""
    zentitle_id = customer.metadata.get(CUSTOMER_METADATA_KEY) or None
    if zentitle_id is None and email:
        contacts = ctx.zentitle.search_contacts(email)
        zentitle_id = next(
            (
                c.customer_id
                for c in contacts
                if c.customer_id and (c.email or "").casefold() == email.casefold()
            ),
            None,
        )
    if zentitle_id is None and ctx.storage.get_customer_link(pending_key(stripe_customer_id)):
        # An earlier attempt began creating this customer and lost the answer: find what
        # it created (a full listing, but only on this rare path).
        found = ctx.zentitle.find_customers(stripe_customer_id)
        zentitle_id = found[0].id if found else None
    return zentitle_id


def _create_customer(ctx: FlowContext, name: str, stripe_customer_id: str) -> str:
    """Create the Zentitle2 customer; after an answer that may be lost, look first."""
    try:
        return ctx.zentitle.create_customer(name=name, account_ref_id=stripe_customer_id).id
    except ZentitleAPIError as exc:
        if not exc.may_have_landed:
            raise
        found = ctx.zentitle.find_customers(stripe_customer_id)
        if not found:
            raise  # not there (yet): the next attempt looks again before creating
        logger.info("customer create for %s landed despite %s", stripe_customer_id, exc)
        return found[0].id


def _create_contact(ctx: FlowContext, customer_id: str, email: str) -> None:
    """Add the buyer as a contact, the only thing Zentitle2 can find by e-mail."""
    try:
        ctx.zentitle.create_contact(customer_id, email=email)
    except ZentitleAPIError as exc:
        if not (exc.may_have_landed or exc.status == 409):
            raise
        contacts = ctx.zentitle.search_contacts(email)
        if not any(c.customer_id == customer_id for c in contacts):
            raise
