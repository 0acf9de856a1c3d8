"""Outcome hooks (`Provisioner.on_outcome`) end to end, on every built-in backend:
called once per outcome after the event is done, with what the flow saw; a failed or
interrupted hook runs again on a redelivery or a replay, and only it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support import make_world
from zentitle_stripe import OutcomeKind
from zentitle_stripe.exceptions import ConfigurationError
from zentitle_stripe.hooks import LICENCE_KINDS, LicenceOutcome, LicensedEntitlement, handler_name
from zentitle_stripe.storage import EventStatus, HookStatus, MemoryStorage, Storage
from zentitle_stripe.storage.sqlite import SQLiteStorage
from zentitle_stripe.testing import EmulatedWorld

LEASE = 60.0


class Clock:
    """Real time plus an offset: signatures stay valid, leases can be made to expire."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def pass_lease(self) -> None:
        self.offset += LEASE + 1


class Crash(BaseException):
    """The process dying at this point (not an `Exception`: nothing catches it)."""


class Recorder:
    """Hooks that record their calls and fail (or crash) on demand."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, LicenceOutcome]] = []
        self.fail: dict[str, int] = {}
        self.crash: set[str] = set()

    def __call__(self, name: str, outcome: LicenceOutcome) -> None:
        self.calls.append((name, outcome))
        if name in self.crash:
            self.crash.discard(name)
            raise Crash
        if self.fail.get(name, 0) > 0:
            self.fail[name] -= 1
            raise RuntimeError(f"{name} is down")

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "memory":
        yield MemoryStorage()
    elif request.param == "sqlite":
        yield SQLiteStorage(str(tmp_path / "hooks.db"))
    else:
        from tests.support.postgres import find_server, fresh_schema

        pytest.importorskip("psycopg")
        with fresh_schema(find_server()) as url:
            from zentitle_stripe.storage.postgres import PostgresStorage

            backend = PostgresStorage(url)
            yield backend
            backend.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(storage: Storage, clock: Clock) -> Iterator[EmulatedWorld]:
    world = make_world(
        storage=storage, clock=clock, lease_seconds=LEASE, offerings={"PRO-1Y": {"seats": 2}}
    )
    yield world
    world.close()


@pytest.fixture
def recorder(world: EmulatedWorld) -> Recorder:
    """Three hooks: `email` on first payments, `crm` on first payments and renewals,
    `audit` on every licence outcome."""
    recorder = Recorder()
    on = world.provisioner.on_outcome
    on("provisioned", name="email")(lambda outcome: recorder("email", outcome))
    on("provisioned", OutcomeKind.RENEWED, name="crm")(lambda outcome: recorder("crm", outcome))
    on("*", name="audit")(lambda outcome: recorder("audit", outcome))
    return recorder


def body(answer: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(answer.body)
    return data


def runs(world: EmulatedWorld, event_id: str) -> dict[str, tuple[HookStatus, int]]:
    stored = world.storage.get_outcome(event_id)  # type: ignore[attr-defined]
    assert stored is not None
    return {run.handler: (run.status, run.attempts) for run in stored.runs}


def test_each_outcome_calls_its_hooks_once_with_what_the_flow_saw(
    world: EmulatedWorld, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zentitle_stripe.hooks")
    customer = world.customer()
    subscription_id, paid = world.subscribe(customer, [(world.price("PRO-1Y"), 3)])
    answer = world.deliver(paid)
    assert (answer.status, body(answer)["outcome"]) == (200, "provisioned")
    assert recorder.names() == ["email", "crm", "audit"]
    outcome = recorder.calls[0][1]
    (entitlement,) = world.entitlements(subscription_id)
    (group,) = world.groups(subscription_id)
    assert outcome == LicenceOutcome(
        event_id=paid["id"],
        event_type="invoice.paid",
        kind=OutcomeKind.PROVISIONED,
        message=body(answer)["detail"],
        subscription_id=subscription_id,
        stripe_customer_id=customer,
        zentitle_customer_id=group.customer_id,
        group_id=group.id,
        entitlements=(LicensedEntitlement(entitlement.id, "PRO-1Y"),),  # read for seats
        skus=("PRO-1Y",),
        activation_codes=tuple(group.activation_codes),
        event_created=paid["created"],
    )
    assert outcome.skus == ("PRO-1Y",)
    assert outcome.entitlement_ids == (entitlement.id,)
    assert ",".join(outcome.activation_codes) == world.activation_codes(subscription_id)
    assert {call[1] for call in recorder.calls} == {outcome}  # one object for every hook
    assert runs(world, paid["id"]) == {
        "email": (HookStatus.DONE, 1),
        "crm": (HookStatus.DONE, 1),
        "audit": (HookStatus.DONE, 1),
    }
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert (record.status, record.outcome) == (EventStatus.DONE, "provisioned")

    ran = [r.getMessage() for r in caplog.records if r.name == "zentitle_stripe.hooks"]
    assert [line.split(" ran for ")[0] for line in ran] == [
        "outcome hook email",
        "outcome hook crm",
        "outcome hook audit",
    ]
    assert f"stripe event {paid['id']} (provisioned)" in ran[0]
    again = world.deliver(paid)  # a duplicate calls nothing
    assert (again.status, body(again)["outcome"]) == (200, "duplicate")
    assert len(recorder.calls) == 3

    renewal = world.renew(subscription_id)
    world.deliver(renewal)
    world.deliver(renewal)
    assert recorder.names()[3:] == ["crm", "audit"]
    assert recorder.calls[3][1].kind is OutcomeKind.RENEWED
    assert recorder.calls[3][1].group_id == group.id

    cancel = world.cancel(subscription_id)
    world.deliver(cancel)
    assert recorder.names()[5:] == ["audit"]
    revoked = recorder.calls[5][1]
    assert (revoked.kind, revoked.event_type) == (OutcomeKind.REVOKED, cancel["type"])
    assert (revoked.subscription_id, revoked.group_id) == (subscription_id, group.id)
    assert revoked.stripe_customer_id == customer


def test_a_failing_hook_leaves_the_event_done_and_only_it_runs_again(
    world: EmulatedWorld, recorder: Recorder
) -> None:
    recorder.fail["crm"] = 1
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    answer = world.deliver(paid)
    assert answer.status == 500  # so Stripe redelivers
    assert body(answer)["outcome"] == "provisioned"
    assert "outcome hook(s) failed: crm" in body(answer)["detail"]
    assert "is down" not in body(answer)["detail"]  # the error is for the log only
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert (record.status, record.outcome) == (EventStatus.DONE, "provisioned")
    assert recorder.names() == ["email", "crm", "audit"]  # the others still ran
    stored = world.storage.get_outcome(paid["id"])  # type: ignore[attr-defined]
    failed = next(run for run in stored.runs if run.handler == "crm")
    assert (failed.status, failed.error) == (HookStatus.FAILED, "RuntimeError: crm is down")

    remote = len(world.zentitle_emulator.requests)
    redelivered = world.deliver(paid)
    assert redelivered.status == 200
    assert body(redelivered)["outcome"] == "duplicate"
    assert recorder.names() == ["email", "crm", "audit", "crm"]  # only the failed one
    assert len(world.zentitle_emulator.requests) == remote  # and no licence work
    assert runs(world, paid["id"])["crm"] == (HookStatus.DONE, 2)
    assert runs(world, paid["id"])["email"] == (HookStatus.DONE, 1)

    world.deliver(paid)  # everything done: a plain duplicate
    assert len(recorder.calls) == 4
    assert len(world.groups(subscription_id)) == 1


def test_a_crash_between_hooks_runs_the_rest_on_the_next_delivery(
    world: EmulatedWorld, recorder: Recorder, clock: Clock
) -> None:
    recorder.crash.add("crm")
    _, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    with pytest.raises(Crash):
        world.deliver(paid)
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert record.status is EventStatus.DONE  # recorded before any hook ran
    assert runs(world, paid["id"]) == {
        "email": (HookStatus.DONE, 1),
        "crm": (HookStatus.RUNNING, 1),  # its process died in it
        "audit": (HookStatus.PENDING, 0),  # never reached
    }
    soon = world.deliver(paid)  # within crm's lease: audit runs, crm may still be running
    assert soon.status == 409
    assert recorder.names() == ["email", "crm", "audit"]
    clock.pass_lease()
    later = world.deliver(paid)
    assert later.status == 200
    assert recorder.names() == ["email", "crm", "audit", "crm"]
    assert runs(world, paid["id"]) == {
        "email": (HookStatus.DONE, 1),
        "crm": (HookStatus.DONE, 2),
        "audit": (HookStatus.DONE, 1),
    }


def test_a_crash_after_the_work_before_the_event_is_done_still_runs_the_hooks(
    world: EmulatedWorld, recorder: Recorder, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    finish = world.storage.finish_event

    def crash(*args: Any, **kwargs: Any) -> bool:
        monkeypatch.setattr(world.storage, "finish_event", finish)
        raise Crash

    monkeypatch.setattr(world.storage, "finish_event", crash)
    with pytest.raises(Crash):
        world.deliver(paid)
    assert recorder.calls == []  # never before the event is done
    stuck = world.storage.get_event(paid["id"])
    assert stuck is not None
    assert stuck.status is EventStatus.PROCESSING
    assert world.provisioner.run_hooks(paid["id"]) is not None  # recorded, not run:
    assert recorder.calls == []  # the event is not done yet
    clock.pass_lease()
    answer = world.deliver(paid)  # takes the stuck event over: the flow finds it all done
    assert answer.status == 200
    assert body(answer)["outcome"] == "provisioned"  # what the event did, not "duplicate"
    assert recorder.names() == ["email", "crm", "audit"]
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert (record.status, record.outcome, record.attempts) == (EventStatus.DONE, "provisioned", 2)


def test_replay_runs_only_the_hooks_that_have_not_succeeded(
    world: EmulatedWorld, recorder: Recorder
) -> None:
    recorder.fail["email"] = 2
    _, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 500
    replayed = world.provisioner.replay(paid["id"])
    assert replayed.status == 500  # email failed again
    assert body(replayed)["outcome"] == "provisioned"
    assert recorder.names() == ["email", "crm", "audit", "email"]
    replayed = world.provisioner.replay(paid["id"])
    assert replayed.status == 200
    assert recorder.names() == ["email", "crm", "audit", "email", "email"]
    assert runs(world, paid["id"])["email"] == (HookStatus.DONE, 3)
    world.provisioner.replay(paid["id"])  # all done: a replay calls none again
    assert len(recorder.calls) == 5


def test_run_hooks_runs_what_is_unfinished_of_a_done_event(
    world: EmulatedWorld, recorder: Recorder
) -> None:
    recorder.fail["audit"] = 1
    _, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    world.deliver(paid)
    stored = world.provisioner.run_hooks(paid["id"])
    assert stored is not None
    assert [(r.handler, r.status) for r in stored.runs] == [
        ("email", HookStatus.DONE),
        ("crm", HookStatus.DONE),
        ("audit", HookStatus.DONE),
    ]
    assert recorder.names() == ["email", "crm", "audit", "audit"]
    assert world.provisioner.run_hooks("evt_unknown") is None


def test_outcomes_without_hooks_record_nothing_for_them(world: EmulatedWorld) -> None:
    seen: list[LicenceOutcome] = []
    world.provisioner.on_outcome("revoked", name="only_revoked")(seen.append)
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    world.deliver(paid)
    assert world.storage.get_outcome(paid["id"]) is None  # type: ignore[attr-defined]
    world.deliver(world.cancel(subscription_id))
    assert [o.kind for o in seen] == [OutcomeKind.REVOKED]


def hook_for_naming(outcome: LicenceOutcome) -> None:
    """A module-level handler, for its stable name."""


def test_registration_names_kinds_and_storage_are_checked(world: EmulatedWorld) -> None:
    on = world.provisioner.on_outcome
    assert handler_name(hook_for_naming) == f"{__name__}.hook_for_naming"
    on("provisioned")(hook_for_naming)
    with pytest.raises(ValueError, match="registered already"):
        on("renewed")(hook_for_naming)
    with pytest.raises(ValueError, match="lambda has no stable name"):
        on("renewed")(lambda outcome: None)
    for kind in ("ignored", "duplicate", "failed", "queued", "handled", "provision"):
        with pytest.raises(ValueError, match="not a licence outcome"):
            on(kind)
    with pytest.raises(ValueError, match="at least one kind"):
        on()

    async def coroutine(outcome: LicenceOutcome) -> None:
        return None

    with pytest.raises(TypeError, match="never be awaited"):
        on("renewed")(coroutine)  # type: ignore[arg-type]
    assert {"provisioned", "renewed", "updated", "revoked"} <= {k.value for k in LICENCE_KINDS}

    from zentitle_stripe import Provisioner

    no_hooks: Any = object()  # a storage of one's own without the HookStorage methods
    bare = Provisioner(webhook_secrets=["whsec_x"], storage=no_hooks)
    with pytest.raises(ConfigurationError, match="HookStorage"):
        bare.on_outcome("provisioned")


def test_the_outcome_survives_json_as_it_was() -> None:
    outcome = LicenceOutcome(
        event_id="evt_1",
        event_type="invoice.paid",
        kind=OutcomeKind.UPDATED,
        message="m",
        subscription_id="sub_1",
        entitlements=(LicensedEntitlement("e1", "A"), LicensedEntitlement("e2", "A")),
        skus=("A",),
        activation_codes=("X",),
    )
    assert LicenceOutcome.from_json(outcome.to_json()) == outcome
    assert outcome.entitlement_ids == ("e1", "e2")
    assert outcome.idempotency_key("app.send") == "evt_1:app.send"


def test_a_replay_by_a_process_without_the_hooks_leaves_them_to_the_next_delivery(
    world: EmulatedWorld, recorder: Recorder
) -> None:
    recorder.fail["crm"] = 1
    _, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 500
    hooks, world.provisioner._ledger.hooks = world.provisioner._ledger.hooks, None
    assert world.provisioner.replay(paid["id"]).status == 200  # `replay` without --app
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert record.outcome == "duplicate"
    assert len(recorder.calls) == 3
    world.provisioner._ledger.hooks = hooks  # the app again, on Stripe's redelivery
    assert world.deliver(paid).status == 200
    assert recorder.names() == ["email", "crm", "audit", "crm"]


def test_lifecycle_outcomes_reach_the_hooks_with_their_kind(world: EmulatedWorld) -> None:
    seen: list[LicenceOutcome] = []
    world.provisioner.on_outcome("*", name="all")(seen.append)
    customer = world.customer()
    subscription_id, paid = world.subscribe(customer, [(world.price("PRO-1Y"), 1)])
    world.deliver(paid)
    steps: list[Callable[[], Sequence[dict[str, Any]]]] = [
        lambda: world.change_items(subscription_id, [(world.price("PRO-1Y"), 5)]),
        lambda: world.pause(subscription_id),
        lambda: world.resume(subscription_id),
    ]
    for step in steps:  # each delivered before the next change is made
        for event in step():
            assert world.deliver(event).status == 200
    assert [(o.kind.value, o.event_type) for o in seen] == [
        ("provisioned", "invoice.paid"),
        ("updated", "customer.subscription.updated"),  # seats 2 -> 10
        ("revoked", "customer.subscription.paused"),
        ("updated", "customer.subscription.resumed"),
    ]
    (group,) = world.groups(subscription_id)
    assert {(o.subscription_id, o.stripe_customer_id, o.group_id) for o in seen} == {
        (subscription_id, customer, group.id)
    }
    assert all(o.skus == ("PRO-1Y",) for o in seen)


def test_an_outcome_that_cannot_be_recorded_fails_the_event_for_a_retry(
    world: EmulatedWorld, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zentitle_stripe.exceptions import StorageError

    _, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    record_outcome = world.storage.record_outcome  # type: ignore[attr-defined]

    def down(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(world.storage, "record_outcome", record_outcome)
        raise StorageError("storage is down")

    monkeypatch.setattr(world.storage, "record_outcome", down)
    failed = world.deliver(paid)
    assert failed.status == 503  # never "done" with its hooks unrecorded
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert record.status is EventStatus.FAILED
    assert recorder.calls == []
    # The retry finds the licence work done: the flow answers duplicate, and with nothing
    # recorded for its hooks there is nothing to run (the documented window).
    retried = world.deliver(paid)
    assert (retried.status, body(retried)["outcome"]) == (200, "duplicate")
    assert recorder.calls == []


def test_concurrent_redeliveries_run_a_failed_hook_once(
    world: EmulatedWorld, recorder: Recorder
) -> None:
    import threading

    recorder.fail["crm"] = 1
    _, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 500
    entered, release = threading.Event(), threading.Event()
    slow = world.provisioner.outcome_hooks.registry.get("crm")
    assert slow is not None

    def blocking_crm(outcome: LicenceOutcome) -> None:  # holds its run while a twin arrives
        entered.set()
        release.wait(10)
        slow(outcome)

    world.provisioner.outcome_hooks.registry._registered["crm"].handler = blocking_crm
    answers: list[int] = []
    first = threading.Thread(target=lambda: answers.append(world.deliver(paid).status))
    first.start()
    assert entered.wait(10)
    twin = world.deliver(paid)  # the same event again, while crm runs for the first
    release.set()
    first.join(10)
    assert twin.status == 409  # held elsewhere: retry later, never a second run
    assert answers == [200]
    assert recorder.names() == ["email", "crm", "audit", "crm"]
