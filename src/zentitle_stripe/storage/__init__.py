"""Pluggable storage: the [`Storage`][zentitle_stripe.storage.Storage] protocol and the
built-in backends.

Pick one with a URL (`ZENTITLE_STRIPE_STORAGE`):

- `sqlite:///path/to/file.db` (default `sqlite:///zentitle_stripe.db`): stdlib, WAL,
  safe across threads and processes on one machine; `?synchronous=full` syncs every
  commit to disk, so no event answered 200 is lost on a power loss (see
  [`SQLiteStorage`][zentitle_stripe.storage.SQLiteStorage]);
- `memory://`: one process, nothing persisted (tests, demos);
- `postgresql://...`: several machines (extra `postgres`).
"""

from __future__ import annotations

import urllib.parse

from ..exceptions import ConfigurationError
from ._base import (
    Claim,
    ClaimResult,
    EventAttempt,
    EventRecord,
    EventStatus,
    NewEvent,
    Storage,
    SubscriptionState,
    check_state_write,
    decide_claim,
)
from ._existing import check_sqlite_exists
from ._history import stuck_events
from ._hooks import HookRun, HookStatus, HookStorage, StoredOutcome
from ._queue import QueueStats, QueueStorage
from ._redact import redact_url
from .memory import MemoryStorage
from .sqlite import SYNCHRONOUS, SQLiteStorage, Synchronous

__all__ = [
    "DEFAULT_STORAGE_URL",
    "Claim",
    "ClaimResult",
    "EventAttempt",
    "EventRecord",
    "EventStatus",
    "HookRun",
    "HookStatus",
    "HookStorage",
    "MemoryStorage",
    "NewEvent",
    "QueueStats",
    "QueueStorage",
    "SQLiteStorage",
    "Storage",
    "StoredOutcome",
    "SubscriptionState",
    "check_state_write",
    "check_storage_url",
    "decide_claim",
    "open_storage",
    "redact_url",
    "stuck_events",
]

DEFAULT_STORAGE_URL = "sqlite:///zentitle_stripe.db"


def open_storage(
    url: str, *, setting: str = "ZENTITLE_STRIPE_STORAGE", existing: bool = False
) -> Storage:
    """Open the backend a storage URL names; a bad URL raises
    [`ConfigurationError`][zentitle_stripe.exceptions.ConfigurationError].

    `existing=True` is for readers (`events`, `doctor`): they must find what the app
    wrote, so nothing is created: a missing SQLite file, a file without the tables,
    `memory://` (empty in every new process) or a PostgreSQL database without the schema
    is a `ConfigurationError` naming the storage (redacted) and what to do, instead of an
    empty storage that answers "no events".
    """
    scheme, rest = check_storage_url(url, setting=setting)
    if scheme == "memory":
        if existing:
            raise ConfigurationError(
                f"{setting} is memory://, which starts empty in every process, so there is "
                "nothing to read here: point it at the storage your app writes "
                "(sqlite:///path/to/file.db or postgresql://...)"
            )
        return MemoryStorage()
    if scheme == "sqlite":
        path, synchronous = _sqlite_target(rest, setting)
        if existing:
            check_sqlite_exists(path, setting)
        return SQLiteStorage(path, synchronous=synchronous)
    from .postgres import PostgresStorage

    return PostgresStorage(f"{scheme}://{rest}", create_schema=not existing)


def check_storage_url(url: str, *, setting: str = "ZENTITLE_STRIPE_STORAGE") -> tuple[str, str]:
    """`(scheme, rest)` of a storage URL that a built-in backend can open, without opening
    it (Django's system checks); a bad URL raises `ConfigurationError`."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()  # RFC 3986: schemes are case-insensitive (SQLITE:///x.db)
    if not sep:
        raise ConfigurationError(
            f"{setting} must be a URL such as sqlite:///zentitle_stripe.db, memory:// or "
            f"postgresql://user@host/db; got {redact_url(url)!r}"
        )
    if scheme == "sqlite" and not rest.removeprefix("/"):
        raise ConfigurationError(f"{setting} names no SQLite file: use sqlite:///path.db")
    if scheme not in ("memory", "sqlite", "postgresql", "postgres"):
        raise ConfigurationError(
            f"{setting} has an unknown scheme {scheme!r}: use sqlite://, memory:// or postgresql://"
        )
    if scheme == "sqlite":
        _sqlite_target(rest, setting)
    return scheme, rest


def _sqlite_target(rest: str, setting: str) -> tuple[str, Synchronous]:
    """The file and the `synchronous` option of a `sqlite://` URL's remainder.

    `sqlite:///relative.db` -> `relative.db`; `sqlite:////abs/path.db` -> `/abs/path.db`;
    `?synchronous=full` (or `normal`, the default) is the only option.
    """
    path = rest[1:] if rest.startswith("/") else rest
    path, _, query = path.partition("?")
    if not path:
        raise ConfigurationError(f"{setting} names no SQLite file: use sqlite:///path.db")
    synchronous: Synchronous = "normal"
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if name != "synchronous" or value.lower() not in SYNCHRONOUS:
            raise ConfigurationError(
                f"{setting} has an unknown SQLite option {name}={value!r}: the only one is "
                "synchronous=normal (the default) or synchronous=full (every commit synced "
                "to disk: no event answered 200 is lost on a power loss)"
            )
        synchronous = "full" if value.lower() == "full" else "normal"
    return path, synchronous
