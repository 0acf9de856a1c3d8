"""Outcome hooks in worker mode (`ZENTITLE_STRIPE_MODE=queue`), on every built-in
backend: the worker runs them after the event is done, retries a failed one after its
backoff in a pass of its own, and picks up what a crashed worker left."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support import make_world
from tests.webhooks.test_hooks import LEASE, Clock, Crash, Recorder, runs, storage
from zentitle_stripe.storage import EventStatus, HookStatus, Storage
from zentitle_stripe.testing import EmulatedWorld
from zentitle_stripe.worker import Worker

__all__ = ["storage"]  # the backend fixture, shared with the sync tests


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queued(storage: Storage, clock: Clock) -> Iterator[EmulatedWorld]:
    world = make_world(
        storage=storage,
        processing="queue",
        clock=clock,
        lease_seconds=LEASE,
        offerings={"PRO-1Y": {"seats": 2}},
    )
    yield world
    world.close()


@pytest.fixture
def recorder(queued: EmulatedWorld) -> Recorder:
    recorder = Recorder()
    on = queued.provisioner.on_outcome
    on("provisioned", name="email")(lambda outcome: recorder("email", outcome))
    on("*", name="audit")(lambda outcome: recorder("audit", outcome))
    return recorder


def test_the_worker_runs_the_hooks_once_after_the_event_is_done(
    queued: EmulatedWorld, recorder: Recorder
) -> None:
    subscription_id, paid = queued.subscribe(queued.customer(), [(queued.price("PRO-1Y"), 1)])
    answer = queued.deliver(paid)
    assert json.loads(answer.body)["outcome"] == "queued"
    assert recorder.calls == []  # nothing at the door
    worker = Worker(queued.provisioner)
    assert worker.run_once() == 1
    assert recorder.names() == ["email", "audit"]
    outcome = recorder.calls[0][1]
    assert (outcome.subscription_id, outcome.skus) == (subscription_id, ("PRO-1Y",))
    assert outcome.entitlements == ()  # one seat: the group was never read again
    assert queued.deliver(paid).status == 200  # a redelivery of the done event
    assert worker.run_once() == 0
    assert len(recorder.calls) == 2


def test_a_failed_hook_is_retried_by_the_worker_after_its_backoff_and_only_it(
    queued: EmulatedWorld, recorder: Recorder, clock: Clock
) -> None:
    recorder.fail["email"] = 2
    _, paid = queued.subscribe(queued.customer(), [(queued.price("PRO-1Y"), 1)])
    queued.deliver(paid)
    worker = Worker(queued.provisioner, max_attempts=2)
    worker.run_once()
    record = queued.storage.get_event(paid["id"])
    assert record is not None
    assert record.status is EventStatus.DONE  # the licence work stays done
    assert runs(queued, paid["id"]) == {
        "email": (HookStatus.FAILED, 1),
        "audit": (HookStatus.DONE, 1),
    }
    worker.run_once()  # the backoff (30 s) has not passed
    assert recorder.names() == ["email", "audit"]
    clock.offset += 31
    worker.run_once()
    assert recorder.names() == ["email", "audit", "email"]  # failed again (2 of 2)
    clock.offset += 3600
    worker.run_once()  # out of attempts: left for a replay
    assert len(recorder.calls) == 3
    assert queued.provisioner.replay(paid["id"]).status == 200
    assert recorder.names() == ["email", "audit", "email", "email"]
    assert runs(queued, paid["id"])["email"] == (HookStatus.DONE, 3)


def test_a_worker_that_crashed_in_a_hook_leaves_it_to_the_next_one(
    queued: EmulatedWorld, recorder: Recorder, clock: Clock
) -> None:
    recorder.crash.add("email")
    _, paid = queued.subscribe(queued.customer(), [(queued.price("PRO-1Y"), 1)])
    queued.deliver(paid)
    with pytest.raises(Crash):
        Worker(queued.provisioner).run_once()
    assert runs(queued, paid["id"]) == {
        "email": (HookStatus.RUNNING, 1),
        "audit": (HookStatus.PENDING, 0),
    }
    successor = Worker(queued.provisioner)
    assert successor.run_once() == 0  # the event is done: not taken again
    assert recorder.names() == ["email"]  # both wait out the crashed worker's lease
    clock.pass_lease()
    successor.run_once()
    assert sorted(recorder.names()) == ["audit", "email", "email"]
    assert runs(queued, paid["id"]) == {
        "email": (HookStatus.DONE, 2),
        "audit": (HookStatus.DONE, 1),
    }
