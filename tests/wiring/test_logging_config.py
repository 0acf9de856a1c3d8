"""`zentitle_stripe.logging`: JSON logs in one line for Flask, FastAPI, Django or any app,
through `logging.config.dictConfig` (what the framework pages show)."""

from __future__ import annotations

import importlib.util
import json
import logging
import logging.config
import sys
from collections.abc import Iterator

import pytest

from zentitle_stripe import Provisioner
from zentitle_stripe.logging import JsonLogFormatter, dict_config
from zentitle_stripe.storage import MemoryStorage
from zentitle_stripe.testing import sign_stripe_payload

SECRET = "whsec_logging_config"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """dictConfig changes global loggers; put them back for the other tests' caplog."""
    names = ("zentitle_stripe", "myapp", "")
    saved = {
        name: (list(logger.handlers), logger.level, logger.propagate, logger.disabled)
        for name in names
        for logger in [logging.getLogger(name)]
    }
    yield
    for name, (handlers, level, propagate, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled


def refuse_one() -> None:
    provisioner = Provisioner(webhook_secrets=[SECRET], storage=MemoryStorage())
    body, header = sign_stripe_payload({"id": "evt_1"}, "whsec_someone_else")
    assert provisioner.handle_event(body, header).status == 400


def test_dict_config_prints_one_json_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(dict_config())
    refuse_one()
    (line,) = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "zentitle_stripe"
    assert entry["status"] == 400
    assert entry["outcome"] == "failed"
    assert entry["detail"].startswith("signature does not match")
    assert entry["diagnosis"].startswith("no v1 signature matched any of 1 secret ")
    assert entry["message"].startswith("stripe webhook, not recorded: 400 failed")
    assert entry["time"].endswith("Z")
    assert SECRET not in line


def test_text_format_and_level(capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(dict_config("error", log_format="text"))
    refuse_one()  # a WARNING: below the level
    assert capsys.readouterr().err == ""
    logging.config.dictConfig(dict_config("warning", log_format="text"))
    refuse_one()
    (line,) = capsys.readouterr().err.splitlines()
    assert " WARNING zentitle_stripe: stripe webhook, not recorded: 400 failed" in line


def test_other_loggers_and_the_root(capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(dict_config(loggers=("zentitle_stripe", "myapp", "")))
    logging.getLogger("myapp").info("hello", extra={"event_id": "evt_9", "password": "x"})
    logging.getLogger("other").warning("from the root")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["message"] == "hello"
    assert first["event_id"] == "evt_9"
    assert "password" not in first  # only the library's field names are copied
    assert second["logger"] == "other"


def test_a_traceback_is_one_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), None)
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonLogFormatter().format(record))
    assert entry["message"] == "failed"
    assert "ValueError: boom" in entry["error"]


@pytest.mark.skipif(importlib.util.find_spec("django") is None, reason="needs Django")
def test_the_django_example_settings_logging(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.utils.log import configure_logging

    from tests.support import EXAMPLES
    from tests.support.apps import configure_django

    configure_django()
    for name in ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET", "ZENTITLE_API_URL"):
        monkeypatch.setenv(name, "x")
    for name in ("ZENTITLE_TOKEN_URL", "ZENTITLE_TENANT_ID", "ZENTITLE_CLIENT_ID"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("ZENTITLE_CLIENT_SECRET", "x")
    namespace: dict[str, object] = {}
    exec((EXAMPLES / "django_settings.py").read_text(), namespace)  # noqa: S102
    # What Django does with settings.LOGGING at setup.
    configure_logging("logging.config.dictConfig", namespace["LOGGING"])
    refuse_one()
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["status"] == 400
