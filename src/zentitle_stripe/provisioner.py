"""The engine: verify, record, claim, process, respond.

:meth:`Provisioner.handle_event` is a pure function of (raw body, signature header) to a
:class:`~zentitle_stripe.responses.WebhookResponse`: no framework object goes in or comes
out, so every adapter is a few lines and every path is testable without a server.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .config import DEFAULT_MAX_BODY_BYTES, SeatPolicy, Secret, Settings
from .events import StripeEvent, parse_event
from .exceptions import (
    ConfigurationError,
    EventInProgress,
    EventNotFound,
    PayloadTooLargeError,
    ProvisioningConfigError,
    RemoteAPIError,
    TransientError,
    WebhookRejected,
    ZentitleStripeError,
)
from .responses import Outcome, OutcomeKind, WebhookResponse, retry_after_for, status_for
from .signature import DEFAULT_TOLERANCE, verify_stripe_signature
from .storage import ClaimResult, EventRecord, EventStatus, NewEvent, Storage, open_storage
from .zentitle_webhooks import (
    EntitlementGroupCreated,
    ZentitleEvent,
    ZentitleWebhookKey,
    parse_zentitle_event,
)

if TYPE_CHECKING:
    from .flows import ActivationDetails
    from .stripe_api import StripeAPI
    from .zentitle import ZentitleAPI

__all__ = ["EventProcessor", "Provisioner", "ZentitleHandler"]

logger = logging.getLogger("zentitle_stripe")

STRIPE = "stripe"
ZENTITLE = "zentitle"

E = TypeVar("E", bound=ZentitleEvent)
ZentitleHandler = Callable[[Any], None]
"""A function called with a typed :class:`~zentitle_stripe.zentitle_webhooks.ZentitleEvent`."""


class EventProcessor(Protocol):
    """Acts on verified, claimed Stripe events (the provisioning flows implement it)."""

    event_types: frozenset[str]
    """The event types it acts on; every other type is acknowledged as ``ignored``."""

    def process(self, event: StripeEvent, *, owner: str) -> Outcome:
        """Do the work for ``event`` and say what was done.

        Raise :class:`~zentitle_stripe.exceptions.ProvisioningConfigError` for set-up
        problems and :class:`~zentitle_stripe.exceptions.TransientError` (or a transient
        remote API error) when a retry can succeed. ``owner`` identifies this attempt,
        for locks. It must be safe to run again for the same event.
        """
        ...


class _NoProcessor:
    """Used when no processor is configured: every event is acknowledged as ignored."""

    event_types: frozenset[str] = frozenset()

    def process(self, event: StripeEvent, *, owner: str) -> Outcome:  # pragma: no cover
        raise AssertionError("never called: event_types is empty")


_HOST = socket.gethostname()


def _new_owner() -> str:
    """A unique claim owner: host/pid/random, readable in ``events`` listings."""
    return f"{_HOST}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


class Provisioner:
    """Turns verified Stripe events into Zentitle2 licences, exactly once.

    Build it with :meth:`from_env`, or by hand::

        provisioner = Provisioner(
            webhook_secrets=["whsec_..."],
            storage=SQLiteStorage("licences.db"),
            processor=Provisioning(zentitle=..., stripe=..., storage=...),
        )
        response = provisioner.handle_event(raw_body, request.headers.get("Stripe-Signature"))
    """

    def __init__(
        self,
        *,
        webhook_secrets: Sequence[str | Secret],
        storage: Storage,
        zentitle: ZentitleAPI | None = None,
        stripe: StripeAPI | None = None,
        processor: EventProcessor | None = None,
        zentitle_webhook_key: ZentitleWebhookKey | str | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        lease_seconds: float = 120.0,
        config_error_status: int = 422,
        lookup_key_fallback: bool = False,
        seat_policy: SeatPolicy = "multiply",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Wire the engine.

        With ``zentitle`` and ``stripe`` clients and no ``processor``, the standard
        :class:`~zentitle_stripe.flows.Provisioning` flows are used; pass ``processor`` to
        replace them. Without any, every event is recorded and acknowledged as ignored.
        """
        secrets = [s.reveal() if isinstance(s, Secret) else s for s in webhook_secrets]
        if not secrets or not all(secrets):
            raise ConfigurationError("STRIPE_WEBHOOK_SECRET: at least one signing secret is needed")
        self._secrets = tuple(s.encode() for s in secrets)
        self.storage = storage
        self.zentitle = zentitle
        self.stripe = stripe
        if processor is None and zentitle is not None and stripe is not None:
            from .flows import Provisioning

            processor = Provisioning(
                zentitle=zentitle,
                stripe=stripe,
                storage=storage,
                lookup_key_fallback=lookup_key_fallback,
                seat_policy=seat_policy,
                lease_seconds=lease_seconds,
                clock=clock,
            )
        self.processor: EventProcessor = processor or _NoProcessor()
        if isinstance(zentitle_webhook_key, str):
            zentitle_webhook_key = ZentitleWebhookKey.from_config(zentitle_webhook_key)
        self.zentitle_webhook_key = zentitle_webhook_key
        self.tolerance = tolerance
        self.max_body_bytes = max_body_bytes
        self.lease_seconds = lease_seconds
        self.config_error_status = config_error_status
        self.clock = clock
        self._zentitle_handlers: dict[str, list[ZentitleHandler]] = {}
        self.settings: Settings | None = None

    def __repr__(self) -> str:
        return (
            f"Provisioner(secrets={len(self._secrets)} masked, storage={self.storage!r}, "
            f"processor={type(self.processor).__name__})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Provisioner:
        """Build a fully wired provisioner from environment variables.

        See :meth:`zentitle_stripe.config.Settings.from_env` for the variables; a missing
        or malformed one raises :class:`~zentitle_stripe.exceptions.ConfigurationError`.
        """
        return cls.from_settings(Settings.from_env(environ))

    @classmethod
    def from_settings(cls, settings: Settings) -> Provisioner:
        """Build a fully wired provisioner from :class:`~zentitle_stripe.config.Settings`."""
        from .stripe_api import StripeGateway
        from .zentitle import ZentitleClient

        provisioner = cls(
            webhook_secrets=settings.webhook_secrets,
            storage=open_storage(settings.storage_url),
            zentitle=ZentitleClient(
                settings.zentitle_api_url,
                settings.zentitle_tenant_id,
                settings.zentitle_client_id,
                settings.zentitle_client_secret.reveal(),
                settings.zentitle_token_url,
                api_version=settings.zentitle_api_version,
                timeout=settings.http_timeout,
            ),
            stripe=StripeGateway(
                settings.stripe_api_key.reveal(),
                api_base=settings.stripe_api_base,
                timeout=settings.http_timeout,
            ),
            zentitle_webhook_key=settings.zentitle_webhook_public_key,
            tolerance=settings.tolerance,
            max_body_bytes=settings.max_body_bytes,
            lease_seconds=settings.lease_seconds,
            config_error_status=settings.config_error_status,
            lookup_key_fallback=settings.lookup_key_fallback,
            seat_policy=settings.seat_policy,
        )
        provisioner.settings = settings
        return provisioner

    # -- Stripe -------------------------------------------------------------------------

    def handle_event(self, payload: bytes | str, signature: str | None) -> WebhookResponse:
        """Handle one Stripe webhook delivery: the raw body and its ``Stripe-Signature``.

        Always returns a response (never raises for bad input): 200 when done, ignored or
        a duplicate; 400 bad signature or body; 409 in progress elsewhere; 413 too big;
        422 set-up problem; 503 retry later; 500 unexpected. Everything that passed
        verification is recorded, so failures can be replayed.
        """
        started = time.perf_counter()
        try:
            body = self._check_size(payload)
            verify_stripe_signature(
                body, signature, self._secrets, tolerance=self.tolerance, clock=self.clock
            )
            event = parse_event(body)
        except WebhookRejected as exc:
            return self._rejected(STRIPE, exc, started)
        return self._handle_stripe(event, body, started)

    def handle_trusted_event(self, payload: bytes | str) -> WebhookResponse:
        """Handle a Stripe event body that needs no signature: one fetched from Stripe's
        own API over an authenticated call (``reconcile``), never one from a request.
        """
        started = time.perf_counter()
        try:
            body = self._check_size(payload)
            event = parse_event(body)
        except WebhookRejected as exc:
            return self._rejected(STRIPE, exc, started)
        return self._handle_stripe(event, body, started)

    def _handle_stripe(self, event: StripeEvent, body: bytes, started: float) -> WebhookResponse:
        new = NewEvent(
            event_id=event.id,
            source=STRIPE,
            type=event.type,
            payload=body,
            created=event.created,
            api_version=event.api_version,
        )
        return self._claim_and_run(new, lambda owner: self._process_stripe(event, owner), started)

    def replay(self, event_id: str, source: str = STRIPE) -> WebhookResponse:
        """Process a recorded event again through the same code path (even if done).

        The body was verified when it was recorded, so it is not verified again (the
        signature's timestamp would be too old by now).
        """
        started = time.perf_counter()
        clear_caches = getattr(self.processor, "clear_caches", None)
        if callable(clear_caches):  # a replay usually follows a fix of Prices or offerings
            clear_caches()
        record = self.storage.get_event(event_id, source)
        if record is None:
            missing = EventNotFound(f"no recorded {source} event {event_id}")
            outcome = Outcome(OutcomeKind.FAILED, str(missing))
            return WebhookResponse.build(status_for(missing), outcome, event_id=event_id)
        new = record.as_new_event()
        if source == ZENTITLE:
            zentitle_event = parse_zentitle_event(record.payload)
            return self._claim_and_run(
                new, lambda owner: self._run_zentitle_handlers(zentitle_event), started, True
            )
        event = parse_event(record.payload)
        return self._claim_and_run(
            new, lambda owner: self._process_stripe(event, owner), started, True
        )

    def _process_stripe(self, event: StripeEvent, owner: str) -> Outcome:
        if event.thin:
            return Outcome.ignored(
                f"thin event ({event.type}) notifications are not supported yet; "
                "send snapshot events to this endpoint"
            )
        if event.type not in self.processor.event_types:
            return Outcome.ignored(f"event type {event.type} is not one this endpoint acts on")
        return self.processor.process(event, owner=owner)

    # -- Zentitle2 ----------------------------------------------------------------------

    def on_zentitle(self, event_code: str) -> Callable[[Callable[[E], None]], Callable[[E], None]]:
        """Register a handler for a Zentitle2 webhook event code (``"*"`` for all)::

            @provisioner.on_zentitle("entitlement.group.created")
            def send_activation_email(event: EntitlementGroupCreated) -> None: ...

        Handlers run once per ``eventId`` (duplicates are acknowledged without calling
        them); an exception marks the event failed so Zentitle2's retry, or ``replay``,
        runs them again.
        """

        def register(handler: Callable[[E], None]) -> Callable[[E], None]:
            self._zentitle_handlers.setdefault(event_code, []).append(handler)
            return handler

        return register

    def handle_zentitle_event(self, payload: bytes | str, signature: str | None) -> WebhookResponse:
        """Handle one Zentitle2 webhook delivery: raw body and its ``N-Signature`` header."""
        started = time.perf_counter()
        if self.zentitle_webhook_key is None:
            # Always 422, never the 200 of ZENTITLE_STRIPE_CONFIG_ERROR_STATUS: an
            # unverifiable body is not recorded, so only Zentitle2's retry can bring it back.
            missing = ProvisioningConfigError(
                "Zentitle2 webhooks are not configured: set ZENTITLE_WEBHOOK_PUBLIC_KEY to the "
                "account's RSA modulus or JWK (GET /api/v1/account/key)"
            )
            outcome = Outcome(OutcomeKind.FAILED, str(missing))
            self._log(ZENTITLE, None, None, outcome, status_for(missing), started)
            return WebhookResponse.build(status_for(missing), outcome)
        try:
            body = self._check_size(payload)
            self.zentitle_webhook_key.verify(body, signature)
            event = parse_zentitle_event(body)
        except WebhookRejected as exc:
            return self._rejected(ZENTITLE, exc, started)
        new = NewEvent(
            event_id=event.event_id,
            source=ZENTITLE,
            type=event.event_code,
            payload=body,
            created=int(event.event_date.timestamp()) if event.event_date else None,
        )
        return self._claim_and_run(new, lambda owner: self._run_zentitle_handlers(event), started)

    def _run_zentitle_handlers(self, event: ZentitleEvent) -> Outcome:
        handlers = [
            *self._zentitle_handlers.get(event.event_code, ()),
            *self._zentitle_handlers.get("*", ()),
        ]
        if not handlers:
            return Outcome.ignored(f"no handler registered for {event.event_code}")
        for handler in handlers:
            handler(event)
        names = ", ".join(getattr(h, "__name__", repr(h)) for h in handlers)
        return Outcome(OutcomeKind.HANDLED, f"{event.event_code} handled by {names}")

    def activation_details(self, event: EntitlementGroupCreated) -> ActivationDetails:
        """Recipient, name and activation codes for an ``entitlement.group.created`` event.

        Meant for a handler registered with :meth:`on_zentitle` that sends the activation
        e-mail; needs the ``stripe`` and ``zentitle`` clients.
        """
        from .flows import activation_details

        if self.stripe is None or self.zentitle is None:
            raise ConfigurationError(
                "activation_details needs the Stripe and Zentitle2 clients: build the "
                "Provisioner with from_env() or pass stripe= and zentitle="
            )
        return activation_details(event, stripe=self.stripe, zentitle=self.zentitle)

    # -- shared machinery -----------------------------------------------------------------

    def _check_size(self, payload: bytes | str) -> bytes:
        body = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        if len(body) > self.max_body_bytes:
            raise PayloadTooLargeError(
                f"body is larger than the {self.max_body_bytes} byte limit "
                "(ZENTITLE_STRIPE_MAX_BODY_BYTES)"
            )
        return body

    def _claim_and_run(
        self,
        new: NewEvent,
        work: Callable[[str], Outcome],
        started: float,
        replay: bool = False,
    ) -> WebhookResponse:
        owner = _new_owner()
        try:
            claim = self.storage.claim_event(
                new,
                owner=owner,
                lease_seconds=self.lease_seconds,
                now=self.clock(),
                reclaim_done=replay,
            )
        except ZentitleStripeError as exc:
            return self._failed(new, exc, started)
        if claim.result is ClaimResult.DUPLICATE:
            return self._duplicate(new, claim.record, started)
        if claim.result is ClaimResult.IN_PROGRESS:
            return self._failed(
                new,
                EventInProgress("this event is being processed by another worker; retry later"),
                started,
            )
        try:
            outcome = work(owner)
        except Exception as exc:
            return self._failed(new, exc, started, owner=owner)
        try:
            self.storage.finish_event(
                new.event_id,
                new.source,
                owner=owner,
                status=EventStatus.DONE,
                outcome=outcome.kind.value,
                detail=outcome.reason,
                error=None,
                now=self.clock(),
            )
        except ZentitleStripeError as exc:
            return self._failed(new, exc, started)
        self._log(new.source, new.event_id, new.type, outcome, 200, started)
        return WebhookResponse.build(200, outcome, event_id=new.event_id, event_type=new.type)

    def _duplicate(self, new: NewEvent, record: EventRecord, started: float) -> WebhookResponse:
        earlier = f"{record.outcome}: {record.detail}" if record.outcome else "done"
        outcome = Outcome(OutcomeKind.DUPLICATE, f"already processed ({earlier})")
        self._log(new.source, new.event_id, new.type, outcome, 200, started)
        return WebhookResponse.build(200, outcome, event_id=new.event_id, event_type=new.type)

    def _failed(
        self,
        new: NewEvent,
        exc: Exception,
        started: float,
        *,
        owner: str | None = None,
    ) -> WebhookResponse:
        status = status_for(exc, config_error_status=self.config_error_status)
        if isinstance(exc, EventInProgress):
            reason = str(exc)
            kind = OutcomeKind.DUPLICATE
        elif isinstance(exc, (ProvisioningConfigError, TransientError, RemoteAPIError)):
            reason = str(exc)
            kind = OutcomeKind.FAILED
        else:
            reason = (
                "internal error while processing the event; it is recorded as failed and can "
                "be replayed (see the server log)"
            )
            kind = OutcomeKind.FAILED
        if status >= 500 and status != 503:
            logger.exception(
                "unexpected error processing %s event %s", new.source, new.event_id, exc_info=exc
            )
        outcome = Outcome(kind, reason)
        if owner is not None:
            try:
                self.storage.finish_event(
                    new.event_id,
                    new.source,
                    owner=owner,
                    status=EventStatus.FAILED,
                    outcome=OutcomeKind.FAILED.value,
                    detail=reason,
                    error=f"{type(exc).__name__}: {exc}",
                    now=self.clock(),
                )
            except ZentitleStripeError:
                # The claim's lease will expire and a redelivery will take it over.
                logger.exception("could not record the failure of event %s", new.event_id)
        self._log(new.source, new.event_id, new.type, outcome, status, started)
        return WebhookResponse.build(
            status,
            outcome,
            event_id=new.event_id,
            event_type=new.type,
            retry_after=retry_after_for(exc) if status == 503 else None,
        )

    def _rejected(self, source: str, exc: WebhookRejected, started: float) -> WebhookResponse:
        status = status_for(exc)
        outcome = Outcome(OutcomeKind.FAILED, str(exc))
        self._log(source, None, None, outcome, status, started)
        return WebhookResponse.build(status, outcome)

    def _log(
        self,
        source: str,
        event_id: str | None,
        event_type: str | None,
        outcome: Outcome,
        status: int,
        started: float,
    ) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        level = logging.INFO if status < 500 or status == 503 else logging.ERROR
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "%s event %s (%s): %s %s in %.1f ms",
                source,
                event_id,
                event_type,
                status,
                outcome.kind.value,
                duration_ms,
                extra={
                    "source": source,
                    "event_id": event_id,
                    "event_type": event_type,
                    "status": status,
                    "outcome": outcome.kind.value,
                    "detail": outcome.reason,
                    "duration_ms": duration_ms,
                },
            )
