"""Storage URLs never show their password: in `repr()`, error messages or logs.

Issue 13, case 5: a PostgreSQL password given as `?password=` was printed by `repr()`,
error messages and logs. Every form libpq reads a secret from is masked by the one
function, `redact_url`, which `Settings`, the storage backends and their errors use.
"""

from __future__ import annotations

import logging

import attrs
import pytest

from tests.wiring.test_config import ENV
from zentitle_stripe.config import Settings
from zentitle_stripe.exceptions import ConfigurationError, StorageError
from zentitle_stripe.storage import open_storage, redact_url

CLOSED = "127.0.0.1:1"  # nothing listens on port 1: every connect is refused at once

# (url, its secrets, what must stay visible)
FORMS = [
    (f"postgresql://app:hunter2@{CLOSED}/zs", ["hunter2"], [f"app:***@{CLOSED}/zs"]),
    (
        f"postgresql://app@{CLOSED}/zs?password=hunter2&sslmode=disable",
        ["hunter2"],
        ["password=***", "sslmode=disable"],
    ),
    (
        f"postgresql://app@{CLOSED}/zs?sslpassword=hunter2&sslkey=/etc/keys/app.key"
        "&passfile=/etc/pgpass",
        ["hunter2"],
        ["sslpassword=***", "sslkey=/etc/keys/app.key", "passfile=/etc/pgpass"],
    ),
    (f"postgresql://app@{CLOSED}/zs?pass%77ord=hunter2", ["hunter2"], ["pass%77ord=***"]),
    (f"postgresql://app:hun%74er2@{CLOSED}/zs", ["hun%74er2", "hunter2"], ["app:***@"]),
    (f"postgresql://app:hun@t/er2@{CLOSED}/zs", ["hun@t/er2", "er2"], [f"***@{CLOSED}/zs"]),
    (f"postgresql://app:hun?ter2@{CLOSED}/zs", ["hun?ter2", "ter2"], [f"***@{CLOSED}/zs"]),
    (
        "host=127.0.0.1 port=1 user=app password=hunter2 dbname=zs",
        ["hunter2"],
        ["host=127.0.0.1 port=1 user=app password=*** dbname=zs"],
    ),
    (
        "host=127.0.0.1 port=1 password = 'hunter2 \\' quoted' dbname=zs",
        ["hunter2", "quoted"],
        ["password = *** dbname=zs"],
    ),
]
IDS = [
    "userinfo",
    "query",
    "sslpassword",
    "encoded-key",
    "encoded-password",
    "unencoded-at-slash",
    "unencoded-question",
    "conninfo",
    "conninfo-quoted",
]


def assert_hidden(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, text


@pytest.mark.parametrize(("url", "secrets", "visible"), FORMS, ids=IDS)
def test_every_form_of_a_password_is_masked(
    url: str, secrets: list[str], visible: list[str]
) -> None:
    redacted = redact_url(url)
    assert_hidden(redacted, secrets)
    for part in visible:
        assert part in redacted
    assert redact_url(redacted) == redacted


@pytest.mark.parametrize(
    "url", ["sqlite:///zentitle_stripe.db", "memory://", f"postgresql://app@{CLOSED}/zs?x=a@b"]
)
def test_urls_without_a_password_are_shown_as_they_are(url: str) -> None:
    assert redact_url(url) == url


@pytest.mark.parametrize(("url", "secrets", "visible"), FORMS, ids=IDS)
def test_settings_repr_masks_every_form(url: str, secrets: list[str], visible: list[str]) -> None:
    settings = attrs.evolve(Settings.from_env(ENV), storage_url=url)
    assert_hidden(repr(settings) + str(settings), secrets)


@pytest.mark.parametrize(("url", "secrets", "visible"), FORMS, ids=IDS)
def test_failing_connects_never_show_the_password(
    url: str, secrets: list[str], visible: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("psycopg", reason="needs the 'postgres' extra")
    from zentitle_stripe.storage.postgres import PostgresStorage

    caplog.set_level(logging.DEBUG)
    storage = PostgresStorage(url, timeout=0.2)
    try:
        with pytest.raises(StorageError, match="could not answer a health check") as info:
            storage.ping()
    finally:
        storage.close()
    assert_hidden(repr(storage), secrets)
    assert_hidden(str(info.value), secrets)
    assert redact_url(url) in str(info.value)
    assert_hidden(caplog.text, secrets)
    assert_hidden(" ".join(str(r.args) for r in caplog.records), secrets)


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("host=db password=hunter2 tail9 dbname=x", ["hunter2", "tail9"]),
        ("postgresql://app:hunter2 tail9@db/x", ["hunter2", "tail9"]),
        ("host=db password='hunter2 tail9", ["hunter2", "tail9"]),
        ("postgresql://app:hunter2@db/x?bogus=1", ["hunter2"]),
    ],
)
def test_malformed_urls_are_named_without_their_password(url: str, secrets: list[str]) -> None:
    """libpq quotes the part it could not read, which may be the tail of a password."""
    pytest.importorskip("psycopg", reason="needs the 'postgres' extra")
    from zentitle_stripe.storage.postgres import PostgresStorage

    with pytest.raises(ConfigurationError, match="not a valid PostgreSQL URL") as info:
        PostgresStorage(url)
    assert_hidden(str(info.value), secrets)
    assert info.value.__cause__ is None  # a traceback would print the driver's message


def test_a_url_without_a_scheme_is_named_without_its_password() -> None:
    with pytest.raises(ConfigurationError, match="must be a URL") as info:
        open_storage("host=db password=hunter2")
    assert "hunter2" not in str(info.value)
    assert "password=***" in str(info.value)
