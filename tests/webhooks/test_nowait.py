"""`handle_event_nowait`: what an event loop may answer in place, and that it never
waits (the async servers call it before handing a delivery to the threadpool)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zentitle_stripe import OutcomeKind, Provisioner
from zentitle_stripe.responses import Outcome
from zentitle_stripe.storage import EventStatus, MemoryStorage, NewEvent, SQLiteStorage, Storage
from zentitle_stripe.testing import make_event, one_time_invoice_paid_event, sign_stripe_payload

SECRET = "whsec_nowait"


class _Acting:
    """Acts on `invoice.paid` (so it is claimed, never settled)."""

    event_types = frozenset({"invoice.paid"})

    def __init__(self) -> None:
        self.calls = 0

    def process(self, event: Any, *, owner: str) -> Outcome:
        self.calls += 1
        return Outcome(OutcomeKind.PROVISIONED, "done")


def _unhandled() -> dict[str, Any]:
    return make_event("customer.updated", {"id": "cus_1", "object": "customer"})


def _signed(event: dict[str, Any]) -> tuple[bytes, str]:
    return sign_stripe_payload(event, SECRET)


@pytest.fixture(params=["sqlite", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    found: Storage = (
        SQLiteStorage(str(tmp_path / "zs.db")) if request.param == "sqlite" else MemoryStorage()
    )
    yield found
    found.close()


def test_a_settled_event_is_answered_and_recorded_in_place(storage: Storage) -> None:
    provisioner = Provisioner(webhook_secrets=[SECRET], storage=storage)
    event = _unhandled()
    answer = provisioner.handle_event_nowait(*_signed(event))
    assert answer is not None
    assert (answer.status, answer.outcome.kind) == (200, OutcomeKind.IGNORED)
    record = storage.get_event(event["id"])
    assert record is not None
    assert record.status is EventStatus.DONE
    assert [a.status for a in record.history] == ["done"]
    # A redelivery needs the claim path's read: left to handle_event, which says so.
    assert provisioner.handle_event_nowait(*_signed(event)) is None
    assert provisioner.handle_event(*_signed(event)).outcome.kind is OutcomeKind.DUPLICATE


def test_a_refusal_is_answered_in_place_and_records_nothing(storage: Storage) -> None:
    provisioner = Provisioner(webhook_secrets=[SECRET], storage=storage)
    body, _ = _signed(_unhandled())
    answer = provisioner.handle_event_nowait(body, "t=1,v1=00")
    assert answer is not None
    assert answer.status == 400
    assert storage.list_events() == []


def test_work_to_do_is_left_to_the_thread(storage: Storage) -> None:
    processor = _Acting()
    provisioner = Provisioner(webhook_secrets=[SECRET], storage=storage, processor=processor)
    event = one_time_invoice_paid_event([], event_id=f"evt_{uuid.uuid4().hex}")
    event["data"]["object"]["parent"] = {
        "type": "subscription_details",
        "subscription_details": {"subscription": "sub_1"},
    }
    assert provisioner.handle_event_nowait(*_signed(event)) is None
    assert storage.get_event(event["id"]) is None  # nothing recorded, nothing run
    assert processor.calls == 0


def test_queue_mode_is_left_to_the_thread(storage: Storage) -> None:
    provisioner = Provisioner(webhook_secrets=[SECRET], storage=storage, processing="queue")
    event = _unhandled()
    assert provisioner.handle_event_nowait(*_signed(event)) is None
    assert storage.get_event(event["id"]) is None


def test_a_storage_without_the_method_is_left_to_the_thread() -> None:
    class Plain(MemoryStorage):
        try_record_settled = None  # type: ignore[assignment]

    provisioner = Provisioner(webhook_secrets=[SECRET], storage=Plain())
    event = _unhandled()
    assert provisioner.handle_event_nowait(*_signed(event)) is None
    assert provisioner.storage.get_event(event["id"]) is None


def _new() -> NewEvent:
    return NewEvent(event_id=f"evt_{uuid.uuid4().hex}", source="stripe", type="t", payload=b"{}")


def _try(storage: SQLiteStorage, event: NewEvent) -> bool | None:
    return storage.try_record_settled(event, owner="w1", outcome="ignored", detail="x", now=1.0)


def test_sqlite_hands_on_when_a_writer_of_this_process_keeps_the_lock(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "zs.db"))
    try:
        event = _new()
        with storage._writer:  # another thread's write under way
            started = time.monotonic()
            assert _try(storage, event) is None
            assert time.monotonic() - started < 0.5
        assert storage.get_event(event.event_id) is None
        assert _try(storage, event) is True
        assert _try(storage, event) is False  # known already
    finally:
        storage.close()


def test_sqlite_waits_a_moment_for_a_writer_of_this_process_about_to_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the short wait, one delivery in a thread (holding the lock until it has
    the GIL back) sends the next ones to threads too, which snowballs."""
    from zentitle_stripe.storage import sqlite

    assert sqlite._LOOP_WAIT <= 0.005  # a moment, never a disk sync
    monkeypatch.setattr(sqlite, "_LOOP_WAIT", 5.0)  # a loaded test machine is slow
    storage = SQLiteStorage(str(tmp_path / "zs.db"))
    try:
        storage._writer.acquire()
        threading.Timer(0.01, storage._writer.release).start()
        assert _try(storage, _new()) is True
    finally:
        storage.close()


def test_sqlite_never_waits_for_another_process_write_lock(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "zs.db"), busy_timeout=5.0)
    other = sqlite3.connect(tmp_path / "zs.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # what a worker process's transaction holds
        event = _new()
        started = time.monotonic()
        assert _try(storage, event) is None
        assert time.monotonic() - started < 1.0  # not the 5 s busy timeout
        other.execute("COMMIT")
        assert storage.get_event(event.event_id) is None
        assert _try(storage, event) is True
    finally:
        other.close()
        storage.close()


def test_sqlite_leaves_a_due_checkpoint_to_a_thread(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "zs.db"))
    try:
        storage._checkpointer.max_commits = 1
        assert _try(storage, _new()) is True  # the first write: none due yet
        event = _new()
        assert _try(storage, event) is None  # due: a checkpoint may wait on the disk
        assert storage.record_settled(event, owner="w1", outcome="ignored", detail="x", now=1.0)
    finally:
        storage.close()


def test_the_server_loop_answers_while_a_delivery_waits_for_the_database(
    tmp_path: Path,
) -> None:
    """A delivery that must wait (another process holds the write lock) goes to the
    threadpool: the loop goes on answering, and the delivery completes once it can."""
    pytest.importorskip("starlette")
    import httpx

    from zentitle_stripe.server import create_app

    storage = SQLiteStorage(str(tmp_path / "zs.db"), busy_timeout=10.0)
    provisioner = Provisioner(webhook_secrets=[SECRET], storage=storage)
    app = create_app(provisioner)
    other = sqlite3.connect(tmp_path / "zs.db", isolation_level=None, check_same_thread=False)
    event = _unhandled()
    body, signature = _signed(event)

    async def scenario() -> tuple[int, float, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            other.execute("BEGIN IMMEDIATE")
            headers = {"Stripe-Signature": signature}
            webhook = asyncio.create_task(
                client.post("/stripe/webhook", content=body, headers=headers)
            )
            await asyncio.sleep(0.3)
            started = time.monotonic()
            health = await client.get("/healthz")
            health_took = time.monotonic() - started
            assert not webhook.done()
            threading.Timer(0.2, lambda: other.execute("COMMIT")).start()
            answer = await webhook
            return health.status_code, health_took, answer.status_code

    try:
        health, took, status = asyncio.run(scenario())
        assert (health, status) == (200, 200)
        assert took < 0.25
        record = storage.get_event(event["id"])
        assert record is not None
        assert record.status is EventStatus.DONE
    finally:
        other.close()
        provisioner.close()


def test_telemetry_spans_an_answer_on_the_loop_like_any_other(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from zentitle_stripe import telemetry

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry.enable(tracer_provider=provider)
    storage = SQLiteStorage(str(tmp_path / "zs.db"))
    try:
        provisioner = Provisioner(webhook_secrets=[SECRET], storage=storage)
        event = _unhandled()
        assert provisioner.handle_event_nowait(*_signed(event)) is not None
        (span,) = spans.get_finished_spans()
        assert span.name == "stripe customer.updated"
        assert span.attributes is not None
        assert span.attributes["zentitle_stripe.outcome"] == "ignored"
        spans.clear()
        assert provisioner.handle_event_nowait(*_signed(event)) is None  # handed on
        (span,) = spans.get_finished_spans()
        assert span.name == "stripe webhook on the event loop"
        assert span.attributes is not None
        assert "zentitle_stripe.outcome" not in span.attributes
    finally:
        telemetry.reset()
        storage.close()
