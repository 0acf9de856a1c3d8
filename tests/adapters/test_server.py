"""What only the standalone server has: `/healthz`, JSON logs, and `zentitle-stripe serve`
for real, shut down gracefully.

The webhook scenarios every adapter shares are in `test_adapters.py`."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import httpx
from starlette.testclient import TestClient

from zentitle_stripe.cli import main
from zentitle_stripe.demo import DemoStory
from zentitle_stripe.exceptions import MissingExtraError, StorageError
from zentitle_stripe.server import JsonLogFormatter, create_app
from zentitle_stripe.testing import EmulatedWorld


def test_healthz_is_ok_while_storage_answers(world: EmulatedWorld) -> None:
    response = TestClient(create_app(world.provisioner)).get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


LEAKY_URL = "postgresql://app@db.internal:5432/licences?password=hunter2"


@pytest.mark.parametrize(
    "error",
    [
        StorageError(f"PostgreSQL storage {LEAKY_URL} could not answer a health check: timeout"),
        RuntimeError(f"connection to {LEAKY_URL} refused"),
    ],
    ids=["storage-error", "driver-error"],
)
def test_healthz_names_only_the_unavailable_part(
    error: Exception,
    world: EmulatedWorld,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> None:
        raise error

    caplog.set_level(logging.INFO)
    monkeypatch.setattr(world.provisioner.storage, "ping", broken)
    response = TestClient(create_app(world.provisioner)).get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "unavailable": ["storage"]}
    for leak in ("hunter2", "db.internal", "postgresql://", "timeout", "refused"):
        assert leak not in response.text
        assert leak not in caplog.text
    [warning] = [r for r in caplog.records if r.name == "zentitle_stripe"]
    assert warning.levelno == logging.WARNING
    assert warning.exc_info is None
    assert warning.getMessage() == (
        f"health check: storage unavailable ({type(error).__name__}); "
        "`zentitle-stripe doctor` says why"
    )


def test_json_log_formatter_emits_the_event_fields_only() -> None:
    record = logging.LogRecord("zentitle_stripe", logging.INFO, __file__, 1, "m %s", ("x",), None)
    fields = {
        "source": "stripe",
        "event_id": "evt_1",
        "event_type": "invoice.paid",
        "outcome": "provisioned",
        "status": 200,
        "duration_ms": 12.5,
        "api_key": "sk_live_secret",
    }
    record.__dict__.update(fields)
    entry = json.loads(JsonLogFormatter().format(record))
    assert entry["message"] == "m x"
    assert entry["level"] == "info"
    assert {k: entry[k] for k in fields if k != "api_key"} == {
        k: v for k, v in fields.items() if k != "api_key"
    }
    assert "api_key" not in entry


def test_missing_server_extra_names_it(
    world: EmulatedWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(MissingExtraError, match=r"zentitle-stripe\[server\]"):
        create_app(world.provisioner)
    assert main(["serve"]) == 2
    assert "pip install 'zentitle-stripe[server]'" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_command(port: int) -> list[str]:
    script = shutil.which("zentitle-stripe")
    command = [script] if script else [sys.executable, "-m", "zentitle_stripe.cli"]
    return [
        *command,
        "serve",
        "--port",
        str(port),
        "--log-format",
        "json",
        "--graceful-timeout",
        "5",
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is a POSIX signal")
def test_serve_subprocess_end_to_end(tmp_path: Path) -> None:
    story = DemoStory()
    story.seed()
    with story.served(str(tmp_path)) as environ:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            serve_command(port),
            env={**os.environ, **environ},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            with httpx.Client(base_url=base, timeout=10.0) as http:
                deadline = time.monotonic() + 15
                while True:
                    assert process.poll() is None, process.communicate(timeout=5)
                    try:
                        health = http.get("/healthz")
                        break
                    except httpx.TransportError:
                        assert time.monotonic() < deadline, "the server did not start"
                        time.sleep(0.05)
                assert (health.status_code, health.json()) == (200, {"status": "ok"})

                _, paid = story.first_subscription()
                body, header = story.stripe.sign(paid)
                bad = http.post("/stripe/webhook", content=body, headers={"Stripe-Signature": "x"})
                assert bad.status_code == 400

                # A slow Stripe call keeps this request in flight across the SIGTERM:
                # graceful shutdown lets it finish.
                story.stripe.inject_fault("*", r"^/v1/", "timeout", delay=1.0)
                answers: list[httpx.Response] = []

                def deliver() -> None:
                    headers = {"Stripe-Signature": header}
                    answers.append(http.post("/stripe/webhook", content=body, headers=headers))

                in_flight = threading.Thread(target=deliver)
                in_flight.start()
                time.sleep(0.4)
                process.send_signal(signal.SIGTERM)
                in_flight.join(15)
                assert len(answers) == 1
                assert answers[0].status_code == 200, answers[0].text
                assert answers[0].json()["outcome"] == "provisioned"
            _, stderr = process.communicate(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=5)
    assert process.returncode == 0, stderr
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    provisioned = [e for e in events if e.get("outcome") == "provisioned"]
    assert provisioned, stderr
    assert provisioned[0]["event_id"] == paid["id"]
    assert {"event_type", "status", "duration_ms"} <= set(provisioned[0])
    for secret in ("whsec_", environ["STRIPE_API_KEY"], environ["ZENTITLE_CLIENT_SECRET"]):
        assert secret not in stderr
