"""Worker mode end to end on every built-in backend: queued at the door, drained once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import make_world
from zentitle_stripe import OutcomeKind
from zentitle_stripe.provisioner import process_queued
from zentitle_stripe.storage import EventStatus, MemoryStorage, QueueStorage, Storage
from zentitle_stripe.storage.sqlite import SQLiteStorage
from zentitle_stripe.testing import EmulatedWorld
from zentitle_stripe.worker import ZENTITLE_THROTTLE, Worker

pytestmark = pytest.mark.world(offerings={"PRO-1Y": {"seats": 2}})


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "memory":
        yield MemoryStorage()
    elif request.param == "sqlite":
        yield SQLiteStorage(str(tmp_path / "queue.db"))
    else:
        from tests.support.postgres import find_server, fresh_schema

        pytest.importorskip("psycopg")
        with fresh_schema(find_server()) as url:
            from zentitle_stripe.storage.postgres import PostgresStorage

            backend = PostgresStorage(url)
            yield backend
            backend.close()


@pytest.fixture
def queued_world(storage: Storage) -> Iterator[EmulatedWorld]:
    world = make_world(storage=storage, processing="queue", offerings={"PRO-1Y": {"seats": 2}})
    yield world
    world.close()


def renews(world: EmulatedWorld) -> int:
    return sum(r.path.endswith("/renew") for r in world.zentitle_emulator.requests)


def test_queue_mode_answers_at_once_and_the_worker_drains_exactly_once(
    queued_world: EmulatedWorld,
) -> None:
    world = queued_world
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    before = len(world.zentitle_emulator.requests)
    answer = world.deliver(paid)
    assert answer.status == 200
    assert json.loads(answer.body)["outcome"] == "queued"
    assert len(world.zentitle_emulator.requests) == before  # no remote work at the door
    again = world.deliver(paid)  # a redelivery adds nothing to the queue
    assert again.status == 200
    assert again.outcome.kind is OutcomeKind.QUEUED
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert record.status is EventStatus.QUEUED

    worker = Worker(world.provisioner)
    assert worker.run_once() == 1
    assert worker.run_once() == 0
    assert len(world.groups(subscription_id)) == 1
    done = world.storage.get_event(paid["id"])
    assert done is not None
    assert done.status is EventStatus.DONE
    assert done.attempts == 1
    renewal = world.renew(subscription_id)
    world.deliver(renewal)
    world.deliver(renewal)
    assert worker.run_once() == 1
    assert renews(world) == 1
    assert world.deliver(renewal).outcome.kind is OutcomeKind.DUPLICATE


def test_a_transient_failure_is_queued_again_with_backoff(queued_world: EmulatedWorld) -> None:
    world = queued_world
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    world.deliver(paid)
    world.zentitle_emulator.inject_fault("POST", r".*", "503", times=100)
    now = world.provisioner.clock()
    worker = Worker(world.provisioner, backoff=60.0)
    assert worker.run_once() == 1
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert record.status is EventStatus.QUEUED
    assert (record.lease_expires or 0.0) >= now + 60.0  # not due again at once
    assert record.history
    assert record.history[-1].status == "failed"
    assert worker.run_once() == 0
    world.zentitle_emulator.clear_faults()
    assert isinstance(world.storage, QueueStorage)
    later = Worker(world.provisioner, clock=lambda: now + 3600)
    assert later.run_once() == 1
    assert len(world.groups(subscription_id)) == 1


def test_a_worker_slower_than_its_lease_loses_the_event_to_another(
    queued_world: EmulatedWorld,
) -> None:
    world = queued_world
    storage = world.storage
    assert isinstance(storage, QueueStorage)
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    world.deliver(paid)
    now = world.provisioner.clock()
    slow = storage.claim_queued(owner="slow", lease_seconds=1.0, now=now)
    assert slow is not None
    assert storage.claim_queued(owner="other", lease_seconds=60, now=now) is None
    # The slow worker stalls past its lease; another takes the event over and does it.
    later = now + world.provisioner.lease_seconds + 5
    assert Worker(world.provisioner, clock=lambda: later).run_once() == 1
    assert len(world.groups(subscription_id)) == 1
    # The slow one comes back: its claim is gone, so it records nothing and does no work.
    response, _ = process_queued(world.provisioner, slow, started=0.0)
    assert response.status == 503
    assert len(world.groups(subscription_id)) == 1
    record = storage.get_event(paid["id"])
    assert record is not None
    assert record.status is EventStatus.DONE
    assert next(a.status for a in record.history) == "abandoned"


def test_the_rate_limit_is_shared_and_only_moves_later(storage: Storage) -> None:
    assert isinstance(storage, QueueStorage)
    assert storage.throttled_until(ZENTITLE_THROTTLE) == 0.0
    storage.throttle(ZENTITLE_THROTTLE, until=100.0)
    storage.throttle(ZENTITLE_THROTTLE, until=50.0)
    assert storage.throttled_until(ZENTITLE_THROTTLE) == 100.0


def test_a_worker_waits_for_the_shared_rate_limit(queued_world: EmulatedWorld) -> None:
    world = queued_world
    assert isinstance(world.storage, QueueStorage)
    _, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    world.deliver(paid)
    now = world.provisioner.clock()
    world.storage.throttle(ZENTITLE_THROTTLE, until=now + 7)
    slept: list[float] = []
    worker = Worker(world.provisioner, clock=lambda: now, sleep=slept.append)
    worker.run_once()
    assert slept
    assert 6 < slept[0] <= 7


def test_queue_stats_and_doctor_warn_about_old_queued_events(storage: Storage) -> None:
    from zentitle_stripe.ops.worker import check_queue
    from zentitle_stripe.storage import NewEvent

    assert isinstance(storage, QueueStorage)
    assert check_queue(storage, now=1000.0) is None
    event = NewEvent(event_id="evt_q", source="stripe", type="invoice.paid", payload=b"{}")
    added, _ = storage.enqueue_event(event, now=1000.0)
    assert added
    again, record = storage.enqueue_event(event, now=1001.0)
    assert not again
    assert record.status is EventStatus.QUEUED
    stats = storage.queue_stats(now=1000.0)
    assert (stats.queued, stats.due, stats.oldest_due_received) == (1, 1, 1000.0)
    fresh = check_queue(storage, now=1010.0)
    old = check_queue(storage, now=5000.0)
    assert fresh is not None
    assert fresh.status.value == "PASS"
    assert old is not None
    assert old.status.value == "WARN"


def test_the_mode_is_one_setting_and_sync_stays_the_default() -> None:
    from tests.wiring.test_config import ENV
    from zentitle_stripe.config import Settings
    from zentitle_stripe.exceptions import ConfigurationError

    assert Settings.from_env(ENV).processing == "sync"
    assert Settings.from_env(ENV | {"ZENTITLE_STRIPE_MODE": "queue"}).processing == "queue"
    with pytest.raises(ConfigurationError, match="ZENTITLE_STRIPE_MODE"):
        Settings.from_env(ENV | {"ZENTITLE_STRIPE_MODE": "later"})


def test_events_shows_how_long_a_queued_event_waited(storage: Storage) -> None:
    from zentitle_stripe.ops.events import status_text
    from zentitle_stripe.storage import NewEvent

    assert isinstance(storage, QueueStorage)
    event = NewEvent(event_id="evt_w", source="stripe", type="invoice.paid", payload=b"{}")
    _, record = storage.enqueue_event(event, now=1000.0)
    assert status_text(record, 1120.0).startswith("queued for 2")
    claimed = storage.claim_queued(owner="w", lease_seconds=60, now=1000.0)
    assert claimed is not None
    storage.finish_event(
        "evt_w",
        "stripe",
        owner="w",
        status=EventStatus.FAILED,
        outcome="failed",
        detail="busy",
        error="TransientError",
        now=1001.0,
    )
    assert storage.requeue_event("evt_w", "stripe", not_before=1600.0)
    again = storage.get_event("evt_w")
    assert again is not None
    assert "next attempt in" in status_text(again, 1100.0)
