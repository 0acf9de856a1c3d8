"""After a crash: stuck events are listed with their age and taken over by `replay`; every
attempt stays in the event's history, so a replay never loses the first run's outcome.

In-process with an injectable clock (the crash is a `SystemExit` out of the work, which
leaves the claim behind exactly as kill -9 would), and end to end through the CLI."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import subscribe_two
from tests.support.cli import Env, served_env
from zentitle_stripe import ops
from zentitle_stripe.events import StripeEvent
from zentitle_stripe.ops.events import duration, status_text
from zentitle_stripe.provisioner import EventProcessor
from zentitle_stripe.responses import Outcome
from zentitle_stripe.storage import EventStatus, NewEvent, stuck_events
from zentitle_stripe.storage.sqlite import SQLiteStorage
from zentitle_stripe.testing import EmulatedWorld

LEASE = 120.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class CrashOnce:
    """The real flows, but the first event kills the worker mid-way (after its claim)."""

    def __init__(self, real: EventProcessor) -> None:
        self.real = real
        self.event_types = real.event_types
        self.crashed = False

    def process(self, event: StripeEvent, *, owner: str) -> Outcome:
        if not self.crashed:
            self.crashed = True
            raise SystemExit("kill -9")
        return self.real.process(event, owner=owner)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world_options(clock: Clock) -> dict[str, Any]:
    return {"clock": clock, "lease_seconds": LEASE}


def test_a_crashed_event_is_stuck_then_replay_takes_it_over_once(
    world: EmulatedWorld, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(world.provisioner, "processor", CrashOnce(world.provisioner.processor))
    subscription_id, paid = subscribe_two(world)
    with pytest.raises(SystemExit):
        world.deliver(paid)
    [record] = world.storage.list_events()
    assert record.status is EventStatus.PROCESSING
    crashed_owner = record.claimed_by

    clock.now += LEASE / 2  # the lease still runs: not stuck, and not taken over
    assert ops.failed_events(world.storage, now=clock.now) == []
    assert world.provisioner.replay(paid["id"]).status == 409

    clock.now += 2 * 3600
    [stuck] = ops.failed_events(world.storage, now=clock.now)
    assert stuck.event_id == paid["id"]
    assert stuck.is_stuck(clock.now)
    assert ops.event_to_json(stuck, now=clock.now)["stuck_for_seconds"] == round(
        LEASE / 2 + 2 * 3600
    )
    assert status_text(stuck, clock.now) == "processing, stuck for 2h"
    [result] = ops.replay_events(world.provisioner, [(stuck.event_id, stuck.source)])
    assert (result.status, result.outcome) == (200, "provisioned")

    assert len(world.groups(subscription_id)) == 1
    assert len(world.active_entitlements(subscription_id)) == 2
    done = world.storage.get_event(paid["id"])
    assert done is not None
    assert (done.status, done.attempts) == (EventStatus.DONE, 2)
    assert [(a.attempt, a.owner, a.status, a.outcome) for a in done.history] == [
        (1, crashed_owner, "abandoned", None),
        (2, done.history[1].owner, "done", "provisioned"),
    ]
    assert stuck_events(world.storage, now=clock.now + 10 * LEASE) == []
    assert ops.failed_events(world.storage, now=clock.now + 10 * LEASE) == []


def test_failed_and_stuck_events_replay_oldest_first(world: EmulatedWorld, clock: Clock) -> None:
    storage = world.storage
    for i, event_id in enumerate(["evt_failed_old", "evt_stuck", "evt_failed_new", "evt_busy"]):
        event = NewEvent(event_id, "stripe", "invoice.paid", b"{}")
        storage.claim_event(event, owner="w", lease_seconds=LEASE, now=clock.now + i)
    for event_id in ("evt_failed_old", "evt_failed_new"):
        storage.finish_event(
            event_id,
            "stripe",
            owner="w",
            status=EventStatus.FAILED,
            outcome="failed",
            detail="d",
            error="e",
            now=clock.now + 5,
        )
    # At +1 + LEASE the claim made at +1 has expired; the one made at +3 has not.
    listed = ops.failed_events(storage, now=clock.now + 1 + LEASE)
    assert [r.event_id for r in listed] == ["evt_failed_old", "evt_stuck", "evt_failed_new"]
    assert [r.event_id for r in ops.failed_events(storage, now=clock.now, limit=2)] == [
        "evt_failed_old",
        "evt_failed_new",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        *[(0, "0s"), (45, "45s"), (119, "119s"), (120, "2m"), (7199, "119m"), (7200, "2h")],
        *[(172_799, "47h"), (172_800, "2d"), (-5, "0s")],
    ],
)
def test_durations_read_roughly(seconds: float, text: str) -> None:
    assert duration(seconds) == text


# -- the command line ----------------------------------------------------------------------


@pytest.fixture
def env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    with served_env(tmp_path, capsys, monkeypatch) as served:
        yield served


def _sqlite(tmp_path: Path) -> SQLiteStorage:
    return SQLiteStorage(str(tmp_path / "events.db"))


def test_events_shows_a_stuck_event_with_its_age_and_replay_failed_takes_it_over(
    env: Env, tmp_path: Path
) -> None:
    env.offering("PRO-1Y")
    subscription, paid = env.subscribe("PRO-1Y")
    crashed = "web-1/4242/0123456789ab"
    storage = _sqlite(tmp_path)  # what a worker killed after its claim two hours ago left
    event = NewEvent(paid["id"], "stripe", "invoice.paid", json.dumps(paid).encode())
    storage.claim_event(event, owner=crashed, lease_seconds=LEASE, now=time.time() - 7300)
    storage.close()

    code, out, _ = env.run("events")
    assert code == 0
    assert re.search(rf"{paid['id']}\s+invoice.paid\s+processing, stuck for 2h\s+1\s", out)
    code, listed = env.run_json("events", "--status", "stuck")
    assert [(e["event_id"], e["stuck"], e["claimed_by"]) for e in listed] == [
        (paid["id"], True, crashed)
    ]
    assert 7290 <= listed[0]["stuck_for_seconds"] <= 7400
    assert env.run_json("events", "--status", "failed") == (0, [])

    code, results = env.run_json("replay", "--failed")
    assert code == 0
    assert [(r["event_id"], r["status"], r["outcome"]) for r in results] == [
        (paid["id"], 200, "provisioned")
    ]
    assert len(env.zentitle.groups(order_ref_id=subscription)) == 1
    assert env.run_json("events", "--status", "stuck") == (0, [])

    code, out, _ = env.run("events", "--history")
    header, *lines = out.splitlines()
    assert header.startswith("RECEIVED ")
    assert re.search(rf"{paid['id']}\s+invoice.paid\s+done\s+2\s+provisioned:", lines[0])
    assert lines[1].startswith("    #1 ")
    assert f"abandoned by {crashed}: -: the lease expired" in lines[1]
    assert lines[2].startswith("    #2 ")
    assert " done by " in lines[2]
    assert ": provisioned: " in lines[2]


def test_a_replay_keeps_the_outcome_of_the_first_run(env: Env) -> None:
    _, broken = env.subscribe("NOPE")
    code, _, _ = env.run("reconcile", "--since", "1h", "--no-drift")
    assert code == 1
    env.offering("NOPE")
    code, out, _ = env.run("replay", broken["id"])
    assert (code, out.split("  ")[0]) == (0, "200")

    code, [listed] = env.run_json("events")
    assert (listed["status"], listed["outcome"], listed["attempts"]) == ("done", "provisioned", 2)
    first, second = listed["history"]
    assert (first["attempt"], first["status"], first["outcome"]) == (1, "failed", "failed")
    assert "no offering" in first["detail"]
    assert first["error"].startswith("ProvisioningConfigError: ")
    assert (second["attempt"], second["status"], second["outcome"]) == (2, "done", "provisioned")
    assert second["error"] is None
    assert first["finished_at"] <= second["finished_at"]
