"""Outcome hooks: tell your own systems what Stripe's payments did to the licences.

Each hook runs once per event, after the licence work is recorded done. A hook that
raises is run again (alone) by Stripe's redelivery, a replay or the worker; the others
are not, so the welcome e-mail is never sent twice.
"""

from __future__ import annotations

from collections.abc import Callable

from zentitle_stripe import Provisioner
from zentitle_stripe.hooks import LicenceOutcome

Notify = Callable[[str, str], None]
"""`notify(recipient_or_channel, text)`: your mailer, chat or CRM client."""


def register(provisioner: Provisioner, notify: Notify) -> None:
    """Wire two hooks: a welcome with the codes, and a line per change for sales."""

    @provisioner.on_outcome("provisioned", name="welcome")
    def welcome(outcome: LicenceOutcome) -> None:
        codes = ", ".join(outcome.activation_codes)
        notify(
            f"stripe-customer:{outcome.stripe_customer_id}",
            f"Your {', '.join(outcome.skus)} licence is ready; activation code(s): {codes}",
        )

    @provisioner.on_outcome("*", name="sales-feed")
    def sales_feed(outcome: LicenceOutcome) -> None:
        notify("#sales", f"{outcome.kind.value}: {outcome.subscription_id} ({outcome.message})")
