"""What work a verified Stripe or Zentitle2 event gets: the processor's flows, its
registered handlers, or an `ignored` outcome when there is nothing to do.

Kept apart from the engine ([`provisioner`][zentitle_stripe.provisioner]) so the same
rules serve a live delivery, a replay and a queued event a worker claims.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Protocol

from ._intake import STRIPE, ZENTITLE, refused, stripe_record, verified
from .events import StripeEvent, parse_event
from .exceptions import InvalidPayloadError, ProvisioningConfigError
from .ledger import Work
from .responses import Outcome, WebhookResponse
from .storage import EventRecord
from .zentitle_router import Router
from .zentitle_webhooks import ZentitleEvent, parse_zentitle_event

if TYPE_CHECKING:
    from .provisioner import Provisioner

__all__ = ["EventProcessor", "nowait_intake"]


class EventProcessor(Protocol):
    """Acts on verified, claimed Stripe events (the provisioning flows implement it)."""

    @property
    def event_types(self) -> frozenset[str]:
        """The event types it acts on; every other type is acknowledged as `ignored`
        (a class attribute does as well as a property)."""
        ...

    def process(self, event: StripeEvent, *, owner: str) -> Outcome:
        """Do the work for `event` and say what was done.

        Raise [`ProvisioningConfigError`][zentitle_stripe.exceptions.ProvisioningConfigError]
        for set-up problems and [`TransientError`][zentitle_stripe.exceptions.TransientError]
        (or a transient remote API error) when a retry can succeed. `owner` identifies
        this attempt, for locks. It must be safe to run again for the same event.
        """
        ...


class _NoProcessor:
    """Used when no processor is configured: every event is acknowledged as ignored."""

    event_types: frozenset[str] = frozenset()

    def process(self, event: StripeEvent, *, owner: str) -> Outcome:  # pragma: no cover
        raise AssertionError("never called: event_types is empty")


def _process_stripe(processor: EventProcessor, event: StripeEvent, owner: str) -> Outcome:
    """The work for a claimed Stripe event: the processor's, unless it has none to do."""
    if event.thin or event.type not in processor.event_types:
        return _ignored(event)
    try:
        return processor.process(event, owner=owner)
    except InvalidPayloadError as exc:  # the event's own data: no retry or replay changes it
        raise ProvisioningConfigError(
            f"event {event.id} carries data that cannot be used, so nothing was done for it: "
            f"{exc}. If Stripe did not send this event, rotate the endpoint's signing secret"
        ) from exc


def _ignored(event: StripeEvent) -> Outcome:
    """The outcome of an event no flow acts on (thin, or a type not handled)."""
    return _ignored_type(event.type, event.thin)


@functools.lru_cache(maxsize=512)  # Stripe has a few hundred event types
def _ignored_type(event_type: str, thin: bool) -> Outcome:
    if thin:
        return Outcome.ignored(
            f"thin event ({event_type}) notifications are not supported yet; "
            "send snapshot events to this endpoint"
        )
    return Outcome.ignored(f"event type {event_type} is not one this endpoint acts on")


def _settled(processor: EventProcessor, event: StripeEvent) -> Outcome | None:
    """The outcome of `event` when it certainly needs no work (so it is recorded done in
    one write), else `None`: the same answers `_process_stripe` gives."""
    if event.thin or event.type not in processor.event_types:
        return _ignored(event)
    settled = getattr(processor, "settled", None)
    return settled(event) if callable(settled) else None


def _dispatching(router: Router, event: ZentitleEvent) -> Work:
    """The work for a claimed Zentitle2 event: its handlers (no locks, so no owner)."""
    return lambda owner: router.dispatch(event)


def _replay_work(router: Router, processor: EventProcessor, record: EventRecord) -> Work:
    """The work of replaying `record`; refused (`ProvisioningConfigError`, the event left
    as it was) for a Zentitle2 event no handler registered here would see."""
    if record.source == ZENTITLE:
        event = parse_zentitle_event(record.payload)
        unreplayable = router.unreplayable(event)
        if unreplayable:
            raise ProvisioningConfigError(unreplayable)
        return _dispatching(router, event)
    return functools.partial(_process_stripe, processor, parse_event(record.payload))


def _reraise(exc: Exception, owner: str) -> Outcome:
    raise exc


def nowait_intake(
    provisioner: Provisioner, payload: bytes | str, signature: str | None
) -> WebhookResponse | None:
    """`Provisioner.handle_event_nowait`: the answer to a delivery that takes no waiting.

    That is a refusal (bad signature or body), or a first-seen event that needs no work
    when storage records it without waiting (SQLite: the lock free within 2 ms, no
    checkpoint due; memory): about 60 µs of CPU, like a `construct_event`, which spares
    the threadpool's hand-offs. Everything else (work to do, a redelivery, queue mode,
    PostgreSQL) is `None`, with nothing recorded.
    """
    started = time.perf_counter()
    ledger = provisioner._ledger
    try:
        body, event = verified(provisioner, payload, signature, verify=True)
        if provisioner.processing == "queue":
            return None
        settled = _settled(provisioner.processor, event)
        if settled is None:
            return None
        return ledger.settle_nowait(stripe_record(event, body), settled, started=started)
    except Exception as exc:  # refused; a bug is answered 500, never raised to the server
        return refused(ledger, STRIPE, exc, started)
