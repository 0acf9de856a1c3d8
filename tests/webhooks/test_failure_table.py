"""The one failure table: for each error, status, outcome, reason, Retry-After, traceback."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zentitle_stripe import Outcome, OutcomeKind, Provisioner, WebhookResponse
from zentitle_stripe.events import StripeEvent
from zentitle_stripe.exceptions import (
    ConfigurationError,
    EventInProgress,
    EventNotFound,
    InvalidPayloadError,
    PayloadTooLargeError,
    ProvisioningConfigError,
    SignatureVerificationError,
    StorageError,
    StripeAPIError,
    TransientError,
    ZentitleAPIError,
)
from zentitle_stripe.responses import (
    INTERNAL_ERROR_REASON,
    STORAGE_UNAVAILABLE_REASON,
    classify,
    is_transient,
    retry_after_for,
    status_for,
)
from zentitle_stripe.storage import EventStatus, MemoryStorage
from zentitle_stripe.testing import invoice_paid_event, sign_stripe_payload

FAILED, DUPLICATE = OutcomeKind.FAILED, OutcomeKind.DUPLICATE
MESSAGE = object()  # stands for "the error's own message"
STORAGE = STORAGE_UNAVAILABLE_REASON

# error, status, outcome kind, reason, Retry-After, traceback logged
TABLE: list[tuple[BaseException, int, OutcomeKind, object, float | None, bool]] = [
    (PayloadTooLargeError("too big"), 413, FAILED, MESSAGE, None, False),
    (SignatureVerificationError("bad signature"), 400, FAILED, MESSAGE, None, False),
    (InvalidPayloadError("not JSON"), 400, FAILED, MESSAGE, None, False),
    (EventInProgress("busy elsewhere"), 409, DUPLICATE, MESSAGE, None, False),
    (EventNotFound("no recorded stripe event evt_1"), 404, FAILED, MESSAGE, None, False),
    (TransientError("Zentitle2 timed out"), 503, FAILED, MESSAGE, 30, False),
    (TransientError("busy", retry_after=2.4), 503, FAILED, MESSAGE, 2.4, False),
    (StorageError("storage postgresql://u@db/x?password=pw down"), 503, FAILED, STORAGE, 30, False),
    (
        ZentitleAPIError("429", status=429, transient=True, retry_after=7),
        503,
        FAILED,
        MESSAGE,
        7,
        False,
    ),
    (StripeAPIError("network", transient=True), 503, FAILED, MESSAGE, 30, False),
    (ProvisioningConfigError("unknown SKU PRO"), 422, FAILED, MESSAGE, None, False),
    (ZentitleAPIError("Zentitle2 answered 403", status=403), 422, FAILED, MESSAGE, None, False),
    (StripeAPIError("no such price"), 422, FAILED, MESSAGE, None, False),
    (ConfigurationError("a setting"), 500, FAILED, INTERNAL_ERROR_REASON, None, True),
    (RuntimeError("password=hunter2"), 500, FAILED, INTERNAL_ERROR_REASON, None, True),
]


@pytest.mark.parametrize(("exc", "status", "kind", "reason", "retry_after", "traceback"), TABLE)
def test_each_error_has_one_row(
    exc: BaseException,
    status: int,
    kind: OutcomeKind,
    reason: object,
    retry_after: float | None,
    traceback: bool,
) -> None:
    failure = classify(exc)
    assert failure.status == status == status_for(exc)
    assert failure.kind is kind
    assert failure.reason == (str(exc) if reason is MESSAGE else reason)
    assert failure.retry_after == retry_after
    assert failure.transient is (retry_after is not None) is is_transient(exc)
    assert failure.log_traceback is traceback


@pytest.mark.parametrize("exc", [row[0] for row in TABLE])
def test_status_and_retry_after_never_depend_on_the_stage(exc: BaseException) -> None:
    at_intake, processing = classify(exc), classify(exc, processing=True)
    assert (at_intake.status, at_intake.kind, at_intake.retry_after) == (
        processing.status,
        processing.kind,
        processing.retry_after,
    )


@pytest.mark.parametrize(
    "exc",
    [InvalidPayloadError("the price object has no id"), EventNotFound("gone")],
)
def test_refusal_messages_are_not_sent_for_errors_raised_while_processing(
    exc: BaseException,
) -> None:
    assert classify(exc, processing=True).reason == INTERNAL_ERROR_REASON


@pytest.mark.parametrize(
    "exc",
    [ProvisioningConfigError("unknown SKU"), ZentitleAPIError("Zentitle2 answered 403")],
)
def test_config_error_status_moves_only_set_up_problems(exc: BaseException) -> None:
    assert classify(exc, config_error_status=200).status == 200
    assert status_for(exc, config_error_status=200) == 200
    assert status_for(TransientError("later"), config_error_status=200) == 503
    assert status_for(RuntimeError("bug"), config_error_status=200) == 500


def test_the_response_carries_status_body_and_retry_after() -> None:
    response = classify(TransientError("busy", retry_after=2.4)).response(
        event_id="evt_1", event_type="invoice.paid"
    )
    assert response.status == 503
    assert response.headers["Retry-After"] == "2"
    assert json.loads(response.body) == {
        "event_id": "evt_1",
        "type": "invoice.paid",
        "outcome": "failed",
        "detail": "busy",
    }
    assert "Retry-After" not in classify(ProvisioningConfigError("x")).response().headers


def test_retry_after_for_uses_the_hint_or_thirty_seconds() -> None:
    assert retry_after_for(TransientError("x", retry_after=12)) == 12
    assert retry_after_for(TransientError("x", retry_after=0)) == 30
    assert retry_after_for(RuntimeError("x")) == 30


class Raising:
    """A processor whose every event fails with ``exc``."""

    event_types = frozenset({"invoice.paid"})

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def process(self, event: StripeEvent, *, owner: str) -> Outcome:
        raise self.exc


@pytest.mark.parametrize(
    "exc",
    [
        # An InvalidPayloadError from the processor is about the event's own data: it is
        # answered as a set-up problem (tests/webhooks/test_hostile_input.py).
        TransientError("busy", retry_after=5),
        ProvisioningConfigError("unknown SKU PRO"),
        RuntimeError("password=hunter2"),
    ],
)
def test_the_engine_answers_and_records_failures_by_the_table(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    storage = MemoryStorage()
    provisioner = Provisioner(webhook_secrets=["whsec_t"], storage=storage, processor=Raising(exc))
    expected = classify(exc, processing=True)
    response = provisioner.handle_event(*sign_stripe_payload(invoice_paid_event([]), "whsec_t"))
    assert response.status == expected.status
    assert json.loads(response.body)["detail"] == expected.reason
    assert response.headers.get("Retry-After") == (
        None if expected.retry_after is None else str(round(expected.retry_after))
    )
    record = storage.get_event(response.event_id or "")
    assert record is not None
    assert record.status is EventStatus.FAILED
    assert record.detail == expected.reason
    assert record.last_error == f"{type(exc).__name__}: {exc}"
    tracebacks = [r for r in caplog.records if r.exc_info and "unexpected error" in r.message]
    assert len(tracebacks) == (1 if expected.log_traceback else 0)


@given(
    event_id=st.none() | st.text(),
    event_type=st.none() | st.text(),
    reason=st.text(),
    kind=st.sampled_from(OutcomeKind),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e6),
)
def test_an_answer_body_is_the_json_of_its_four_fields(
    event_id: str | None,
    event_type: str | None,
    reason: str,
    kind: OutcomeKind,
    retry_after: float | None,
) -> None:
    # The body is written by hand (a hot path): it must be what `json.dumps` writes,
    # escapes and quotes included.
    response = WebhookResponse.build(
        200,
        Outcome(kind, reason),
        event_id=event_id,
        event_type=event_type,
        retry_after=retry_after,
    )
    fields = {"event_id": event_id, "type": event_type, "outcome": kind.value, "detail": reason}
    assert response.body == json.dumps(fields, separators=(",", ":")).encode()
    assert json.loads(response.body) == fields
    expected = {"Content-Type": "application/json"}
    if retry_after is not None:
        expected["Retry-After"] = str(max(1, round(retry_after)))
    assert dict(response.headers) == expected
