"""Replaying Zentitle2 events runs the app's own handlers: `replay --app module:attribute`
loads them, without it the command refuses (exit 2, saying how), and the engine never
marks a Zentitle2 event done when no handler would have seen it."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.cli import Env, served_env
from zentitle_stripe import Provisioner
from zentitle_stripe.cli._app import load_app
from zentitle_stripe.exceptions import ConfigurationError
from zentitle_stripe.storage import EventStatus, MemoryStorage
from zentitle_stripe.storage.sqlite import SQLiteStorage
from zentitle_stripe.testing import ZentitleEmulator

APP = '''
from zentitle_stripe import Provisioner, Services

SENT = []
provisioner = Provisioner.from_env()
SMTP_DOWN = [True]


@provisioner.on_zentitle("entitlement.group.created")
def send_activation_email(event):
    if SMTP_DOWN[0]:
        raise OSError("SMTP server refused the connection")
    SENT.append(event.event_id)


def create():
    """A factory, as `--app module:create` calls it."""
    services = Services.from_env()
    services.provisioner.on_zentitle("entitlement.group.created")(
        lambda event: SENT.append(("factory", event.event_id))
    )
    return services


NOT_AN_APP = 42
'''


def group_created(event_id: str = "event_1") -> bytes:
    return json.dumps(
        {
            "eventId": event_id,
            "eventDate": "2026-11-29T10:00:00Z",
            "eventCode": "entitlement.group.created",
            "resourceId": "egr_1",
            "callAttempt": 1,
            "payload": {"entitlementGroupId": "egr_1", "orderRefId": "sub_1"},
        }
    ).encode()


@pytest.fixture
def env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    with served_env(tmp_path, capsys, monkeypatch) as served:
        monkeypatch.setenv("ZENTITLE_WEBHOOK_PUBLIC_KEY", served.zentitle.public_key_modulus)
        yield served


@pytest.fixture
def app(tmp_path: Path, env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The user's app as a module in the current directory, imported as `--app` would;
    one Zentitle2 delivery to it failed (the mail server was down)."""
    name = f"billing_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    provisioner, built = load_app(f"{name}:provisioner")
    assert not built
    module = sys.modules[name]
    body = group_created()
    response = provisioner.handle_zentitle_event(body, env.zentitle.sign(body))
    assert response.status == 500
    module.SMTP_DOWN[0] = False
    yield module
    provisioner.close()
    sys.modules.pop(name, None)


def _record(tmp_path: Path, event_id: str = "event_1") -> tuple[EventStatus, int, list[str]]:
    storage = SQLiteStorage(str(tmp_path / "events.db"))
    try:
        record = storage.get_event(event_id, "zentitle")
    finally:
        storage.close()
    assert record is not None
    return record.status, record.attempts, [a.status for a in record.history]


def test_without_app_zentitle_replays_are_refused_and_change_nothing(
    env: Env, app: ModuleType, tmp_path: Path
) -> None:
    for argv in (["replay", "event_1", "--source", "zentitle"], ["replay", "--failed"]):
        code, out, err = env.run(*argv)
        assert (code, out) == (2, "")
        assert "--app yourapp.module:provisioner" in err
        assert "Traceback" not in err
    assert _record(tmp_path) == (EventStatus.FAILED, 1, ["failed"])
    assert app.SENT == []


def test_with_app_a_replay_runs_the_apps_handlers_once_and_keeps_the_history(
    env: Env, app: ModuleType, tmp_path: Path
) -> None:
    spec = f"{app.__name__}:provisioner"
    code, out, _ = env.run("replay", "event_1", "--source", "zentitle", "--app", spec)
    assert code == 0
    assert out.startswith("200  zentitle event_1  handled: ")
    assert "send_activation_email" in out
    assert app.SENT == ["event_1"]
    assert _record(tmp_path) == (EventStatus.DONE, 2, ["failed", "done"])

    body = group_created()  # Zentitle2's own retry is now a duplicate: no second e-mail
    again = app.provisioner.handle_zentitle_event(body, env.zentitle.sign(body))
    assert (again.status, again.outcome.kind.value) == (200, "duplicate")
    assert app.SENT == ["event_1"]
    code, out, _ = env.run("replay", "--failed", "--app", spec)
    assert (code, out) == (0, "no failed events to replay\n")


def test_app_may_be_a_factory_of_services_which_is_closed_afterwards(
    env: Env, app: ModuleType
) -> None:
    code, results = env.run_json("replay", "--failed", "--app", f"{app.__name__}:create")
    assert code == 0
    assert [(r["event_id"], r["status"]) for r in results] == [("event_1", 200)]
    assert app.SENT == [("factory", "event_1")]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{app}", "--app takes module:attribute, e.g. --app yourapp.webhooks:provisioner"),
        ("{app}:", "--app takes module:attribute"),
        ("no_such_module_x:provisioner", "no module 'no_such_module_x' in "),
        ("{app}:missing", "has no attribute 'missing'"),
        ("{app}:NOT_AN_APP", "is a int, not a Provisioner or Services"),
        ("{app}:SENT.append", "calling SENT.append() raised TypeError"),
    ],
)
def test_a_bad_app_says_what_to_pass(env: Env, app: ModuleType, spec: str, message: str) -> None:
    code, out, err = env.run(
        "replay", "event_1", "--source", "zentitle", "--app", spec.format(app=app.__name__)
    )
    assert (code, out) == (2, "")
    assert message in err
    assert "Traceback" not in err


def test_an_app_that_fails_to_import_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "broken_app_x.py").write_text("import not_installed_dependency_x\n")
    (tmp_path / "raising_app_x.py").write_text("raise RuntimeError('no settings')\n")
    with pytest.raises(ConfigurationError, match="importing broken_app_x failed: No module"):
        load_app("broken_app_x:provisioner")
    with pytest.raises(ConfigurationError, match="raised RuntimeError: no settings"):
        load_app("raising_app_x:provisioner")
    for name in ("broken_app_x", "raising_app_x"):
        sys.modules.pop(name, None)


def test_the_engine_never_marks_a_zentitle_event_done_without_a_handler() -> None:
    emulator, storage = ZentitleEmulator(), MemoryStorage()
    app = Provisioner(
        webhook_secrets=["whsec_x"],
        storage=storage,
        zentitle_webhook_key=emulator.public_key_modulus,
    )

    @app.on_zentitle("entitlement.group.created")
    def down(event: object) -> None:
        raise OSError("SMTP down")

    body = group_created()
    assert app.handle_zentitle_event(body, emulator.sign(body)).status == 500
    bare = Provisioner(webhook_secrets=["whsec_x"], storage=storage)  # no handlers here
    response = bare.replay("event_1", source="zentitle")
    assert response.status == 422
    assert response.outcome.kind.value == "failed"
    assert "no handler for entitlement.group.created" in response.outcome.reason
    assert "--app yourapp.module:provisioner" in response.outcome.reason
    record = storage.get_event("event_1", "zentitle")
    assert record is not None
    assert (record.status, record.attempts) == (EventStatus.FAILED, 1)
    assert [a.status for a in record.history] == ["failed"]  # the refusal is no attempt
