"""Activation e-mails: when Zentitle2 reports a new entitlement group, mail its codes.

Zentitle2 sends ``entitlement.group.created`` to your Zentitle2 webhook endpoint; the
handler runs once per ``eventId``. Raising makes the delivery fail (Zentitle2 retries, or
you ``replay`` it), so the e-mail is sent once it succeeds, and never twice.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from email.message import EmailMessage

from zentitle_stripe import Provisioner, TransientError
from zentitle_stripe.flows import ActivationDetails
from zentitle_stripe.zentitle_webhooks import EntitlementGroupCreated

SendEmail = Callable[[EmailMessage], None]


def compose(details: ActivationDetails, *, sender: str) -> EmailMessage:
    """The message for one entitlement group."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = details.email or ""
    message["Subject"] = "Your licence is ready"
    codes = "\n".join(f"    {code}" for code in details.activation_codes)
    message.set_content(
        f"Hello {details.customer_name or 'there'},\n\n"
        f"thank you for subscribing. Your activation code(s):\n\n{codes}\n"
    )
    return message


def smtp_sender(host: str, port: int = 587) -> SendEmail:
    """Send through an SMTP server; a server that is down asks Zentitle2 to retry later."""

    def send(message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(host, port, timeout=10) as smtp:
                smtp.starttls()
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            # TransientError -> HTTP 503 with Retry-After; the event stays replayable.
            raise TransientError(f"mail server unavailable: {exc}", retry_after=60) from exc

    return send


def register(provisioner: Provisioner, send: SendEmail, *, sender: str) -> None:
    """Attach the handler to ``provisioner``; call once at start-up."""

    @provisioner.on_zentitle("entitlement.group.created")
    def send_activation_email(event: EntitlementGroupCreated) -> None:
        if not (event.order_ref_id or "").startswith("sub_"):
            return  # a group made elsewhere (e.g. in the Zentitle2 UI), not for a subscription
        details = provisioner.activation_details(event)  # recipient, name, codes
        if details.email is None:
            return  # no address on the Stripe customer: nothing to send
        send(compose(details, sender=sender))
