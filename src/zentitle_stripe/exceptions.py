"""Every error zentitle-stripe raises on purpose.

One root, so `except ZentitleStripeError` catches all of them:

```text
ZentitleStripeError
├── ConfigurationError          a setting is missing or malformed (names the variable)
│   └── MissingExtraError       an optional dependency is not installed (names the extra);
│                               also an ImportError
├── WebhookRejected             the request itself is unusable; never recorded
│   ├── SignatureVerificationError   400: bad, missing or expired signature
│   ├── InvalidPayloadError          400: not JSON, or not an event
│   └── PayloadTooLargeError         413: body over the configured limit
├── EventInProgress             409: another worker holds this event (retry later)
├── EventNotFound               404: replay of an event that was never recorded
├── ProcessingError             recorded as failed, replayable
│   ├── ProvisioningConfigError 422: Stripe/Zentitle2 set-up problem (e.g. unknown SKU)
│   └── TransientError          503: try again later (timeouts, 429, 5xx, busy locks)
│       ├── StorageError        the storage backend failed (wraps the driver's error)
│       ├── LeaseLost           this worker's lease expired and another took over
│       └── StateConflict       a stale subscription-state write was refused
└── RemoteAPIError              a remote API failed (.transient says if a retry may help)
    ├── ZentitleAPIError        Zentitle2's Management API
    └── StripeAPIError          Stripe's API
```

`ZentitleAPIError` and `StripeAPIError` are raised by the API clients; the
provisioner maps them (transient -> 503, permanent -> 422, or 200 when
`ZENTITLE_STRIPE_CONFIG_ERROR_STATUS=200`) in one place, the failure table
[`classify`][zentitle_stripe.responses.classify] (also behind
[`status_for`][zentitle_stripe.responses.status_for]).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "ConfigurationError",
    "EventInProgress",
    "EventNotFound",
    "InvalidPayloadError",
    "LeaseLost",
    "MissingExtraError",
    "PayloadTooLargeError",
    "ProcessingError",
    "ProvisioningConfigError",
    "RemoteAPIError",
    "SignatureVerificationError",
    "StateConflict",
    "StorageError",
    "StripeAPIError",
    "TransientError",
    "WebhookRejected",
    "ZentitleAPIError",
    "ZentitleStripeError",
]


class ZentitleStripeError(Exception):
    """Root of every error raised by zentitle-stripe."""


class ConfigurationError(ZentitleStripeError):
    """A setting is missing or malformed; the message names the setting and the fix.

    `problems` lists each problem on its own (one for most errors; every missing or
    malformed variable for `Settings.from_env`), for tools that report them one by one
    (Django's system checks)."""

    def __init__(self, *args: object, problems: tuple[str, ...] = ()) -> None:
        super().__init__(*args)
        self.problems: tuple[str, ...] = problems or tuple(str(a) for a in args[:1])


class MissingExtraError(ConfigurationError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        self.extra = extra
        super().__init__(
            f"{module} needs the optional dependency {extra!r}: "
            f"pip install 'zentitle-stripe[{extra}]'"
        )


class WebhookRejected(ZentitleStripeError):
    """The request cannot be used at all (bad signature, not an event, too big).

    Nothing is recorded: an unauthenticated body must not reach storage. `diagnosis`
    is for the server's log only, never sent back: what the check saw (how many
    signatures and secrets, the timestamp's age, where the JSON broke), never a secret,
    a signature or the body.
    """

    def __init__(self, *args: object, diagnosis: str | None = None) -> None:
        super().__init__(*args)
        self.diagnosis = diagnosis


class SignatureVerificationError(WebhookRejected):
    """The signature header is missing, malformed, wrong or too old."""


class InvalidPayloadError(WebhookRejected):
    """The body is not JSON or not an event of the expected shape."""


class PayloadTooLargeError(WebhookRejected):
    """The body is larger than the configured limit."""


class EventInProgress(ZentitleStripeError):
    """Another worker is processing this event right now; the sender should retry later."""


class EventNotFound(ZentitleStripeError):
    """No event with that id is recorded (`replay` of an unknown id)."""


class ProcessingError(ZentitleStripeError):
    """Processing a verified event failed; the event stays recorded and can be replayed."""


class ProvisioningConfigError(ProcessingError):
    """A set-up problem only a human can fix (unknown SKU, SKU on the Product, ...)."""


class TransientError(ProcessingError):
    """A temporary failure; retrying later is expected to succeed."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageError(TransientError):
    """The storage backend failed; the driver's exception is the `__cause__`."""


class LeaseLost(TransientError):
    """This worker no longer holds its claim on the event, or a lock it works under.

    Its lease expired (a stall longer than the lease) and another worker took it over, so
    it stopped before its next write and records nothing over the new owner's work.
    """


class StateConflict(TransientError):
    """Storage refused a subscription-state write: another writer stored a newer state
    since this one was read (a stale writer), or the write would clear a cancellation."""


class RemoteAPIError(ZentitleStripeError):
    """A remote API (Zentitle2 or Stripe) answered with an error or could not be reached.

    `status` is the HTTP status (`None` when no response arrived), `transient` says
    whether retrying later may succeed, `retry_after` is the server's hint in seconds
    when it sent one, `error_code` the service's own code for the error.
    """

    service = "remote API"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        transient: bool = False,
        retry_after: float | None = None,
        error_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.transient = transient
        self.retry_after = retry_after
        self.error_code = error_code

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, "
            f"transient={self.transient!r})"
        )


class _RemoteDetails(TypedDict, total=False):
    """The keyword arguments of `RemoteAPIError`, for the subclasses that add their own."""

    status: int | None
    transient: bool
    retry_after: float | None
    error_code: str | None


class ZentitleAPIError(RemoteAPIError):
    """Zentitle2's Management API failed; `validation_errors` holds its field messages.

    `may_have_landed` is true when the request may have done its work although it
    failed (a timeout after sending, a 5xx from a gateway, an unreadable 2xx): a caller
    must look before repeating a create or a renew.
    """

    service = "Zentitle2"

    def __init__(
        self,
        message: str,
        *,
        details: str | None = None,
        validation_errors: tuple[str, ...] = (),
        may_have_landed: bool = False,
        **remote: Unpack[_RemoteDetails],
    ) -> None:
        super().__init__(message, **remote)
        self.details = details
        self.validation_errors = validation_errors
        self.may_have_landed = may_have_landed


class StripeAPIError(RemoteAPIError):
    """Stripe's API failed (wraps stripe-python's error as `__cause__`)."""

    service = "Stripe"
