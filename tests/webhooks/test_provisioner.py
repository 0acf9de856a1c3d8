"""``Provisioner.handle_event``: every status the core can answer, and what it records."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from zentitle_stripe import Outcome, OutcomeKind, Provisioner, WebhookResponse
from zentitle_stripe.events import StripeEvent
from zentitle_stripe.exceptions import (
    ConfigurationError,
    ProvisioningConfigError,
    StorageError,
    TransientError,
    ZentitleAPIError,
)
from zentitle_stripe.storage import EventStatus, MemoryStorage
from zentitle_stripe.testing import (
    LineSpec,
    invoice_paid_event,
    sign_stripe_payload,
    subscription_deleted_event,
)

SECRET = "whsec_provisioner_test"
NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class ScriptedProcessor:
    """Acts on invoice.paid and subscription deletions by running a scripted step."""

    event_types = frozenset({"invoice.paid", "customer.subscription.deleted"})

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.step: Callable[[StripeEvent], Outcome] = lambda event: Outcome(
            OutcomeKind.PROVISIONED, f"licences for {event.id}"
        )

    def process(self, event: StripeEvent, *, owner: str) -> Outcome:
        self.seen.append(event.id)
        return self.step(event)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def processor() -> ScriptedProcessor:
    return ScriptedProcessor()


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def provisioner(storage: MemoryStorage, processor: ScriptedProcessor, clock: Clock) -> Provisioner:
    return Provisioner(webhook_secrets=[SECRET], storage=storage, processor=processor, clock=clock)


def signed(event: dict[str, Any], *, secret: str = SECRET, at: float = NOW) -> tuple[bytes, str]:
    return sign_stripe_payload(event, secret, timestamp=int(at))


def paid(event_id: str = "evt_paid") -> dict[str, Any]:
    return invoice_paid_event([LineSpec("price_1", "SKU")], event_id=event_id)


def body_of(response: WebhookResponse) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.body)
    return data


def test_processed_event_answers_200_with_a_neutral_json_body(
    provisioner: Provisioner, storage: MemoryStorage
) -> None:
    response = provisioner.handle_event(*signed(paid()))
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert body_of(response) == {
        "event_id": "evt_paid",
        "type": "invoice.paid",
        "outcome": "provisioned",
        "detail": "licences for evt_paid",
    }
    assert response.outcome == Outcome(OutcomeKind.PROVISIONED, "licences for evt_paid")
    record = storage.get_event("evt_paid")
    assert record is not None
    assert record.status is EventStatus.DONE
    assert record.api_version == "2026-10-28.endive"
    assert record.outcome == "provisioned"


def test_str_payload_is_accepted(provisioner: Provisioner) -> None:
    body, header = signed(paid())
    assert provisioner.handle_event(body.decode(), header).status == 200


def test_duplicate_is_acknowledged_without_side_effects(
    provisioner: Provisioner, processor: ScriptedProcessor
) -> None:
    body, header = signed(paid())
    provisioner.handle_event(body, header)
    again = provisioner.handle_event(body, header)
    assert again.status == 200
    assert again.outcome.kind is OutcomeKind.DUPLICATE
    assert "provisioned" in again.outcome.reason
    assert processor.seen == ["evt_paid"]


def test_redelivery_with_a_fresh_signature_is_still_a_duplicate(
    provisioner: Provisioner, processor: ScriptedProcessor, clock: Clock
) -> None:
    event = paid()
    provisioner.handle_event(*signed(event))
    clock.now += 3600
    assert provisioner.handle_event(*signed(event, at=clock.now)).outcome.kind is (
        OutcomeKind.DUPLICATE
    )
    assert processor.seen == ["evt_paid"]


def test_rotated_secrets_are_all_accepted(storage: MemoryStorage, clock: Clock) -> None:
    provisioner = Provisioner(
        webhook_secrets=["whsec_new", "whsec_old"], storage=storage, clock=clock
    )
    assert provisioner.handle_event(*signed(paid("evt_a"), secret="whsec_old")).status == 200
    assert provisioner.handle_event(*signed(paid("evt_b"), secret="whsec_new")).status == 200


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: (signed(paid())[0], None), "missing Stripe-Signature"),
        (lambda: (signed(paid())[0], signed(paid(), secret="whsec_wrong")[1]), "does not match"),
        (lambda: (signed(paid())[0] + b" ", signed(paid())[1]), "does not match"),
        (lambda: signed(paid(), at=NOW - 301), "older than the 300 s tolerance"),
        (lambda: sign_stripe_payload(b"not json", SECRET, timestamp=int(NOW)), "not valid JSON"),
        (lambda: signed({"hello": "world"}), "not a Stripe event"),
    ],
)
def test_rejected_requests_answer_400_and_record_nothing(
    provisioner: Provisioner,
    storage: MemoryStorage,
    processor: ScriptedProcessor,
    make: Callable[[], tuple[bytes, str | None]],
    reason: str,
) -> None:
    response = provisioner.handle_event(*make())
    assert response.status == 400
    assert reason in body_of(response)["detail"]
    assert body_of(response)["outcome"] == "failed"
    assert storage.list_events() == []
    assert processor.seen == []


def test_oversized_body_answers_413_before_verification(
    storage: MemoryStorage, clock: Clock
) -> None:
    provisioner = Provisioner(
        webhook_secrets=[SECRET], storage=storage, max_body_bytes=100, clock=clock
    )
    response = provisioner.handle_event(b"x" * 101, "t=1,v1=00")
    assert response.status == 413
    assert "larger than the 100 byte limit" in body_of(response)["detail"]
    assert storage.list_events() == []


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            invoice_paid_event([LineSpec("p")], event_id="evt_x") | {"type": "charge.succeeded"},
            "not one this endpoint acts on",
        ),
        (
            {
                "id": "evt_thin",
                "object": "v2.core.event",
                "type": "v1.invoice.paid",
                "created": "2026-11-01T00:00:00Z",
            },
            "thin event",
        ),
    ],
)
def test_other_events_are_acknowledged_as_ignored_and_recorded(
    provisioner: Provisioner,
    storage: MemoryStorage,
    processor: ScriptedProcessor,
    event: dict[str, Any],
    reason: str,
) -> None:
    response = provisioner.handle_event(*signed(event))
    assert response.status == 200
    assert response.outcome.kind is OutcomeKind.IGNORED
    assert reason in response.outcome.reason
    assert processor.seen == []
    record = storage.get_event(event["id"])
    assert record is not None
    assert record.status is EventStatus.DONE


def test_without_a_processor_every_event_is_ignored(storage: MemoryStorage, clock: Clock) -> None:
    provisioner = Provisioner(webhook_secrets=[SECRET], storage=storage, clock=clock)
    assert provisioner.handle_event(*signed(paid())).outcome.kind is OutcomeKind.IGNORED


def _raise(exc: Exception) -> Callable[[StripeEvent], Outcome]:
    def step(event: StripeEvent) -> Outcome:
        raise exc

    return step


def test_configuration_problem_is_422_recorded_and_replayable(
    provisioner: Provisioner, processor: ScriptedProcessor, storage: MemoryStorage
) -> None:
    processor.step = _raise(ProvisioningConfigError("unknown offering SKU 'PRO'"))
    body, header = signed(paid())
    response = provisioner.handle_event(body, header)
    assert response.status == 422
    assert body_of(response)["detail"] == "unknown offering SKU 'PRO'"
    record = storage.get_event("evt_paid")
    assert record is not None
    assert record.status is EventStatus.FAILED
    assert record.last_error == "ProvisioningConfigError: unknown offering SKU 'PRO'"

    processor.step = lambda event: Outcome(OutcomeKind.PROVISIONED, "fixed")
    replayed = provisioner.replay("evt_paid")
    assert replayed.status == 200
    assert replayed.outcome.kind is OutcomeKind.PROVISIONED
    record = storage.get_event("evt_paid")
    assert record is not None
    assert record.status is EventStatus.DONE
    assert record.attempts == 2


def test_configuration_problem_can_answer_200_to_keep_the_endpoint_alive(
    storage: MemoryStorage, processor: ScriptedProcessor, clock: Clock
) -> None:
    provisioner = Provisioner(
        webhook_secrets=[SECRET],
        storage=storage,
        processor=processor,
        config_error_status=200,
        clock=clock,
    )
    processor.step = _raise(ProvisioningConfigError("unknown offering SKU 'PRO'"))
    body, header = signed(paid())
    response = provisioner.handle_event(body, header)
    assert response.status == 200
    assert response.outcome.kind is OutcomeKind.FAILED
    record = storage.get_event("evt_paid")
    assert record is not None
    assert record.status is EventStatus.FAILED
    # Stripe will not retry a 200, but a redelivery (or replay) still processes it.
    processor.step = lambda event: Outcome(OutcomeKind.PROVISIONED, "fixed")
    assert provisioner.handle_event(body, header).outcome.kind is OutcomeKind.PROVISIONED


@pytest.mark.parametrize(
    ("exc", "retry_after"),
    [
        (TransientError("Zentitle2 timed out"), "30"),
        (TransientError("busy", retry_after=2.4), "2"),
        (ZentitleAPIError("rate limited", status=429, transient=True, retry_after=7), "7"),
        (StorageError("database is locked"), "30"),
    ],
)
def test_transient_failures_answer_503_and_a_retry_finishes(
    provisioner: Provisioner,
    processor: ScriptedProcessor,
    storage: MemoryStorage,
    exc: Exception,
    retry_after: str,
) -> None:
    processor.step = _raise(exc)
    body, header = signed(paid())
    response = provisioner.handle_event(body, header)
    assert response.status == 503
    assert response.headers["Retry-After"] == retry_after
    record = storage.get_event("evt_paid")
    assert record is not None
    assert record.status is EventStatus.FAILED

    processor.step = lambda event: Outcome(OutcomeKind.PROVISIONED, "ok")
    assert provisioner.handle_event(body, header).status == 200
    record = storage.get_event("evt_paid")
    assert record is not None
    assert record.attempts == 2
    assert record.status is EventStatus.DONE


def test_permanent_remote_error_is_a_configuration_problem(
    provisioner: Provisioner, processor: ScriptedProcessor
) -> None:
    processor.step = _raise(ZentitleAPIError("Zentitle2 answered 403", status=403))
    assert provisioner.handle_event(*signed(paid())).status == 422


def test_unexpected_error_is_500_without_internals(
    provisioner: Provisioner,
    processor: ScriptedProcessor,
    storage: MemoryStorage,
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor.step = _raise(RuntimeError("db password=hunter2 at line 12"))
    response = provisioner.handle_event(*signed(paid()))
    assert response.status == 500
    assert b"hunter2" not in response.body
    assert b"Traceback" not in response.body
    assert "can be replayed" in body_of(response)["detail"]
    record = storage.get_event("evt_paid")
    assert record is not None
    assert record.status is EventStatus.FAILED
    assert record.last_error == "RuntimeError: db password=hunter2 at line 12"
    assert "unexpected error processing stripe event evt_paid" in caplog.text


def test_same_event_in_progress_elsewhere_answers_409(
    provisioner: Provisioner, processor: ScriptedProcessor
) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(event: StripeEvent) -> Outcome:
        entered.set()
        release.wait(5)
        return Outcome(OutcomeKind.PROVISIONED, "slow")

    processor.step = slow
    body, header = signed(paid())
    first: list[WebhookResponse] = []
    worker = threading.Thread(target=lambda: first.append(provisioner.handle_event(body, header)))
    worker.start()
    assert entered.wait(5)
    second = provisioner.handle_event(body, header)
    release.set()
    worker.join(5)
    assert second.status == 409
    assert second.outcome.kind is OutcomeKind.DUPLICATE
    assert first[0].status == 200
    assert processor.seen == ["evt_paid"]


class Crash(BaseException):
    """Stands for the process dying half way (not an Exception: nothing catches it)."""


def test_crashed_worker_leaves_a_claim_that_a_redelivery_takes_over_after_the_lease(
    provisioner: Provisioner, processor: ScriptedProcessor, storage: MemoryStorage, clock: Clock
) -> None:
    processor.step = _raise_base(Crash())
    body, header = signed(paid())
    with pytest.raises(Crash):
        provisioner.handle_event(body, header)
    record = storage.get_event("evt_paid")
    assert record is not None
    assert record.status is EventStatus.PROCESSING

    processor.step = lambda event: Outcome(OutcomeKind.PROVISIONED, "second try")
    assert provisioner.handle_event(body, header).status == 409  # lease still running
    clock.now += provisioner.lease_seconds + 1
    response = provisioner.handle_event(*signed(paid(), at=clock.now))
    assert response.status == 200
    record = storage.get_event("evt_paid")
    assert record is not None
    assert record.attempts == 2


def _raise_base(exc: BaseException) -> Callable[[StripeEvent], Outcome]:
    def step(event: StripeEvent) -> Outcome:
        raise exc

    return step


class BrokenStorage(MemoryStorage):
    def claim_event(self, *args: Any, **kwargs: Any) -> Any:
        raise StorageError("SQLite storage 'x.db' could not claim an event: disk I/O error")


def test_storage_outage_answers_503(processor: ScriptedProcessor, clock: Clock) -> None:
    provisioner = Provisioner(
        webhook_secrets=[SECRET], storage=BrokenStorage(), processor=processor, clock=clock
    )
    response = provisioner.handle_event(*signed(paid()))
    assert response.status == 503
    assert "Retry-After" in response.headers
    assert processor.seen == []
    assert "x.db" not in response.body.decode()  # the database is not the sender's business
    assert "storage is unavailable" in body_of(response)["detail"]


def test_replay_of_an_unknown_event_is_404(provisioner: Provisioner) -> None:
    response = provisioner.replay("evt_never")
    assert response.status == 404
    assert "no recorded stripe event evt_never" in body_of(response)["detail"]


def test_replay_runs_a_finished_event_again(
    provisioner: Provisioner, processor: ScriptedProcessor
) -> None:
    provisioner.handle_event(*signed(paid()))
    assert provisioner.replay("evt_paid").status == 200
    assert processor.seen == ["evt_paid", "evt_paid"]


def test_log_lines_name_the_event_and_never_the_secret(
    provisioner: Provisioner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zentitle_stripe")
    provisioner.handle_event(*signed(subscription_deleted_event([], event_id="evt_del")))
    provisioner.handle_event(*signed(paid(), secret="whsec_wrong"))
    messages = [r.getMessage() for r in caplog.records]
    assert any("evt_del" in m and "provisioned" in m for m in messages)
    assert any("400 failed" in m for m in messages)
    assert SECRET not in caplog.text
    record = next(r for r in caplog.records if "evt_del" in r.getMessage())
    assert record.__dict__["event_type"] == "customer.subscription.deleted"
    assert record.__dict__["duration_ms"] >= 0


def test_repr_shows_no_secret(provisioner: Provisioner) -> None:
    assert SECRET not in repr(provisioner)


def test_no_secret_is_a_configuration_error(storage: MemoryStorage) -> None:
    with pytest.raises(ConfigurationError, match="STRIPE_WEBHOOK_SECRET"):
        Provisioner(webhook_secrets=[], storage=storage)


def test_from_env_wires_clients_flows_and_storage(tmp_path: Any) -> None:
    from zentitle_stripe.flows import Provisioning
    from zentitle_stripe.storage.sqlite import SQLiteStorage

    provisioner = Provisioner.from_env(
        {
            "STRIPE_API_KEY": "sk_test_fromenv",
            "STRIPE_WEBHOOK_SECRET": "whsec_fromenv",
            "ZENTITLE_API_URL": "https://acme.api.nalpeiron.io",
            "ZENTITLE_TOKEN_URL": "https://acme.keycloak.example/realms/acme/protocol/openid-connect/token",
            "ZENTITLE_TENANT_ID": "t_acme",
            "ZENTITLE_CLIENT_ID": "client",
            "ZENTITLE_CLIENT_SECRET": "zentitle-secret-value",
            "ZENTITLE_STRIPE_STORAGE": f"sqlite:///{tmp_path}/licences.db",
            "ZENTITLE_STRIPE_SEAT_POLICY": "offering",
        }
    )
    assert isinstance(provisioner.storage, SQLiteStorage)
    assert isinstance(provisioner.processor, Provisioning)
    assert provisioner.processor.seat_policy == "offering"
    assert provisioner.settings is not None
    text = repr(provisioner) + repr(provisioner.settings) + repr(provisioner.zentitle)
    text += repr(provisioner.stripe)
    for secret in ("sk_test_fromenv", "whsec_fromenv", "zentitle-secret-value"):
        assert secret not in text
    provisioner.storage.close()
