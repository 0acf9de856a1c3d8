"""The engine: verify a webhook, then let the ledger run the work for it exactly once.

[`Provisioner.handle_event`][zentitle_stripe.Provisioner.handle_event] takes the raw body
and the signature header and returns a
[`WebhookResponse`][zentitle_stripe.responses.WebhookResponse]. No framework object goes in
or out, so every adapter is a few lines and every path is testable without a server. The
claim/finish bookkeeping lives in [`ledger`][zentitle_stripe.ledger], the Zentitle2 handler
registry in [`zentitle_router`][zentitle_stripe.zentitle_router], the error policy in
[`classify`][zentitle_stripe.responses.classify] and the wiring of real clients in
[`Services`][zentitle_stripe.services.Services].
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from . import telemetry
from ._closing import Closer
from ._hook_runner import OutcomeHooks
from ._intake import (
    STRIPE,
    ZENTITLE,
    not_replayed,
    refused,
    stripe_record,
    verified,
    zentitle_record,
)
from ._untrusted import bounded_body, finite_number
from ._work import (
    EventProcessor,
    _dispatching,
    _NoProcessor,
    _process_stripe,
    _replay_work,
    _reraise,
    _settled,
    nowait_intake,
)
from .config import DEFAULT_MAX_BODY_BYTES, Processing, SeatPolicy, Secret, Settings
from .exceptions import (
    ConfigurationError,
    EventNotFound,
    ProvisioningConfigError,
)
from .ledger import Ledger
from .policy import DEFAULT_POLICY, LifecyclePolicy
from .responses import WebhookResponse
from .signature import DEFAULT_TOLERANCE
from .storage import EventRecord, Storage
from .zentitle_router import Router, ZentitleHandler
from .zentitle_webhooks import (
    EntitlementGroupCreated,
    ZentitleEvent,
    ZentitleWebhookKey,
    parse_zentitle_event,
)

if TYPE_CHECKING:
    from .flows import ActivationDetails
    from .services import Services
    from .stripe_api import StripeAPI
    from .zentitle import ZentitleAPI

__all__ = ["EventProcessor", "Provisioner", "ZentitleHandler"]

E = TypeVar("E", bound=ZentitleEvent)


_NO_KEY = (
    "Zentitle2 webhooks are not configured: set ZENTITLE_WEBHOOK_PUBLIC_KEY to the "
    "account's RSA modulus or JWK (GET /api/v1/account/key)"
)


def _secret_bytes(webhook_secrets: Sequence[str | Secret]) -> tuple[bytes, ...]:
    secrets = [s.reveal() if isinstance(s, Secret) else s for s in webhook_secrets]
    if not secrets or not all(secrets):
        raise ConfigurationError("STRIPE_WEBHOOK_SECRET: at least one signing secret is needed")
    return tuple(s.encode() for s in secrets)


def _checked_mode(processing: str) -> Processing:
    if processing not in ("sync", "queue"):
        raise ConfigurationError("processing must be 'sync' or 'queue'")
    return "queue" if processing == "queue" else "sync"


@telemetry.traced_event("queued")
def process_queued(
    provisioner: Provisioner, record: EventRecord, *, started: float
) -> tuple[WebhookResponse, Exception | None]:
    """Process a queued event a worker has claimed (`record.claimed_by`), by the same
    flows and fencing as `handle_event`; see [`worker`][zentitle_stripe.worker]."""
    try:
        work = _replay_work(provisioner.zentitle_router, provisioner.processor, record)
    except ProvisioningConfigError as exc:  # recorded as failed, like any failed attempt
        work = functools.partial(_reraise, exc)
    return provisioner._ledger.run_claimed(record, work, started=started)


class Provisioner(OutcomeHooks):
    """Turns verified Stripe events into Zentitle2 licences, exactly once.

    Build it with [`from_env`][zentitle_stripe.Provisioner.from_env] (real clients, wired
    by [`Services`][zentitle_stripe.services.Services]) or by hand:

    ```python
    provisioner = Provisioner(
        webhook_secrets=["whsec_..."],
        storage=SQLiteStorage("licences.db"),
        processor=Provisioning(zentitle=..., stripe=..., storage=...),
    )
    response = provisioner.handle_event(raw_body, request.headers.get("Stripe-Signature"))
    ```
    `storage`, `stripe`, `zentitle` and `settings` are read-only (compatibility; take a
    `Services` for the parts). It refuses a `lease_seconds` that is not positive.
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
        create_window: float = 60.0,
        processing: Processing = "sync",
        policy: LifecyclePolicy = DEFAULT_POLICY,
    ) -> None:
        """Wire the engine: with `zentitle` and `stripe` and no `processor`, the standard
        [`Provisioning`][zentitle_stripe.flows.Provisioning] flows under `policy` (a
        [`LifecyclePolicy`][zentitle_stripe.policy.LifecyclePolicy]); with none, every event
        is acknowledged as ignored. `processing="queue"`: see [`worker`][zentitle_stripe.worker]."""
        self.processing: Processing = _checked_mode(processing)
        self._secrets = _secret_bytes(webhook_secrets)
        self._zentitle = zentitle
        self._stripe = stripe
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
                create_window=create_window,
                policy=policy,
            )
        self.processor: EventProcessor = processor or _NoProcessor()
        if isinstance(zentitle_webhook_key, str):
            zentitle_webhook_key = ZentitleWebhookKey.from_config(zentitle_webhook_key)
        self.zentitle_webhook_key = zentitle_webhook_key
        self.tolerance = finite_number(tolerance, "tolerance")
        self.max_body_bytes = finite_number(max_body_bytes, "max_body_bytes", positive=True)
        self.zentitle_router = Router()
        """Where [`on_zentitle`][zentitle_stripe.Provisioner.on_zentitle] registers handlers."""
        self._ledger = Ledger(
            storage,
            lease_seconds=lease_seconds,
            config_error_status=config_error_status,
            clock=clock,
        )
        self._services: Services | None = None
        self._closer = Closer(zentitle, stripe, storage)

    def __repr__(self) -> str:
        return (
            f"Provisioner(secrets={len(self._secrets)} masked, storage={self.storage!r}, "
            f"processor={type(self.processor).__name__})"
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, env_file: str | None = None
    ) -> Provisioner:
        """Build a fully wired provisioner from environment variables (see
        [`Settings.from_env`][zentitle_stripe.config.Settings.from_env])."""
        return cls.from_settings(Settings.from_env(environ, env_file=env_file))

    @classmethod
    def from_settings(cls, settings: Settings) -> Provisioner:
        """The provisioner of a new [`Services`][zentitle_stripe.services.Services]."""
        from .services import Services

        return Services.from_settings(settings).provisioner

    @property
    def services(self) -> Services | None:
        """The [`Services`][zentitle_stripe.services.Services] that built it, if any."""
        return self._services

    @property
    def settings(self) -> Settings | None:
        """The settings it was built from; `None` when built by hand."""
        return None if self._services is None else self._services.settings

    @property
    def storage(self) -> Storage:
        return self._ledger.storage

    @property
    def stripe(self) -> StripeAPI | None:
        return self._stripe

    @property
    def zentitle(self) -> ZentitleAPI | None:
        return self._zentitle

    @property
    def lease_seconds(self) -> float:
        return self._ledger.lease_seconds

    @property
    def config_error_status(self) -> int:
        return self._ledger.config_error_status

    @property
    def clock(self) -> Callable[[], float]:
        return self._ledger.clock

    def close(self) -> None:
        """Close what it runs on, once: its `Services`, else the parts it was given."""
        if self._services is not None:
            self._services.close()
        else:
            self._closer.close()

    def handle_event(self, payload: bytes | str, signature: str | None) -> WebhookResponse:
        """Handle one Stripe webhook delivery: the raw body and its `Stripe-Signature`.

        Not a pure function: after verifying the signature it records and claims the
        event in storage and runs the provisioning flows, which call Stripe and Zentitle2,
        all blocking, in the calling thread (async servers call it from a threadpool). It
        is framework-free because bytes and a header go in and a neutral response comes
        out, so adapters only copy it out and tests need no server.

        Always returns a response (never raises for bad input): 200 when done, ignored or
        a duplicate; 400 bad signature or body; 409 in progress elsewhere; 413 too big;
        422 set-up problem; 503 retry later; 500 unexpected. Everything that passed
        verification is recorded, so failures can be replayed.
        """
        return self._stripe_intake(payload, signature, verify=True)

    def handle_trusted_event(self, payload: bytes | str) -> WebhookResponse:
        """Handle a Stripe event body that needs no signature: one fetched from Stripe's
        own API over an authenticated call (`reconcile`), never one from a request.
        """
        return self._stripe_intake(payload, None, verify=False)

    def handle_event_nowait(self, payload: bytes, signature: str | None) -> WebhookResponse | None:
        """`handle_event`'s answer when it takes no waiting, else `None` (nothing
        recorded; call `handle_event` in a thread): async servers call it on the loop."""
        return nowait_intake(self, payload, signature)

    def _stripe_intake(
        self, payload: bytes | str, signature: str | None, *, verify: bool
    ) -> WebhookResponse:
        started = time.perf_counter()
        try:
            body, event = verified(self, payload, signature, verify=verify)
            if self.processing == "queue" and verify:
                return self._ledger.enqueue(stripe_record(event, body), started=started)
            work = functools.partial(_process_stripe, self.processor, event)
            settled = _settled(self.processor, event)
            record = stripe_record(event, body)
            return self._ledger.run(record, work, started=started, settled=settled)
        except Exception as exc:  # refused; a bug is answered 500, never raised to the server
            return refused(self._ledger, STRIPE, exc, started)

    def replay(self, event_id: str, source: str = STRIPE) -> WebhookResponse:
        """Process a recorded event again through the same code path (even if done).

        The body was verified when it was recorded, so it is not verified again (the
        signature's timestamp would be too old by now). A Zentitle2 event no handler here
        would see is refused (422) and left as it was, never marked done.
        """
        started = time.perf_counter()
        clear_caches = getattr(self.processor, "clear_caches", None)
        if callable(clear_caches):  # a replay usually follows a fix of Prices or offerings
            clear_caches()
        record = self.storage.get_event(event_id, source)
        if record is None:
            missing = EventNotFound(f"no recorded {source} event {event_id}")
            return not_replayed(source, event_id, None, missing, started)
        try:
            work = _replay_work(self.zentitle_router, self.processor, record)
        except ProvisioningConfigError as exc:  # a replay that calls nothing is no success
            return not_replayed(source, event_id, record.type, exc, started)
        return self._ledger.run(record.as_new_event(), work, started=started, replay=True)

    def on_zentitle(self, event_code: str) -> Callable[[Callable[[E], None]], Callable[[E], None]]:
        """Register a handler for a Zentitle2 webhook event code (`"*"` for all).

        ```python
        @provisioner.on_zentitle("entitlement.group.created")
        def send_activation_email(event: EntitlementGroupCreated) -> None: ...
        ```

        Handlers run once per `eventId` (duplicates are acknowledged without calling
        them); an exception marks the event failed so Zentitle2's retry, or `replay`,
        runs them again. Same as `zentitle_router.register`.
        """
        return self.zentitle_router.register(event_code)

    def handle_zentitle_event(self, payload: bytes | str, signature: str | None) -> WebhookResponse:
        """Handle one Zentitle2 webhook delivery: raw body and its `N-Signature` header.

        Blocking, like [`handle_event`][zentitle_stripe.Provisioner.handle_event]: the
        handlers run in the calling thread.
        """
        started = time.perf_counter()
        try:
            if self.zentitle_webhook_key is None:  # refused (422), never recorded
                raise ProvisioningConfigError(_NO_KEY)
            body = bounded_body(payload, self.max_body_bytes)
            self.zentitle_webhook_key.verify(body, signature)
            event = parse_zentitle_event(body)
            work = _dispatching(self.zentitle_router, event)
            return self._ledger.run(zentitle_record(event, body), work, started=started)
        except Exception as exc:  # refused; a bug is answered 500, never raised to the server
            return refused(self._ledger, ZENTITLE, exc, started)

    def activation_details(self, event: EntitlementGroupCreated) -> ActivationDetails:
        """Recipient, name and activation codes for an `entitlement.group.created` event.

        Meant for a handler registered with
        [`on_zentitle`][zentitle_stripe.Provisioner.on_zentitle] that sends the activation
        e-mail; needs the `stripe` and `zentitle` clients.
        """
        from .flows import activation_details

        if self._stripe is None or self._zentitle is None:
            raise ConfigurationError(
                "activation_details needs the Stripe and Zentitle2 clients: build the "
                "Provisioner with from_env() or pass stripe= and zentitle="
            )
        return activation_details(event, stripe=self._stripe, zentitle=self._zentitle)


# Each intake runs in its own OpenTelemetry event span (see `zentitle_stripe.telemetry`).
telemetry.traced_methods(
    Provisioner,
    _stripe_intake="stripe webhook",
    # A delivery it hands on to the threadpool keeps this name and no outcome: the
    # span of `handle_event` that follows has them.
    handle_event_nowait="stripe webhook on the event loop",
    handle_zentitle_event="zentitle webhook",
    replay="replay",
)
