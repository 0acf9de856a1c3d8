"""Customer matching: which Zentitle2 customer a Stripe customer's licences belong to.

Best evidence first: the link stored by an earlier payment, the Stripe Customer's
`zentitle_customer_id` metadata, a Zentitle2 contact with the buyer's e-mail, what an
earlier attempt created before its answer was lost; only then a new customer, its create
recorded in storage first (a create that may still land is waited for, see
[`markers`][zentitle_stripe.flows.markers]).

Two side effects are owed to the buyer once their customer is known: the buyer as a
contact of a customer this integration made (the only thing Zentitle2 can find by
e-mail), and the customer's id in the Stripe Customer's metadata (what finds it again if
storage is lost). Each is recorded when done (`contact-done:{Stripe customer}`,
`stripe-link-done:{Stripe customer}`); any later run of the same buyer finishes the ones
not recorded, and a run where both are recorded costs no remote call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..catalogue import CUSTOMER_METADATA_KEY
from ..exceptions import ProvisioningConfigError, RemoteAPIError, ZentitleAPIError
from ..stripe.events import Invoice
from .context import FlowContext, logger
from .markers import CLEARED, CreateMarker, SideEffect

if TYPE_CHECKING:
    from ..stripe.models import Customer

__all__ = ["customer_marker", "pending_key", "zentitle_customer"]

_MISSING, _PRESENT, _UNKNOWN = "missing", "present", "unknown"
"""What a run knows of the buyer's contact: known to be missing (create it), present or
not owed (record it done), unknown (search by e-mail first)."""


def zentitle_customer(ctx: FlowContext, invoice: Invoice, owner: str) -> tuple[str, bool]:
    """Find or create the Zentitle2 customer of the invoice's buyer.

    Runs under a lock on the Stripe customer, so two subscriptions of one buyer processed
    at once create one customer. Returns its id and whether it was created by this call.
    Finishes the side effects still owed to the buyer (see the module).
    """
    stripe_customer_id = invoice.customer_id
    if stripe_customer_id is None:
        raise ProvisioningConfigError(f"invoice {invoice.id} names no Stripe customer")
    with ctx.lock(f"customer:{stripe_customer_id}", owner):
        linked = ctx.storage.get_customer_link(stripe_customer_id)
        if linked:
            _settle(ctx, invoice, stripe_customer_id, linked, None, _UNKNOWN)
            return linked, False
        customer = ctx.stripe.retrieve_customer(stripe_customer_id)
        email = customer.email or invoice.customer_email
        marker = customer_marker(ctx, stripe_customer_id)
        zentitle_id, contact = _existing_customer(ctx, stripe_customer_id, customer, email, marker)
        created = zentitle_id is None
        if zentitle_id is None:
            name = customer.name or invoice.customer_name or email or stripe_customer_id
            marker.hold_off(ctx)  # an earlier create may still land: wait, do not repeat
            marker = marker.attempt(ctx)
            zentitle_id = _create_customer(ctx, name[:255], stripe_customer_id, marker)
        # Link first: a crash after this point reuses the customer instead of adding one.
        ctx.fence.check()
        ctx.storage.put_customer_link(stripe_customer_id, zentitle_id)
        marker.confirm(ctx)
        _settle(ctx, invoice, stripe_customer_id, zentitle_id, customer, contact)
        return zentitle_id, created


def pending_key(stripe_customer_id: str) -> str:
    """The storage key by which earlier versions marked a Zentitle2 customer creation
    begun for a Stripe customer; still read, as an attempt long past."""
    return f"pending-create:{stripe_customer_id}"


def customer_marker(ctx: FlowContext, stripe_customer_id: str) -> CreateMarker:
    """The create marker of the Zentitle2 customer of a Stripe customer."""
    marker = CreateMarker.read(
        ctx,
        f"customer-create:{stripe_customer_id}",
        f"the Zentitle2 customer of Stripe customer {stripe_customer_id}",
    )
    if marker.pending:
        return marker
    legacy = ctx.storage.get_customer_link(pending_key(stripe_customer_id))
    return marker if legacy in (None, "", CLEARED) else CreateMarker(marker.key, marker.what, 0.0)


def _existing_customer(
    ctx: FlowContext,
    stripe_customer_id: str,
    customer: Customer,
    email: str | None,
    marker: CreateMarker,
) -> tuple[str | None, str]:
    """The Zentitle2 customer already made for this buyer, if any evidence names one,
    and what is known of the buyer's contact."""
    zentitle_id = customer.metadata.get(CUSTOMER_METADATA_KEY) or None
    if zentitle_id is not None:
        return zentitle_id, _PRESENT  # linked by hand or by us: no contact is added
    if email:
        contacts = ctx.zentitle.search_contacts(email)
        zentitle_id = next(
            (
                c.customer_id
                for c in contacts
                if c.customer_id and (c.email or "").casefold() == email.casefold()
            ),
            None,
        )
        if zentitle_id is not None:
            return zentitle_id, _PRESENT
    if marker.pending:
        # An earlier attempt began creating this customer and lost the answer: find what
        # it created (a full listing, but only on this rare path).
        found = ctx.zentitle.find_customers(stripe_customer_id)
        zentitle_id = found[0].id if found else None
    return zentitle_id, _MISSING


def _create_customer(
    ctx: FlowContext, name: str, stripe_customer_id: str, marker: CreateMarker
) -> str:
    """Create the Zentitle2 customer; after an answer that may be lost, look first."""
    try:
        return ctx.zentitle.create_customer(name=name, account_ref_id=stripe_customer_id).id
    except ZentitleAPIError as exc:
        if not exc.may_have_landed:
            marker.withdraw(ctx)  # certainly not created: the next attempt need not wait
            raise
        found = ctx.zentitle.find_customers(stripe_customer_id)
        if not found:
            raise  # not there (yet): the next attempt looks again, or waits for it
        logger.info("customer create for %s landed despite %s", stripe_customer_id, exc)
        return found[0].id


def _settle(
    ctx: FlowContext,
    invoice: Invoice,
    stripe_customer_id: str,
    zentitle_id: str,
    customer: Customer | None,
    contact: str,
) -> None:
    """Do the side effects owed to the buyer that are not recorded done, then record them.

    Both are tried, so one failing does not hold back the other; the first failure is
    raised afterwards (the event is retried, and the retry finishes what is left).
    """
    contact_done = SideEffect.read(ctx, f"contact-done:{stripe_customer_id}")
    link_done = SideEffect.read(ctx, f"stripe-link-done:{stripe_customer_id}")
    if contact_done.done and link_done.done:
        return
    if customer is None:
        customer = ctx.stripe.retrieve_customer(stripe_customer_id)
    failures: list[RemoteAPIError] = []
    if not contact_done.done:
        email = customer.email or invoice.customer_email
        try:
            if email and contact != _PRESENT:
                _ensure_contact(ctx, zentitle_id, email, known_missing=contact == _MISSING)
            contact_done.record(ctx)
        except RemoteAPIError as exc:
            failures.append(exc)
    if not link_done.done:
        try:
            if not customer.deleted and customer.metadata.get(CUSTOMER_METADATA_KEY) != zentitle_id:
                ctx.stripe.update_customer_metadata(
                    stripe_customer_id, {CUSTOMER_METADATA_KEY: zentitle_id}
                )
            link_done.record(ctx)
        except RemoteAPIError as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


def _ensure_contact(ctx: FlowContext, customer_id: str, email: str, *, known_missing: bool) -> None:
    """Make the buyer a contact of the customer: search first unless known missing."""
    if not known_missing and _has_contact(ctx, customer_id, email):
        return
    try:
        ctx.zentitle.create_contact(customer_id, email=email)
    except ZentitleAPIError as exc:
        if not (exc.may_have_landed or exc.status == 409):
            raise
        if not _has_contact(ctx, customer_id, email):
            raise


def _has_contact(ctx: FlowContext, customer_id: str, email: str) -> bool:
    contacts = ctx.zentitle.search_contacts(email)
    return any(
        c.customer_id == customer_id and (c.email or "").casefold() == email.casefold()
        for c in contacts
    )
