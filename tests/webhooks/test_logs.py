"""The text log says why: every answered delivery's line carries its outcome and reason,
and a refusal's line what the check saw, never a secret, a signature or the body."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from zentitle_stripe import Outcome, OutcomeKind, Provisioner
from zentitle_stripe.events import StripeEvent
from zentitle_stripe.exceptions import ProvisioningConfigError, StorageError
from zentitle_stripe.storage import MemoryStorage
from zentitle_stripe.testing import ZentitleEmulator, invoice_paid_event, sign_stripe_payload

SECRETS = ["whsec_current_never_logged", "whsec_previous_never_logged"]
NOW = 1_800_000_000
# A value only the body holds: it must never reach the log.
MARKER = "customer-email-never-logged@example.test"


class Processor:
    event_types = frozenset({"invoice.paid"})

    def __init__(self) -> None:
        self.fail: Exception | None = None

    def process(self, event: StripeEvent, *, owner: str) -> Outcome:
        if self.fail is not None:
            raise self.fail
        return Outcome(OutcomeKind.PROVISIONED, f"group egr_1 for {event.id}")


@pytest.fixture
def processor() -> Processor:
    return Processor()


@pytest.fixture
def provisioner(processor: Processor) -> Provisioner:
    return Provisioner(
        webhook_secrets=SECRETS,
        storage=MemoryStorage(),
        processor=processor,
        clock=lambda: float(NOW),
        max_body_bytes=4096,
    )


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="zentitle_stripe")
    return caplog


def paid() -> dict[str, Any]:
    event = invoice_paid_event([], event_id="evt_paid")
    event["data"]["object"]["customer_email"] = MARKER
    return event


def answer_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "outcome" in r.__dict__]


def only_line(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    (line,) = answer_lines(caplog)
    return line


def assert_nothing_leaked(caplog: pytest.LogCaptureFixture, *values: str) -> None:
    for value in (*SECRETS, MARKER, *values):
        assert value not in caplog.text
        for record in caplog.records:
            assert value not in json.dumps(record.__dict__, default=str)


def test_a_wrong_secret_logs_why_on_the_server(
    provisioner: Provisioner, log: pytest.LogCaptureFixture
) -> None:
    body, header = sign_stripe_payload(paid(), "whsec_someone_else", timestamp=NOW - 12)
    response = provisioner.handle_event(body, header)
    assert response.status == 400
    line = only_line(log)
    assert line.levelno == logging.WARNING
    message = line.getMessage()
    assert message.startswith("stripe webhook, not recorded: 400 failed in ")
    assert "signature does not match" in message  # the reason the sender got
    assert "no v1 signature matched any of 2 secrets (1 v1 in the header)" in message
    assert "timestamp age 12 s" in message
    assert f"body {len(body)} bytes" in message
    assert "no v1 signature matched" not in response.body.decode()  # the log's alone
    signature = header.split("v1=")[1]
    assert_nothing_leaked(log, signature, "whsec_someone_else")


def test_an_expired_signature_logs_its_age(
    provisioner: Provisioner, log: pytest.LogCaptureFixture
) -> None:
    response = provisioner.handle_event(
        *sign_stripe_payload(paid(), SECRETS[1], timestamp=NOW - 400)
    )
    assert response.status == 400
    message = only_line(log).getMessage()
    assert "older than the 300 s tolerance" in message
    assert "[timestamp age 400 s, tolerance 300 s]" in message
    assert_nothing_leaked(log)


def test_a_missing_header_logs_the_reason(
    provisioner: Provisioner, log: pytest.LogCaptureFixture
) -> None:
    body, _ = sign_stripe_payload(paid(), SECRETS[0], timestamp=NOW)
    assert provisioner.handle_event(body, None).status == 400
    assert "missing Stripe-Signature header" in only_line(log).getMessage()
    assert_nothing_leaked(log)


def test_a_body_over_the_limit_logs_its_size(
    provisioner: Provisioner, log: pytest.LogCaptureFixture
) -> None:
    event = paid()
    event["data"]["object"]["description"] = "x" * 5000
    response = provisioner.handle_event(*sign_stripe_payload(event, SECRETS[0], timestamp=NOW))
    assert response.status == 413
    line = only_line(log)
    assert line.levelno == logging.WARNING
    message = line.getMessage()
    assert "413 failed" in message
    assert "larger than the 4096 byte limit" in message
    assert "received at least" in message
    assert_nothing_leaked(log)


def test_bad_json_logs_where_it_broke_not_the_body(
    provisioner: Provisioner, log: pytest.LogCaptureFixture
) -> None:
    body = b'{"id": "evt_1", "email": "' + MARKER.encode() + b'" oops}'
    header = sign_stripe_payload(body, SECRETS[0], timestamp=NOW)[1]
    assert provisioner.handle_event(body, header).status == 400
    message = only_line(log).getMessage()
    assert "is not valid JSON (JSONDecodeError)" in message
    assert "[Expecting ',' delimiter at line 1 column " in message
    assert_nothing_leaked(log)


def test_a_done_event_logs_outcome_and_reason(
    provisioner: Provisioner, log: pytest.LogCaptureFixture
) -> None:
    provisioner.handle_event(*sign_stripe_payload(paid(), SECRETS[0], timestamp=NOW))
    provisioner.handle_event(*sign_stripe_payload(paid(), SECRETS[0], timestamp=NOW))
    first, again = answer_lines(log)
    assert first.levelno == again.levelno == logging.INFO
    assert first.getMessage().startswith("stripe event evt_paid (invoice.paid): 200 provisioned")
    assert first.getMessage().endswith(": group egr_1 for evt_paid")
    assert "200 duplicate" in again.getMessage()
    assert "already processed (provisioned: group egr_1 for evt_paid)" in again.getMessage()
    assert_nothing_leaked(log)


def test_a_set_up_problem_logs_its_reason_as_a_warning(
    provisioner: Provisioner, processor: Processor, log: pytest.LogCaptureFixture
) -> None:
    processor.fail = ProvisioningConfigError("Price price_1 has no offering_sku metadata")
    response = provisioner.handle_event(*sign_stripe_payload(paid(), SECRETS[0], timestamp=NOW))
    assert response.status == 422
    line = only_line(log)
    assert line.levelno == logging.WARNING
    assert line.getMessage().endswith(": Price price_1 has no offering_sku metadata")
    assert line.__dict__["detail"] == "Price price_1 has no offering_sku metadata"


def test_a_storage_failure_logs_the_error_types_not_the_database(
    provisioner: Provisioner, processor: Processor, log: pytest.LogCaptureFixture
) -> None:
    try:
        raise ConnectionError("postgresql://app:pw-never-logged@db/app refused")
    except ConnectionError as cause:
        error = StorageError("postgresql://app:pw-never-logged@db/app is down")
        error.__cause__ = cause
    processor.fail = error
    response = provisioner.handle_event(*sign_stripe_payload(paid(), SECRETS[0], timestamp=NOW))
    assert response.status == 503
    line = only_line(log)
    assert line.levelno == logging.WARNING
    assert "storage is unavailable" in line.getMessage()
    assert "[StorageError from ConnectionError]" in line.getMessage()
    assert_nothing_leaked(log, "pw-never-logged")


def test_a_replay_that_cannot_run_is_logged(
    provisioner: Provisioner, log: pytest.LogCaptureFixture
) -> None:
    assert provisioner.replay("evt_never").status == 404
    line = only_line(log)
    assert line.levelno == logging.WARNING
    assert line.getMessage().startswith("stripe event evt_never: 404 failed in ")
    assert line.getMessage().endswith(": no recorded stripe event evt_never")


def test_a_bad_zentitle_signature_logs_what_was_checked(log: pytest.LogCaptureFixture) -> None:
    emulator = ZentitleEmulator()
    provisioner = Provisioner(
        webhook_secrets=SECRETS,
        storage=MemoryStorage(),
        zentitle_webhook_key=emulator.public_key_modulus,
    )
    body = json.dumps({"eventId": "event_1", "eventCode": "x", "email": MARKER}).encode()
    signature = emulator.sign(body + b" ")
    assert provisioner.handle_zentitle_event(body, signature).status == 400
    message = only_line(log).getMessage()
    assert message.startswith("zentitle webhook, not recorded: 400 failed")
    assert "N-Signature does not match the body" in message
    assert "RSA-SHA256 signature did not verify with the configured 2048-bit public key" in message
    assert_nothing_leaked(log, signature)


def test_the_json_log_carries_the_diagnosis_field(
    provisioner: Provisioner, log: pytest.LogCaptureFixture
) -> None:
    from zentitle_stripe.server import JsonLogFormatter

    provisioner.handle_event(*sign_stripe_payload(paid(), "whsec_other", timestamp=NOW))
    entry = json.loads(JsonLogFormatter().format(only_line(log)))
    assert entry["status"] == 400
    assert entry["outcome"] == "failed"
    assert entry["detail"].startswith("signature does not match")
    assert entry["diagnosis"].startswith("no v1 signature matched any of 2 secrets")
