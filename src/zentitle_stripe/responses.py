"""What the core answers: a framework-neutral response, and the one failure table.

Adapters render [`WebhookResponse`][zentitle_stripe.responses.WebhookResponse] as it is;
they never choose a status themselves. [`classify`][zentitle_stripe.responses.classify]
decides, for every error, the status, outcome, reason, `Retry-After` and whether a
traceback is logged, so no two places can disagree about an error.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from typing import Literal

import attrs

from .exceptions import (
    EventInProgress,
    EventNotFound,
    PayloadTooLargeError,
    ProvisioningConfigError,
    RemoteAPIError,
    StorageError,
    TransientError,
    WebhookRejected,
)

__all__ = [
    "Failure",
    "Outcome",
    "OutcomeKind",
    "WebhookResponse",
    "classify",
    "is_transient",
    "retry_after_for",
    "status_for",
]

DEFAULT_RETRY_AFTER = 30


class OutcomeKind(str, enum.Enum):
    """What handling an event did."""

    PROVISIONED = "provisioned"
    """Licences were created (or found already created) for a first payment."""
    RENEWED = "renewed"
    """A paid renewal extended the licences."""
    UPDATED = "updated"
    """A subscription change (items, quantities) was applied to the licences."""
    REVOKED = "revoked"
    """A cancellation disabled the licences."""
    HANDLED = "handled"
    """A Zentitle2 event reached the app's handlers."""
    IGNORED = "ignored"
    """Nothing to do (other event types, one-time payments, ...)."""
    DUPLICATE = "duplicate"
    """Already done, or being done by another worker right now."""
    QUEUED = "queued"
    """Recorded in queue mode; `zentitle-stripe worker` processes it."""
    FAILED = "failed"
    """Not done; `reason` says why and whether a retry can succeed."""


@attrs.frozen
class Outcome:
    """What was done, with a reason a person can act on."""

    kind: OutcomeKind
    reason: str = ""

    @classmethod
    def ignored(cls, reason: str) -> Outcome:
        return cls(OutcomeKind.IGNORED, reason)


_STRING: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring_ascii", None) or (
    json.encoder.encode_basestring_ascii
)
"""A JSON string as `json.dumps` writes it (ASCII, escaped): the answer's four fields are
written with it, which is what `json.dumps` would write, at a fifth of the cost."""


def _json(value: str | None) -> str:
    return "null" if value is None else _STRING(value)


@attrs.frozen
class WebhookResponse:
    """A neutral HTTP response: adapters copy `status`, `body` and `headers` out.

    `body` is JSON `{"event_id", "type", "outcome", "detail"}`; it never carries a
    secret or a traceback.
    """

    status: int
    body: bytes
    headers: Mapping[str, str]
    outcome: Outcome
    event_id: str | None = None
    event_type: str | None = None

    @classmethod
    def build(
        cls,
        status: int,
        outcome: Outcome,
        *,
        event_id: str | None = None,
        event_type: str | None = None,
        retry_after: float | None = None,
    ) -> WebhookResponse:
        body = (
            f'{{"event_id":{_json(event_id)},"type":{_json(event_type)},'
            f'"outcome":{_STRING(outcome.kind.value)},"detail":{_STRING(outcome.reason)}}}'
        ).encode()
        headers = {"Content-Type": "application/json"}
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, round(retry_after)))
        return cls(status, body, headers, outcome, event_id, event_type)


# -- the failure table -------------------------------------------------------------------

INTERNAL_ERROR_REASON = (
    "internal error while processing the event; it is recorded as failed and can "
    "be replayed (see the server log)"
)
"""The reason sent for an unexpected error: its message may hold internals, the log has it."""

STORAGE_UNAVAILABLE_REASON = (
    "storage is unavailable, so the event could not be processed now; retry later "
    "(`zentitle-stripe doctor` says why)"
)
"""The reason sent for a storage error: its message names the database (a path or a URL),
which is not for the sender; the event's recorded error keeps it."""

_Reason = Literal["message", "intake", "generic", "storage"]


def is_transient(exc: BaseException) -> bool:
    """Whether a retry later may succeed: the one definition of "transient"."""
    return isinstance(exc, TransientError) or (isinstance(exc, RemoteAPIError) and exc.transient)


@attrs.frozen
class Failure:
    """How one error is answered, recorded and logged.

    A row of [`classify`][zentitle_stripe.responses.classify]'s table, filled in for one
    exception.
    """

    status: int
    """The HTTP status."""
    kind: OutcomeKind
    """The outcome it is reported as (`failed`, or `duplicate` for an event in progress)."""
    reason: str
    """The `detail` sent back and recorded; never a traceback."""
    retry_after: float | None = None
    """Seconds for the `Retry-After` header; set exactly when the failure is transient."""
    log_traceback: bool = False
    """Whether the error is a bug whose traceback belongs in the log."""
    diagnosis: str | None = None
    """What the server's log adds to `reason` (never sent): what a refusal's check saw,
    the error behind a generic reason; never a secret, a signature or the body."""

    @property
    def transient(self) -> bool:
        """Whether a retry later may succeed (the sender is told when, in `Retry-After`)."""
        return self.retry_after is not None

    @property
    def outcome(self) -> Outcome:
        return Outcome(self.kind, self.reason)

    def response(
        self, *, event_id: str | None = None, event_type: str | None = None
    ) -> WebhookResponse:
        """The answer to send for this failure."""
        return WebhookResponse.build(
            self.status,
            self.outcome,
            event_id=event_id,
            event_type=event_type,
            retry_after=self.retry_after,
        )


@attrs.frozen
class _Row:
    matches: Callable[[BaseException], bool]
    status: int | None  # None: the configured status for set-up problems
    reason: _Reason
    kind: OutcomeKind = OutcomeKind.FAILED
    transient: bool = False
    log_traceback: bool = False


def _is(*types: type[BaseException]) -> Callable[[BaseException], bool]:
    return lambda exc: isinstance(exc, types)


# First match wins; the order matters (PayloadTooLargeError is a WebhookRejected).
_TABLE: tuple[_Row, ...] = (
    _Row(_is(PayloadTooLargeError), 413, "intake"),
    _Row(_is(WebhookRejected), 400, "intake"),
    _Row(_is(EventInProgress), 409, "message", kind=OutcomeKind.DUPLICATE),
    _Row(_is(EventNotFound), 404, "intake"),
    _Row(_is(StorageError), 503, "storage", transient=True),
    _Row(is_transient, 503, "message", transient=True),
    _Row(_is(ProvisioningConfigError, RemoteAPIError), None, "message"),
)
_UNEXPECTED = _Row(_is(BaseException), 500, "generic", log_traceback=True)


def classify(
    exc: BaseException, *, config_error_status: int = 422, processing: bool = False
) -> Failure:
    """The failure table: status, outcome, reason, `Retry-After` and traceback for an error.

    Every entry point answers errors through it, so a status, a body and a log line
    always agree.

    | error | status | outcome | reason | `Retry-After` | traceback |
    |---|---|---|---|---|---|
    | body over the size limit | 413 | `failed` | message¹ | no | no |
    | bad/missing signature, not an event | 400 | `failed` | message¹ | no | no |
    | same event in progress elsewhere | 409 | `duplicate` | message | no | no |
    | replay of an unrecorded event | 404 | `failed` | message¹ | no | no |
    | storage unavailable | 503 | `failed` | fixed³ | 30 s | no |
    | transient: timeout, 429, 5xx, lock | 503 | `failed` | message | hint or 30 s | no |
    | set-up problem, permanent API error | 422² | `failed` | message | no | no |
    | anything else (a bug) | 500 | `failed` | generic | no | yes |

    ¹ These errors explain a request refused before it was recorded. Raised while
    processing a recorded event (`processing=True`) they are not meant for the sender,
    so the reason is the generic one, as for a bug.
    ² Or `config_error_status` (`ZENTITLE_STRIPE_CONFIG_ERROR_STATUS=200`).
    ³ `STORAGE_UNAVAILABLE_REASON`: a storage error's message names the database.
    """
    row = next((r for r in _TABLE if r.matches(exc)), _UNEXPECTED)
    if row.reason == "message" or (row.reason == "intake" and not processing):
        reason = str(exc)
    elif row.reason == "storage":
        reason = STORAGE_UNAVAILABLE_REASON
    else:
        reason = INTERNAL_ERROR_REASON
    return Failure(
        status=config_error_status if row.status is None else row.status,
        kind=row.kind,
        reason=reason,
        retry_after=retry_after_for(exc) if row.transient else None,
        log_traceback=row.log_traceback,
        diagnosis=_diagnosis(exc, row, reason),
    )


def _diagnosis(exc: BaseException, row: _Row, reason: str) -> str | None:
    """The log-only part of a failure (see `Failure.diagnosis`)."""
    if row.log_traceback:
        return None  # the traceback, logged beside it, says everything
    if row.reason == "storage":
        # Only types: a storage error's message names the database, maybe with a password.
        cause = exc.__cause__
        return type(exc).__name__ + (f" from {type(cause).__name__}" if cause else "")
    if reason == INTERNAL_ERROR_REASON:  # an intake error raised while processing
        return f"{type(exc).__name__}: {exc}"
    return getattr(exc, "diagnosis", None)


def status_for(exc: BaseException, *, config_error_status: int = 422) -> int:
    """The HTTP status for an error: the status column of
    [`classify`][zentitle_stripe.responses.classify]'s table."""
    return classify(exc, config_error_status=config_error_status).status


def retry_after_for(exc: BaseException) -> float:
    """Seconds the sender should wait, for 503 answers: the error's hint, else 30."""
    hint = getattr(exc, "retry_after", None)
    return float(hint) if isinstance(hint, (int, float)) and hint > 0 else DEFAULT_RETRY_AFTER
