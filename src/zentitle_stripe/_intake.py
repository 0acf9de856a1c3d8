"""The steps of intake that are not a check of the body: what is recorded for a verified
event, and how a delivery refused before recording is answered.

The checks themselves live in [`_untrusted`][zentitle_stripe._untrusted]; the
[`Provisioner`][zentitle_stripe.Provisioner] strings them together.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._untrusted import bounded_body
from .events import parse_event
from .exceptions import ProvisioningConfigError, WebhookRejected
from .ledger import log_answer
from .responses import WebhookResponse, classify
from .signature import verify_stripe_signature
from .storage import NewEvent

if TYPE_CHECKING:
    from .events import StripeEvent
    from .ledger import Ledger
    from .provisioner import Provisioner
    from .zentitle_webhooks import ZentitleEvent

__all__ = [
    "STRIPE",
    "ZENTITLE",
    "not_replayed",
    "refused",
    "stripe_record",
    "verified",
    "zentitle_record",
]

STRIPE = "stripe"
ZENTITLE = "zentitle"

logger = logging.getLogger("zentitle_stripe")


def stripe_record(event: StripeEvent, body: bytes) -> NewEvent:
    """What is recorded for a verified Stripe event (its fields were checked by
    [`parse_event`][zentitle_stripe.events.parse_event])."""
    return NewEvent(
        event_id=event.id,
        source=STRIPE,
        type=event.type,
        payload=body,
        created=event.created,
        api_version=event.api_version,
    )


def verified(
    provisioner: Provisioner, payload: bytes | str, signature: str | None, *, verify: bool
) -> tuple[bytes, StripeEvent]:
    """The body and its event, once the signature (with `verify`) and the body passed."""
    body = bounded_body(payload, provisioner.max_body_bytes)
    if verify:
        verify_stripe_signature(
            body,
            signature,
            provisioner._secrets,
            tolerance=provisioner.tolerance,
            clock=provisioner.clock,
        )
    return body, parse_event(body)


def zentitle_record(event: ZentitleEvent, body: bytes) -> NewEvent:
    """What is recorded for a verified Zentitle2 event."""
    created = int(event.event_date.timestamp()) if event.event_date else None
    return NewEvent(
        event_id=event.event_id,
        source=ZENTITLE,
        type=event.event_code,
        payload=body,
        created=created,
    )


def refused(ledger: Ledger, source: str, exc: Exception, started: float) -> WebhookResponse:
    """The answer to a delivery that failed before the ledger took it over.

    A refusal (bad signature, unusable body, webhooks not configured) is answered by
    [`Ledger.refuse`][zentitle_stripe.ledger.Ledger.refuse]; anything else is a bug:
    logged with its traceback and answered 500 by the failure table, never raised to
    the server, whose own answer would be an HTML page or a dropped connection.
    """
    if isinstance(exc, (WebhookRejected, ProvisioningConfigError)):
        return ledger.refuse(source, exc, started)
    logger.error("unexpected error handling a %s webhook", source, exc_info=exc)
    failure = classify(exc)
    log_answer(
        source, None, None, failure.outcome, failure.status, started, diagnosis=failure.diagnosis
    )
    return failure.response()


def not_replayed(
    source: str, event_id: str, event_type: str | None, exc: Exception, started: float
) -> WebhookResponse:
    """The answer, logged like any other, to a replay that cannot run (an event never
    recorded, or one no handler here would see); nothing is changed."""
    failure = classify(exc)
    log_answer(source, event_id, event_type, failure.outcome, failure.status, started)
    return failure.response(event_id=event_id, event_type=event_type)
