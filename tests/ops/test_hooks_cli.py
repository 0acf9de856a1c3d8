"""`zentitle-stripe worker --app module:attribute` and `reconcile --app` run the app's
outcome hooks: a command wired from the environment alone has none, so it records no
outcome for them. `hooks` lists the unfinished ones and `hooks --run --app` runs them."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.cli import Env, served_env
from zentitle_stripe.cli._app import load_app
from zentitle_stripe.storage import EventStatus
from zentitle_stripe.storage.sqlite import SQLiteStorage

APP = """
from zentitle_stripe import Provisioner

SENT = []
DOWN = [False]
provisioner = Provisioner.from_env()


@provisioner.on_outcome("provisioned", name="welcome")
def welcome(outcome):
    if DOWN[0]:
        raise ConnectionError("mailer down")
    SENT.append((outcome.subscription_id, outcome.skus))
"""


@pytest.fixture
def env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    with served_env(tmp_path, capsys, monkeypatch) as served:
        monkeypatch.setenv("ZENTITLE_STRIPE_MODE", "queue")
        yield served


@pytest.fixture
def app(tmp_path: Path, env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    name = f"billing_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    provisioner, _ = load_app(f"{name}:provisioner")
    yield sys.modules[name]
    provisioner.close()
    sys.modules.pop(name, None)


def _paid(env: Env, app: ModuleType | None = None) -> tuple[str, str]:
    """A first payment, delivered to the app in queue mode (with `app`); its
    subscription and event."""
    env.offering("PRO-1Y")
    subscription_id, event = env.subscribe("PRO-1Y")
    env.zentitle.now = env.stripe.clock.now
    if app is not None:
        body, header = env.stripe.sign(event)
        assert app.provisioner.handle_event(body, header).outcome.kind.value == "queued"
    return subscription_id, event["id"]


def _status(tmp_path: Path, event_id: str) -> EventStatus:
    storage = SQLiteStorage(str(tmp_path / "events.db"))
    try:
        record = storage.get_event(event_id)
        assert record is not None
        return record.status
    finally:
        storage.close()


def test_worker_with_app_runs_the_apps_outcome_hooks_once(
    env: Env, app: ModuleType, tmp_path: Path
) -> None:
    subscription_id, event_id = _paid(env, app)
    spec = f"{app.__name__}:provisioner"
    code, _, err = env.run("worker", "--once", "--app", spec)
    assert code == 0, err
    assert _status(tmp_path, event_id) is EventStatus.DONE
    sent = app.SENT
    assert sent == [(subscription_id, ("PRO-1Y",))]
    assert env.run("worker", "--once", "--app", spec)[0] == 0
    assert len(app.SENT) == 1


def test_worker_without_app_runs_no_hooks(env: Env, app: ModuleType, tmp_path: Path) -> None:
    _, event_id = _paid(env, app)
    code, _, err = env.run("worker", "--once")
    assert code == 0, err
    assert _status(tmp_path, event_id) is EventStatus.DONE
    sent = app.SENT
    assert sent == []  # documented: pass --app for the worker to have the hooks


def test_reconcile_with_app_runs_the_hooks_of_the_events_it_recovers(
    env: Env, app: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZENTITLE_STRIPE_MODE", "sync")
    subscription_id, event_id = _paid(env)  # never delivered: a missed webhook
    code, _, err = env.run(
        "reconcile", "--since", "72h", "--no-drift", "--app", f"{app.__name__}:provisioner"
    )
    assert code == 0, err
    assert _status(tmp_path, event_id) is EventStatus.DONE
    sent = app.SENT
    assert sent == [(subscription_id, ("PRO-1Y",))]


def test_hooks_lists_what_failed_and_runs_it_through_the_app(
    env: Env, app: ModuleType, tmp_path: Path
) -> None:
    spec = f"{app.__name__}:provisioner"
    code, out, _ = env.run("hooks")
    assert (code, out) == (0, "no outcome hook is unfinished\n")
    app.DOWN[0] = True
    _, event_id = _paid(env, app)
    assert env.run("worker", "--once", "--app", spec)[0] == 0
    assert _status(tmp_path, event_id) is EventStatus.DONE

    code, out, _ = env.run("hooks")
    assert code == 1
    header, row = out.splitlines()
    assert header.split()[:5] == ["EVENT", "OUTCOME", "HOOK", "STATUS", "ATTEMPTS"]
    assert row.split()[:5] == [event_id, "provisioned", "welcome", "failed", "1"]
    assert "ConnectionError: mailer down" in row
    code, listed = env.run_json("hooks")
    assert code == 1
    assert [(h["event_id"], h["runs"][0]["status"]) for h in listed] == [(event_id, "failed")]

    code, _, err = env.run("hooks", "--run")
    assert code == 2
    assert "--app" in err
    code, _, _ = env.run("hooks", "--run", "--app", spec)
    assert code == 1  # still down: left failed, two attempts now
    app.DOWN[0] = False
    code, ran = env.run_json("hooks", "--run", event_id, "--app", spec)
    assert code == 0
    assert ran[0]["runs"][0]["status"] == "done"
    assert ran[0]["runs"][0]["attempts"] == 3
    sent = app.SENT
    assert len(sent) == 1
    assert env.run("hooks")[0] == 0


def test_doctor_warns_of_failed_hooks_only() -> None:
    from zentitle_stripe.ops._common import CheckStatus
    from zentitle_stripe.ops.hooks import check_hooks
    from zentitle_stripe.storage import MemoryStorage

    storage = MemoryStorage()
    assert check_hooks(storage) is None  # no hooks at all: nothing to say
    storage.record_outcome(
        "stripe",
        "evt_1",
        kind="provisioned",
        data="{}",
        handlers=["welcome", "crm"],
        now=1.0,
        not_before=2.0,
    )
    assert check_hooks(storage) is None  # pending: about to run
    assert storage.claim_hook("stripe", "evt_1", "welcome", owner="w", lease_seconds=9, now=3.0)
    storage.finish_hook(
        "stripe", "evt_1", "welcome", owner="w", error="SMTPError: down", retry_at=4.0, now=3.0
    )
    check = check_hooks(storage)
    assert check is not None
    assert check.status is CheckStatus.WARN
    assert "welcome for provisioned event evt_1: SMTPError: down" in check.detail
    assert check.fix is not None
    assert "zentitle-stripe hooks --run --app" in check.fix
    no_hooks: Any = object()
    assert check_hooks(no_hooks) is None
