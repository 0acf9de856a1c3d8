"""What the core answers: a framework-neutral response, and the one error-to-status table.

Adapters render :class:`WebhookResponse` as it is; they never choose a status themselves.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping

import attrs

from .exceptions import (
    EventInProgress,
    EventNotFound,
    PayloadTooLargeError,
    ProvisioningConfigError,
    RemoteAPIError,
    TransientError,
    WebhookRejected,
)

__all__ = ["Outcome", "OutcomeKind", "WebhookResponse", "status_for"]

DEFAULT_RETRY_AFTER = 30


class OutcomeKind(str, enum.Enum):
    """What handling an event did."""

    PROVISIONED = "provisioned"
    """Licences were created (or found already created) for a first payment."""
    RENEWED = "renewed"
    """A paid renewal extended the licences."""
    REVOKED = "revoked"
    """A cancellation disabled the licences."""
    HANDLED = "handled"
    """A Zentitle2 event reached the app's handlers."""
    IGNORED = "ignored"
    """Nothing to do (other event types, one-time payments, ...)."""
    DUPLICATE = "duplicate"
    """Already done, or being done by another worker right now."""
    FAILED = "failed"
    """Not done; ``reason`` says why and whether a retry can succeed."""


@attrs.frozen
class Outcome:
    """What was done, with a reason a person can act on."""

    kind: OutcomeKind
    reason: str = ""

    @classmethod
    def ignored(cls, reason: str) -> Outcome:
        return cls(OutcomeKind.IGNORED, reason)


@attrs.frozen
class WebhookResponse:
    """A neutral HTTP response: adapters copy ``status``, ``body`` and ``headers`` out.

    ``body`` is JSON ``{"event_id", "type", "outcome", "detail"}``; it never carries a
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
        body = json.dumps(
            {
                "event_id": event_id,
                "type": event_type,
                "outcome": outcome.kind.value,
                "detail": outcome.reason,
            },
            separators=(",", ":"),
        ).encode()
        headers = {"Content-Type": "application/json"}
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, round(retry_after)))
        return cls(status, body, headers, outcome, event_id, event_type)


def status_for(exc: BaseException, *, config_error_status: int = 422) -> int:
    """The HTTP status for an error: the single table every entry point uses.

    ====================================  ======
    error                                 status
    ====================================  ======
    body over the size limit              413
    bad/missing signature, not an event   400
    same event in progress elsewhere      409
    replay of an unrecorded event         404
    set-up problem (unknown SKU, ...)     422 (or ``config_error_status``)
    permanent remote API error            422 (or ``config_error_status``)
    transient (timeouts, 429, 5xx, lock)  503
    anything else                         500
    ====================================  ======
    """
    if isinstance(exc, PayloadTooLargeError):
        return 413
    if isinstance(exc, WebhookRejected):
        return 400
    if isinstance(exc, EventInProgress):
        return 409
    if isinstance(exc, EventNotFound):
        return 404
    if isinstance(exc, TransientError) or (isinstance(exc, RemoteAPIError) and exc.transient):
        return 503
    if isinstance(exc, (ProvisioningConfigError, RemoteAPIError)):
        return config_error_status
    return 500


def retry_after_for(exc: BaseException) -> float | None:
    """Seconds the sender should wait, for 503 answers."""
    hint = getattr(exc, "retry_after", None)
    return float(hint) if isinstance(hint, (int, float)) and hint > 0 else DEFAULT_RETRY_AFTER
