"""An upload the client aborts is one INFO line, in every adapter: no traceback, no ERROR,
nothing recorded (anyone can abort uploads; they must not be able to flood the log).

Each framework is driven the way it surfaces a disconnect: Starlette's `receive` yields
`http.disconnect` (standalone server, FastAPI), Werkzeug's input stream ends early or
raises (Flask), Django's raises (`UnreadablePostError`).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.apps import DjangoApp
from zentitle_stripe import Provisioner
from zentitle_stripe.testing import EmulatedWorld

PREFIX = b'{"id": "evt_1", "type": "invoice.pa'
"""What arrived before the client went away: a body cut in the middle."""
SIGNATURE = {"Stripe-Signature": "t=1,v1=00"}

Abort = Callable[[Provisioner, str], int]
"""Sends PREFIX to a webhook path of an app over the provisioner, then disconnects;
returns the status the app answered (or tried to)."""


def _asgi_abort(app: Any, path: str) -> int:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": PREFIX, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-length", b"5000"), (b"stripe-signature", b"t=1,v1=00")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))  # an exception here is today's ERROR log
    status: int = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status


def _server(provisioner: Provisioner, path: str) -> int:
    pytest.importorskip("uvicorn")
    from zentitle_stripe.server import create_app

    return _asgi_abort(create_app(provisioner), path)


def _fastapi(provisioner: Provisioner, path: str) -> int:
    fastapi = pytest.importorskip("fastapi")
    from zentitle_stripe.fastapi import make_router

    app = fastapi.FastAPI()
    app.include_router(make_router(provisioner))
    return _asgi_abort(app, path)


class _CutStream(io.RawIOBase):
    """A WSGI input that yields PREFIX, then ends (`error=None`) or raises `error`."""

    def __init__(self, error: OSError | None) -> None:
        self._left = PREFIX
        self._error = error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._left:
            if self._error is not None:
                raise self._error
            return 0
        size = min(len(buffer), len(self._left))
        buffer[:size], self._left = self._left[:size], self._left[size:]
        return size


def _flask(error: OSError | None) -> Abort:
    def abort(provisioner: Provisioner, path: str) -> int:
        flask = pytest.importorskip("flask")
        from zentitle_stripe.flask import init_app

        app = flask.Flask(__name__)
        init_app(app, provisioner)
        cut = {"wsgi.input": _CutStream(error), "CONTENT_LENGTH": "5000"}
        response = app.test_client().post(path, headers=SIGNATURE, environ_overrides=cut)
        status: int = response.status_code
        return status

    return abort


def _django(provisioner: Provisioner, path: str) -> int:
    DjangoApp.require()
    with DjangoApp.serving(provisioner) as app:
        reset = ConnectionResetError(104, "Connection reset by peer")
        extra = {"wsgi.input": _CutStream(reset), "CONTENT_LENGTH": "5000"}
        response = app.client.post(
            path, content_type="application/json", headers=SIGNATURE, **extra
        )
        status: int = response.status_code
        return status


ABORTS: dict[str, Abort] = {
    "server": _server,
    "fastapi": _fastapi,
    "flask-ended": _flask(None),
    "flask-reset": _flask(ConnectionResetError(104, "Connection reset by peer")),
    "django": _django,
}


@pytest.mark.parametrize("path", ["/stripe/webhook", "/zentitle/webhook"])
@pytest.mark.parametrize("abort", list(ABORTS.values()), ids=list(ABORTS))
def test_an_aborted_upload_is_one_info_line_and_records_nothing(
    abort: Abort, path: str, world: EmulatedWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    status = abort(world.provisioner, path)
    assert status == 400
    ours = [r for r in caplog.records if r.name == "zentitle_stripe"]
    assert [(r.levelno, r.exc_info) for r in ours] == [(logging.INFO, None)]
    [line] = ours
    source = path.split("/")[1]
    assert line.getMessage() == (
        f"{source} webhook: the client disconnected after {len(PREFIX)} bytes, before the "
        "whole body arrived; nothing recorded"
    )
    assert line.__dict__["source"] == source
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "Traceback" not in caplog.text
    assert world.storage.list_events() == []


def test_a_complete_delivery_after_an_aborted_one_is_processed(
    world: EmulatedWorld, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("uvicorn")
    from starlette.testclient import TestClient

    from tests.support import subscribe_two
    from zentitle_stripe.server import create_app

    caplog.set_level(logging.INFO)
    app = create_app(world.provisioner)
    assert _asgi_abort(app, "/stripe/webhook") == 400
    subscription_id, paid = subscribe_two(world)
    body, header = world.stripe_emulator.sign(paid)
    reply = TestClient(app).post(
        "/stripe/webhook", content=body, headers={"Stripe-Signature": header}
    )
    assert (reply.status_code, reply.json()["outcome"]) == (200, "provisioned")
    assert len(world.groups(subscription_id)) == 1
