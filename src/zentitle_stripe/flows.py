"""The provisioning flows: Stripe payments in, Zentitle2 licences out, exactly once.

Neither Stripe nor Zentitle2 offers a transaction across both, and Zentitle2 has no
idempotency keys, so every flow is written to be *resumable*: each remote write is
preceded by a check that finds its earlier effect (the entitlement group by
``orderRefId``, the renewal by comparing each entitlement's expiry, read with
``GET /api/v1/entitlements/{id}``, with the paid period), and storage records each step
right after it succeeds. A crash at any point leaves state that the next delivery of the
same event (or a ``replay``) completes without doing anything twice. A create or renew
whose answer was lost (a timeout, or a 5xx that a gateway may send after the backend
acted) is followed by a look, never by a blind repeat.

All work for one subscription runs under a per-subscription lock in storage, so a payment
and a cancellation of the same subscription never interleave their remote calls, even
across processes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import attrs

from .catalogue import (
    CODES_METADATA_KEY,
    CUSTOMER_METADATA_KEY,
    REQUIRED_EVENTS,
    SKU_METADATA_KEY,
    near_miss_sku,
    resolve_sku,
)
from .catalogue import SWITCHED_OFF_ENTITLEMENT_STATUSES as _INACTIVE
from .config import SeatPolicy
from .events import Invoice, InvoiceLine, StripeEvent, parse_invoice, parse_subscription
from .exceptions import ProvisioningConfigError, TransientError, ZentitleAPIError
from .responses import Outcome, OutcomeKind
from .storage import Storage, SubscriptionState

if TYPE_CHECKING:
    from .stripe_api import StripeAPI
    from .zentitle import ZentitleAPI
    from .zentitle.models import Entitlement, EntitlementGroup
    from .zentitle_webhooks import EntitlementGroupCreated

__all__ = [
    "CODES_METADATA_KEY",
    "CUSTOMER_METADATA_KEY",
    "SKU_METADATA_KEY",
    "ActivationDetails",
    "Provisioning",
    "activation_details",
]

logger = logging.getLogger("zentitle_stripe.flows")

COVERAGE_SLACK = 24 * 3600
"""An expiry this close to the paid period's end counts as covering it (clock skew,
month-length rounding); far smaller than any billing period, so a real renewal is never
mistaken for one already applied."""
MAX_REMEMBERED_INVOICES = 50
MAX_RENEWS_PER_EVENT = 24
"""Bound on renewals of one entitlement for one invoice (two years of monthly periods)."""
_METADATA_VALUE_LIMIT = 500  # Stripe's limit per metadata value


@attrs.frozen
class _LicensedLine:
    """An invoice line that grants a licence: its SKU and how many units were bought."""

    sku: str
    quantity: int
    price_id: str


class Provisioning:
    """The :class:`~zentitle_stripe.provisioner.EventProcessor` for licences.

    ``invoice.paid`` provisions (first payment) or renews (``subscription_cycle``);
    ``customer.subscription.deleted`` revokes. ``lookup_key_fallback`` lets a Price's
    ``lookup_key`` stand in for a missing ``offering_sku``; ``seat_policy`` says whether a
    line quantity of N means N times the offering's seats.
    """

    event_types = frozenset(REQUIRED_EVENTS)

    def __init__(
        self,
        *,
        zentitle: ZentitleAPI,
        stripe: StripeAPI,
        storage: Storage,
        lookup_key_fallback: bool = False,
        seat_policy: SeatPolicy = "multiply",
        lease_seconds: float = 120.0,
        lock_wait: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.zentitle = zentitle
        self.stripe = stripe
        self.storage = storage
        self.lookup_key_fallback = lookup_key_fallback
        self.seat_policy = seat_policy
        self.lease_seconds = lease_seconds
        self.lock_wait = lock_wait
        self.clock = clock
        self.sleep = sleep

    def clear_caches(self) -> None:
        """Forget cached Prices and offerings, so a replay after a set-up fix sees the fix."""
        for client in (self.stripe, self.zentitle):
            clear = getattr(client, "clear_caches", None)
            if callable(clear):
                clear()

    def process(self, event: StripeEvent, *, owner: str) -> Outcome:
        if event.type == "invoice.paid":
            invoice = parse_invoice(event.object)
            if invoice.subscription_id is None:
                return Outcome.ignored(
                    f"invoice {invoice.id} is a one-time payment (no subscription): "
                    "licences are only granted for subscriptions"
                )
            with self._lock(f"subscription:{invoice.subscription_id}", owner):
                return self._invoice_paid(invoice, invoice.subscription_id, owner)
        subscription = parse_subscription(event.object)
        with self._lock(f"subscription:{subscription.id}", owner):
            return self._subscription_deleted(subscription.id, subscription.customer_id)

    # -- invoice.paid ---------------------------------------------------------------------

    def _invoice_paid(self, invoice: Invoice, subscription_id: str, owner: str) -> Outcome:
        state = self.storage.get_subscription(subscription_id) or SubscriptionState(subscription_id)
        if state.canceled:
            disabled = self._disable_group(state) if state.group_id else 0
            return Outcome.ignored(
                f"subscription {subscription_id} is cancelled, so its payment grants no "
                f"licence{f' (disabled {disabled} entitlements)' if disabled else ''}"
            )
        if invoice.id in state.renewed_invoices:
            return Outcome(
                OutcomeKind.DUPLICATE, f"invoice {invoice.id} was already applied to the licences"
            )
        if state.group_id is None or not state.codes_written:
            state, outcome = self._provision(invoice, state, owner)
            if invoice.billing_reason != "subscription_cycle":
                return outcome
            # A renewal that found no licence: the licence now exists; make sure it also
            # covers this period (a new group does already, so this renews nothing).
            return self._renew(invoice, state, provisioned=outcome)
        if invoice.billing_reason == "subscription_cycle":
            return self._renew(invoice, state)
        if invoice.billing_reason == "subscription_create":
            return Outcome(
                OutcomeKind.DUPLICATE,
                f"subscription {subscription_id} already has entitlement group {state.group_id}",
            )
        return Outcome.ignored(
            f"invoice {invoice.id} has billing_reason {invoice.billing_reason!r}, which does "
            "not change licences (only the first payment and renewals do)"
        )

    def _provision(
        self, invoice: Invoice, state: SubscriptionState, owner: str
    ) -> tuple[SubscriptionState, Outcome]:
        """First payment: customer, one group for every licensed line, codes to Stripe."""
        subscription_id = state.subscription_id
        lines = self._licensed_lines(invoice)
        if not lines:
            return state, Outcome.ignored(
                f"no line of invoice {invoice.id} has a Price with metadata "
                f"{SKU_METADATA_KEY!r}, so there is nothing to license"
            )
        seats = {line.sku: self._offering_seats(line) for line in lines}

        created_group = False
        if state.group_id is None:
            new_customer = False
            customer_id = state.zentitle_customer_id
            if customer_id is None:
                customer_id, new_customer = self._zentitle_customer(invoice, owner)
            state = attrs.evolve(state, zentitle_customer_id=customer_id)
            # A customer created just now has no groups yet: skip the lookup.
            group = None if new_customer else self._find_group(subscription_id, customer_id)
            fresh = False
            if group is None:
                group, fresh = self._create_group(lines, customer_id, subscription_id)
                created_group = True
            # Seats before recording: a crash in between leaves a group the retry finds
            # and whose seat counts it reads before setting any again.
            self._apply_seats(group, lines, seats, fresh=fresh)
            state = attrs.evolve(
                state, group_id=group.id, activation_codes=tuple(group.activation_codes)
            )
            self.storage.put_subscription(state)  # from here on, a retry never re-creates

        if not state.codes_written:
            self._write_codes(subscription_id, state.activation_codes)
            # Not yet in renewed_invoices: for a renewal, _renew records it once it has
            # actually extended the licence (a failure there must leave it to a retry).
            state = attrs.evolve(state, codes_written=True)
            self.storage.put_subscription(state)
        skus = ", ".join(line.sku for line in lines)
        verb = "created" if created_group else "found"
        return state, Outcome(
            OutcomeKind.PROVISIONED,
            f"{verb} entitlement group {state.group_id} for subscription {subscription_id} "
            f"with {len(lines)} entitlement(s) ({skus}); activation codes written to the "
            f"subscription's {CODES_METADATA_KEY!r} metadata",
        )

    def _licensed_lines(self, invoice: Invoice) -> list[_LicensedLine]:
        """The lines whose Price names an offering SKU; misplaced SKUs are set-up errors."""
        lines: Sequence[InvoiceLine] = invoice.lines
        if invoice.lines_has_more:
            lines = self.stripe.list_invoice_lines(invoice.id)
        licensed, misplaced = [], []
        for line in lines:
            if not line.is_subscription or line.price_id is None:
                continue
            sku = self._sku(line.price_metadata, line.price_lookup_key)
            if sku is None:
                # basil+ payloads carry only the Price id; an old-shape payload carries a
                # snapshot, which a replay after fixing the Price must not trust.
                price = self.stripe.retrieve_price(line.price_id)
                sku = self._sku(price.metadata, price.lookup_key)
            if sku:
                licensed.append(_LicensedLine(sku, line.quantity, line.price_id))
            elif line.product_id:
                product = self.stripe.retrieve_product(line.product_id)
                if SKU_METADATA_KEY in product.metadata:
                    misplaced.append((line.price_id, product))
        if misplaced:
            price_id, product = misplaced[0]
            raise ProvisioningConfigError(
                f"metadata {SKU_METADATA_KEY!r} is set on Product {product.id} "
                f"({product.name or 'unnamed'}) but must be on its Price {price_id}: move it to "
                "the Price, then replay this event"
            )
        return licensed

    def _sku(self, metadata: Mapping[str, str] | None, lookup_key: str | None) -> str | None:
        return resolve_sku(metadata, lookup_key, lookup_key_fallback=self.lookup_key_fallback)

    def _offering_seats(self, line: _LicensedLine) -> int | None:
        """Check the SKU exists in Zentitle2 (cached) and return the offering's seats."""
        offering = self.zentitle.find_offering(line.sku)
        if offering is None:
            raise ProvisioningConfigError(self._unknown_sku_message(line))
        return offering.seat_count

    def _unknown_sku_message(self, line: _LicensedLine) -> str:
        known = [o.sku for o in self.zentitle.list_offerings() if o.sku]
        near = near_miss_sku(line.sku, known)
        hint = f" (did you mean {near!r}? SKUs match exactly, case-sensitively)" if near else ""
        return (
            f"Price {line.price_id} has {SKU_METADATA_KEY} {line.sku!r}, but Zentitle2 has no "
            f"offering with that SKU{hint}; fix the metadata or the offering, then replay "
            "this event"
        )

    def _zentitle_customer(self, invoice: Invoice, owner: str) -> tuple[str, bool]:
        """Find or create the Zentitle2 customer, best evidence first.

        Runs under a lock on the Stripe customer, so two subscriptions of one buyer
        processed at once create one customer. Returns its id and whether it was created
        by this call.
        """
        stripe_customer_id = invoice.customer_id
        if stripe_customer_id is None:
            raise ProvisioningConfigError(f"invoice {invoice.id} names no Stripe customer")
        with self._lock(f"customer:{stripe_customer_id}", owner):
            linked = self.storage.get_customer_link(stripe_customer_id)
            if linked:
                return linked, False
            customer = self.stripe.retrieve_customer(stripe_customer_id)
            zentitle_id = customer.metadata.get(CUSTOMER_METADATA_KEY) or None
            email = customer.email or invoice.customer_email
            if zentitle_id is None and email:
                contacts = self.zentitle.search_contacts(email)
                zentitle_id = next(
                    (
                        c.customer_id
                        for c in contacts
                        if c.customer_id and (c.email or "").casefold() == email.casefold()
                    ),
                    None,
                )
            if zentitle_id is None and self.storage.get_customer_link(_pending(stripe_customer_id)):
                # An earlier attempt began creating this customer and lost the answer:
                # find what it created (a full listing, but only on this rare path).
                found = self.zentitle.find_customers(stripe_customer_id)
                zentitle_id = found[0].id if found else None
            created = zentitle_id is None
            if zentitle_id is None:
                name = customer.name or invoice.customer_name or email or stripe_customer_id
                self.storage.put_customer_link(_pending(stripe_customer_id), "1")
                zentitle_id = self._create_customer(name[:255], stripe_customer_id)
            # Link first: a crash after this point reuses the customer instead of adding one.
            self.storage.put_customer_link(stripe_customer_id, zentitle_id)
            if created and email:
                self._create_contact(zentitle_id, email)
            if not customer.deleted and customer.metadata.get(CUSTOMER_METADATA_KEY) != zentitle_id:
                self.stripe.update_customer_metadata(
                    stripe_customer_id, {CUSTOMER_METADATA_KEY: zentitle_id}
                )
            return zentitle_id, created

    def _create_customer(self, name: str, stripe_customer_id: str) -> str:
        """Create the Zentitle2 customer; after an answer that may be lost, look first."""
        try:
            return self.zentitle.create_customer(name=name, account_ref_id=stripe_customer_id).id
        except ZentitleAPIError as exc:
            if not exc.may_have_landed:
                raise
            found = self.zentitle.find_customers(stripe_customer_id)
            if not found:
                raise  # not there (yet): the next attempt looks again before creating
            logger.info("customer create for %s landed despite %s", stripe_customer_id, exc)
            return found[0].id

    def _create_contact(self, customer_id: str, email: str) -> None:
        """Add the buyer as a contact, the only thing Zentitle2 can find by e-mail."""
        try:
            self.zentitle.create_contact(customer_id, email=email)
        except ZentitleAPIError as exc:
            if not (exc.may_have_landed or exc.status == 409):
                raise
            contacts = self.zentitle.search_contacts(email)
            if not any(c.customer_id == customer_id for c in contacts):
                raise

    def _find_group(self, subscription_id: str, customer_id: str | None) -> EntitlementGroup | None:
        """The group an earlier, interrupted attempt created, if any (oldest wins)."""
        groups = self.zentitle.find_entitlement_groups(subscription_id, customer_id=customer_id)
        if len(groups) > 1:
            logger.warning(
                "subscription %s has %d entitlement groups in Zentitle2; using the oldest",
                subscription_id,
                len(groups),
            )
        epoch = datetime.min.replace(tzinfo=timezone.utc)
        group = min(groups, key=lambda g: (g.created or epoch, g.id), default=None)
        if group is not None and not group.activation_codes:
            # A list entry may omit its codes (the contract allows it): read the group.
            group = self.zentitle.get_entitlement_group(group.id)
        return group

    def _create_group(
        self, lines: Sequence[_LicensedLine], customer_id: str, subscription_id: str
    ) -> tuple[EntitlementGroup, bool]:
        """Create the subscription's group; True with it when it is certainly new.

        After an answer that may have been lost, the group may exist: look for it by
        ``orderRefId`` and use it, or fail so that the next attempt looks again.
        """
        try:
            group = self.zentitle.create_entitlement_group(
                skus=[line.sku for line in lines],
                customer_id=customer_id,
                order_ref_id=subscription_id,
            )
            return group, True
        except ZentitleAPIError as exc:
            if exc.may_have_landed:
                found = self._find_group(subscription_id, customer_id)
                if found is None:
                    raise
                logger.info("group create for %s landed despite %s", subscription_id, exc)
                return found, False
            if exc.transient or exc.status not in (400, 404, 422):
                raise
            skus = ", ".join(repr(line.sku) for line in lines)
            raise ProvisioningConfigError(
                f"Zentitle2 refused to create the entitlement group for {skus}: {exc.message}"
            ) from exc

    def _apply_seats(
        self,
        group: EntitlementGroup,
        lines: Sequence[_LicensedLine],
        seats: dict[str, int | None],
        *,
        fresh: bool,
    ) -> None:
        """Quantity N buys N times the offering's seats (``seat_policy="multiply"``).

        A group's entitlements carry no seat count, so a group created just now
        (``fresh``) is known to have the offering's seats; one found again on a retry may
        have been set already, so its seat count is read first and not PATCHed twice.
        """
        wanted = [line for line in lines if line.quantity > 1 and seats.get(line.sku)]
        if self.seat_policy != "multiply" or not wanted:
            return
        entitlements = list(
            group.entitlements or self._group_with_entitlements(group.id).entitlements
        )
        for line in lines:
            entitlement = next((e for e in entitlements if e.sku == line.sku), None)
            if entitlement is None:
                continue
            entitlements.remove(entitlement)  # two lines of one SKU get one entitlement each
            base = seats.get(line.sku)
            if line.quantity <= 1 or not base:
                continue
            target = base * line.quantity
            current = base if fresh else self.zentitle.get_entitlement(entitlement.id).seat_count
            if current != target:
                self.zentitle.update_entitlement(entitlement.id, seat_count=target)

    def _group_with_entitlements(self, group_id: str) -> EntitlementGroup:
        """Read a group; no entitlements yet means Zentitle2 is still creating them."""
        group = self.zentitle.get_entitlement_group(group_id)
        if not group.entitlements:
            raise TransientError(
                f"entitlement group {group_id} lists no entitlements yet (Zentitle2 may still "
                "be creating them); retry later",
                retry_after=10,
            )
        return group

    def _write_codes(self, subscription_id: str, codes: Sequence[str]) -> None:
        value = ",".join(codes)
        while len(value) > _METADATA_VALUE_LIMIT and "," in value:
            value = value.rsplit(",", 1)[0]
            logger.warning("activation codes of %s exceed Stripe's limit", subscription_id)
        self.stripe.update_subscription_metadata(subscription_id, {CODES_METADATA_KEY: value})

    # -- renewal --------------------------------------------------------------------------

    def _renew(
        self,
        invoice: Invoice,
        state: SubscriptionState,
        *,
        provisioned: Outcome | None = None,
    ) -> Outcome:
        """Extend every live entitlement whose expiry does not yet cover the paid period.

        The group read names the entitlements and their status only (the contract's
        short model has no expiry), so each live one is read on its own
        (``GET /api/v1/entitlements/{id}``). Comparing that expiry with the period's end
        (not counting deliveries) makes this idempotent: a duplicate, a retry after a
        crash between two renews, or a replay renews only what is still short. The
        invoice is recorded as applied only once every entitlement is known to cover it;
        anything that cannot be confirmed raises, so the event is retried or reported.
        """
        period_end = invoice.period_end
        if period_end is None or state.group_id is None:
            return provisioned or Outcome.ignored(
                f"invoice {invoice.id} has no subscription period to renew"
            )
        group = self._group_with_entitlements(state.group_id)
        renewed = [
            entitlement.id
            for entitlement in group.entitlements
            if entitlement.status not in _INACTIVE
            and self._renew_until_covered(entitlement.id, period_end)
        ]
        state = attrs.evolve(state, renewed_invoices=_remember(state.renewed_invoices, invoice.id))
        self.storage.put_subscription(state)
        until = datetime.fromtimestamp(period_end, timezone.utc).date().isoformat()
        if provisioned is not None:
            return provisioned
        if not renewed:
            return Outcome(
                OutcomeKind.DUPLICATE,
                f"entitlements of group {group.id} already cover the period ending {until}",
            )
        return Outcome(
            OutcomeKind.RENEWED,
            f"renewed {len(renewed)} entitlement(s) of group {group.id} to cover the period "
            f"ending {until} (invoice {invoice.id})",
        )

    def _renew_until_covered(self, entitlement_id: str, period_end: int) -> bool:
        """Renew one entitlement until its expiry covers ``period_end``; True if renewed.

        Usually one renew does it. When renewals arrive out of order (the later one
        first), one period may not be enough, so renew again, bounded. After a renew
        (204, no body) the new expiry follows from Zentitle2's documented rule
        ([`Entitlement.renewed_expiry`][zentitle_stripe.zentitle.models.Entitlement.renewed_expiry]);
        it is read back only when that prediction falls short or cannot be made, which
        keeps the usual cost at one read and one renew.
        """
        current = self.zentitle.get_entitlement(entitlement_id)
        if current.status in _INACTIVE or current.license_type == "perpetual":
            return False  # disabled meanwhile, or never expires: nothing to extend
        target = period_end - COVERAGE_SLACK
        renewed = False
        for _ in range(MAX_RENEWS_PER_EVENT):
            expiry = current.expiry_date
            if expiry is None:
                raise _unreadable_expiry(current)
            if expiry.timestamp() >= target:
                return renewed
            predicted = current.renewed_expiry(datetime.fromtimestamp(self.clock(), timezone.utc))
            landed_late = self._renew_once(current)
            renewed = True
            if landed_late is not None:
                current = landed_late
            elif predicted is not None and predicted.timestamp() >= target:
                return True  # known from the documented rule; a read would only repeat it
            else:
                current = self.zentitle.get_entitlement(entitlement_id)
        if current.expiry_date is not None and current.expiry_date.timestamp() >= target:
            return True
        paid = datetime.fromtimestamp(period_end, timezone.utc).date().isoformat()
        raise ProvisioningConfigError(
            f"entitlement {entitlement_id} ({current.sku}) still expires "
            f"{current.expiry_date.date().isoformat() if current.expiry_date else 'never'}, "
            f"before the paid period ends on {paid}, after {MAX_RENEWS_PER_EVENT} renewals: "
            "its Zentitle2 plan period may not match the Stripe price's interval; fix the "
            "plan, then replay this event"
        )

    def _renew_once(self, entitlement: Entitlement) -> Entitlement | None:
        """One renew; after a failure that may have landed, read back to see if it did.

        Returns the read-back entitlement when the renew landed although its answer was
        lost, ``None`` after a clean 204. A renew that did not land re-raises: it is not
        repeated blindly, the next attempt reads the expiry again first.
        """
        try:
            self.zentitle.renew_entitlement(entitlement.id)
        except ZentitleAPIError as exc:
            if not exc.may_have_landed or entitlement.expiry_date is None:
                raise
            after = self.zentitle.get_entitlement(entitlement.id)
            if after.expiry_date is None or after.expiry_date <= entitlement.expiry_date:
                raise
            logger.info("renew of %s landed despite %s", entitlement.id, exc)
            return after
        return None

    # -- customer.subscription.deleted ----------------------------------------------------------

    def _subscription_deleted(self, subscription_id: str, customer_id: str | None) -> Outcome:
        state = self.storage.get_subscription(subscription_id) or SubscriptionState(subscription_id)
        # Remember first: a late or retried payment must not create a licence after this.
        state = attrs.evolve(state, canceled=True)
        if state.group_id is None:
            group = self._find_orphan_group(subscription_id, customer_id)
            if group is not None:
                state = attrs.evolve(
                    state, group_id=group.id, activation_codes=tuple(group.activation_codes)
                )
        self.storage.put_subscription(state)
        if state.group_id is None:
            return Outcome(
                OutcomeKind.REVOKED,
                f"subscription {subscription_id} had no licence yet; the cancellation is "
                "remembered so a late payment creates none",
            )
        disabled = self._disable_group(state)
        return Outcome(
            OutcomeKind.REVOKED,
            f"disabled {disabled} entitlement(s) of group {state.group_id} "
            f"(subscription {subscription_id} cancelled)",
        )

    def _find_orphan_group(
        self, subscription_id: str, customer_id: str | None
    ) -> EntitlementGroup | None:
        """A group created by an attempt that crashed before recording it."""
        zentitle_customer = self.storage.get_customer_link(customer_id) if customer_id else None
        if zentitle_customer is None:
            return None  # no customer was ever resolved, so no group can exist
        return self._find_group(subscription_id, zentitle_customer)

    def _disable_group(self, state: SubscriptionState) -> int:
        assert state.group_id is not None
        group = self._group_with_entitlements(state.group_id)
        disabled = 0
        for entitlement in group.entitlements:
            if entitlement.status not in _INACTIVE:
                self.zentitle.disable_entitlement(entitlement.id)
                disabled += 1
        return disabled

    # -- serialisation ----------------------------------------------------------------------------

    @contextmanager
    def _lock(self, name: str, owner: str) -> Iterator[None]:
        """Hold a named lock in storage, waiting up to ``lock_wait`` seconds.

        Locks serialise the remote calls of one subscription (and the customer creation
        of one Stripe customer) across threads and processes sharing the storage.
        """
        deadline = time.monotonic() + self.lock_wait
        delay = 0.01
        while not self.storage.acquire_lock(
            name, owner=owner, lease_seconds=self.lease_seconds, now=self.clock()
        ):
            if time.monotonic() >= deadline:
                raise TransientError(
                    f"another event holds the lock on {name}; retry later", retry_after=5
                )
            self.sleep(delay)
            delay = min(delay * 2, 0.25)
        try:
            yield
        finally:
            self.storage.release_lock(name, owner=owner)


def _unreadable_expiry(entitlement: Entitlement) -> Exception:
    """Why a renewal cannot be confirmed when Zentitle2 shows no expiry."""
    if entitlement.status == "created" or entitlement.activation_date is None:
        return ProvisioningConfigError(
            f"entitlement {entitlement.id} ({entitlement.sku}) is not activated yet, so it has "
            "no expiry and Zentitle2 cannot renew it (renew needs an activated subscription); "
            "replay this event once it is activated"
        )
    return TransientError(
        f"Zentitle2 shows no expiry for subscription entitlement {entitlement.id} "
        f"({entitlement.sku}, status {entitlement.status}), so the renewal cannot be "
        "confirmed; retry later",
        retry_after=30,
    )


def _pending(stripe_customer_id: str) -> str:
    """The storage key marking a Zentitle2 customer creation begun for a Stripe customer."""
    return f"pending-create:{stripe_customer_id}"


def _remember(invoices: tuple[str, ...], invoice_id: str) -> tuple[str, ...]:
    if invoice_id in invoices:
        return invoices
    return (*invoices, invoice_id)[-MAX_REMEMBERED_INVOICES:]


# -- activation e-mails -----------------------------------------------------------------------


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
    """Gather the recipient and codes for an ``entitlement.group.created`` event.

    The group's ``orderRefId`` is the Stripe subscription; its metadata holds the codes
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
