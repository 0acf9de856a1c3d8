"""The command line's traps for a new user: readers that created an empty database in the
wrong folder, no word of which storage was read, `connect --write-env` writing a file
nothing read, tables without headers, tracebacks into `| head`."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Env, served_env
from zentitle_stripe.storage import NewEvent, open_storage

URL = "https://licences.example.com/stripe/webhook"
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    monkeypatch.chdir(tmp_path)  # no stray ./.env from the repository
    with served_env(tmp_path, capsys, monkeypatch) as served:
        yield served


def test_events_in_the_wrong_folder_creates_nothing_and_says_so(env: Env, tmp_path: Path) -> None:
    env.monkeypatch.delenv("ZENTITLE_STRIPE_STORAGE")  # the default, relative to the folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env.monkeypatch.chdir(elsewhere)

    code, out, err = env.run("events")

    assert code == 2
    assert out == ""
    assert "storage: sqlite:///zentitle_stripe.db" in err
    assert f"{elsewhere / 'zentitle_stripe.db'}, which does not exist" in err
    assert "--env-file" in err
    assert list(elsewhere.iterdir()) == []


def test_events_refuses_memory_and_a_file_without_the_tables(env: Env, tmp_path: Path) -> None:
    env.monkeypatch.setenv("ZENTITLE_STRIPE_STORAGE", "memory://")
    code, _, err = env.run("events")
    assert code == 2
    assert "memory://, which starts empty in every process" in err

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE notes (x)").connection.close()
    env.monkeypatch.setenv("ZENTITLE_STRIPE_STORAGE", f"sqlite:///{other}")
    code, _, err = env.run("events")
    assert code == 2
    assert "holds no zentitle-stripe events table" in err


def test_events_table_has_a_header_row_and_names_its_storage(env: Env, tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'events.db'}")
    event_id = "evt_1TableHeader"
    storage.claim_event(
        NewEvent(event_id=event_id, type="invoice.paid", payload=b"{}", source="stripe"),
        owner="test",
        lease_seconds=60,
        now=1_700_000_000,
    )
    storage.close()

    code, out, err = env.run("events")

    assert code == 0
    header, row = out.splitlines()
    assert header.split() == [
        "RECEIVED", "SOURCE", "EVENT", "TYPE", "STATUS", "ATTEMPTS", "OUTCOME:", "DETAIL"
    ]  # fmt: skip
    assert row.index(event_id) == header.index("EVENT")
    assert f"storage: sqlite:///{tmp_path / 'events.db'}" in err


def test_connect_write_env_then_doctor_closes_the_loop(env: Env, tmp_path: Path) -> None:
    env.monkeypatch.delenv("STRIPE_WEBHOOK_SECRET")
    env.monkeypatch.setenv("ZENTITLE_STRIPE_WEBHOOK_URL", URL)

    code, _, _ = env.run("connect", "--url", URL, "--write-env", ".env")
    assert code == 0
    code, report = env.run_json("doctor")  # reads ./.env by default

    checks = {c["name"]: c for c in report["checks"]}
    assert checks["webhook signing secret"]["status"] == "PASS"
    assert checks["webhook endpoint"]["status"] == "PASS"
    assert code == 0


def test_env_file_flag_is_read_and_the_environment_wins(env: Env, tmp_path: Path) -> None:
    env.monkeypatch.delenv("ZENTITLE_STRIPE_STORAGE")
    settings = tmp_path / "app.env"
    settings.write_text(
        f"ZENTITLE_STRIPE_STORAGE='sqlite:///{tmp_path / 'events.db'}'\n"
        "STRIPE_API_KEY=sk_test_from_file\n",
        encoding="utf-8",
    )
    code, out, err = env.run("events", "--env-file", str(settings))
    assert (code, out.strip()) == (0, "no recorded events match")
    assert f"settings: environment and {settings}" in err

    code, report = env.run_json("doctor", "--env-file", str(settings))
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["Stripe key"]["status"] == "PASS"  # the emulator's key from the environment


def test_a_configuration_error_with_json_is_json_on_stdout(env: Env) -> None:
    env.monkeypatch.setenv("ZENTITLE_STRIPE_STORAGE", "memory://")
    code, data = env.run_json("events")
    assert code == 2
    assert data["exit_code"] == 2
    assert "memory://" in data["error"]


def test_doctor_suggests_no_connect_for_a_plain_http_url(env: Env) -> None:
    code, report = env.run_json("doctor", "--url", "http://licences.example.com/hook")

    endpoint = {c["name"]: c for c in report["checks"]}["webhook endpoint"]
    assert code == 1
    assert "connect --url http://" not in endpoint["fix"]
    assert "https" in endpoint["fix"]
    assert "tunnel" in endpoint["fix"]


def test_every_configuration_problem_is_reported_at_once(env: Env) -> None:
    for name in ("STRIPE_API_KEY", "ZENTITLE_TENANT_ID", "ZENTITLE_CLIENT_SECRET"):
        env.monkeypatch.delenv(name)

    code, _, err = env.run("reconcile")

    assert code == 2
    assert "3 configuration problems" in err
    assert all(n in err for n in ("STRIPE_API_KEY", "ZENTITLE_TENANT_ID", "ZENTITLE_CLIENT_SECRET"))


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    open_storage(f"sqlite:///{tmp_path / 'events.db'}").close()
    environ = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "ZENTITLE_STRIPE_STORAGE": f"sqlite:///{tmp_path / 'events.db'}",
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "zentitle_stripe.cli", "events"],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    child.stdout.close()  # the reader is gone before anything is written, as `| head -0`
    _, err = child.communicate(timeout=60)

    assert b"Traceback" not in err
    assert b"BrokenPipe" not in err
    assert child.returncode == 141
