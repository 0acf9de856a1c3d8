"""SQLite storage (stdlib `sqlite3`): the embedded default.

WAL mode lets readers run beside one writer; every write (claims, finishes, locks, state)
runs inside `BEGIN IMMEDIATE`, which takes SQLite's write lock first, so each decision
holds across threads *and* processes on one machine. Each thread gets its own connection.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..exceptions import StorageError
from ._backend import ClaimRequest, Finish
from ._base import Claim, ClaimResult, EventRecord
from ._history import SQLITE_HISTORY_SCHEMA
from ._hooks import HOOK_TABLES, SQLHooks
from ._queue import SQLQueue, claim_due
from ._sql import (
    INSERT_EVENT,
    SELECT_EVENT,
    SETTLED_ATTEMPT,
    TAKE_OVER_EVENT,
    Row,
    SQLStorage,
    record_in,
    settled_rows,
    take_over_params,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStorage"]

SCHEMA_VERSION = 3
"""1: the initial schema; 2: the attempt history (`zs_event_attempts` and its triggers);
3: outcome hooks (`zs_outcomes`, `zs_hook_runs`)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS zs_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS zs_events (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    payload BLOB NOT NULL,
    created INTEGER,
    api_version TEXT,
    outcome TEXT,
    detail TEXT,
    last_error TEXT,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    claimed_by TEXT,
    lease_expires REAL,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX IF NOT EXISTS zs_events_received ON zs_events (received_at);
CREATE INDEX IF NOT EXISTS zs_events_status ON zs_events (status, received_at);
CREATE TABLE IF NOT EXISTS zs_subscriptions (
    subscription_id TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS zs_customers (
    stripe_customer_id TEXT PRIMARY KEY,
    zentitle_customer_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS zs_locks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
);
"""
# Every statement is `IF NOT EXISTS`: opening a file of an older version brings it up to
# date, and the recorded version only ever goes up.
_SCHEMA += SQLITE_HISTORY_SCHEMA
_SCHEMA += HOOK_TABLES.format(real="REAL")
_RECORD_VERSION = (
    "INSERT INTO zs_meta (key, value) VALUES ('schema_version', '{version}') "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value "
    "WHERE CAST(zs_meta.value AS INTEGER) < {version};"
)


# `changes()`: only when the event's insert above, in the same transaction, took effect.
_SETTLED_ATTEMPT = f"{SETTLED_ATTEMPT} WHERE changes() = 1"

_WRITERS: dict[str, threading.Lock] = {}
_WRITERS_LOCK = threading.Lock()


def _writer_lock(path: str) -> threading.Lock:
    """The in-process lock that serialises the write transactions on one database file.

    SQLite's busy handler sleeps and retries instead of queueing, so threads contending
    for its write lock wait far longer than the writes take (tails of seconds under
    load); a lock per file queues them fairly in the process. Other processes still
    meet SQLite's own lock and `busy_timeout`.
    """
    if path == ":memory:" or path.startswith("file:") or not path:
        return threading.Lock()  # a database of this object alone (or one we cannot name)
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(os.path.realpath(path), threading.Lock())


@functools.lru_cache(maxsize=32)
def _qmark(statement: str) -> str:
    """The shared statements' `%s` placeholders as sqlite3's `?`."""
    return statement.replace("%s", "?")


class SQLiteStorage(SQLHooks, SQLQueue, SQLStorage):
    """A [`Storage`][zentitle_stripe.storage.Storage] in one SQLite file."""

    _insertion_order = "rowid"
    _ping = "SELECT 1 FROM zs_meta LIMIT 1"

    def __init__(self, path: str, *, busy_timeout: float = 10.0) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer = _writer_lock(path)
        with self._errors("create the schema"):
            # Constants only: no input reaches this SQL.
            record = _RECORD_VERSION.format(version=SCHEMA_VERSION)
            script = f"BEGIN IMMEDIATE;{_SCHEMA}{record}COMMIT;"
            self._conn().executescript(script)

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r})"

    # -- plumbing ---------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,  # we issue BEGIN ourselves
                check_same_thread=False,  # only so close() may run on any thread
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite storage {self.path!r} could not {doing}: {exc}") from exc

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold this process's writer lock of the file (see `_writer_lock`), waiting at
        most the busy timeout: the block holds it only for its statements, never across
        a remote call."""
        if not self._writer.acquire(timeout=self._busy_timeout):
            raise sqlite3.OperationalError("database is locked (by this process's writers)")
        try:
            yield
        finally:
            self._writer.release()

    @contextmanager
    def _write(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Run the block in `BEGIN IMMEDIATE` ... `COMMIT` (rollback on error)."""
        with self._writing():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _fetch(self, doing: str, statement: str, params: Sequence[Any]) -> Sequence[Row]:
        with self._errors(doing):
            return self._conn().execute(_qmark(statement), params).fetchall()

    def _change(self, doing: str, statement: str, params: Sequence[Any]) -> int:
        with self._errors(doing):
            conn = self._conn()
            # One statement in autocommit is its own transaction (its triggers included),
            # and takes the write lock before it reads: no BEGIN/COMMIT round needed.
            with self._writing():
                return conn.execute(_qmark(statement), params).rowcount

    def _record_settled(self, request: ClaimRequest, finish: Finish) -> bool:
        record, attempt = settled_rows(request, finish)
        with self._errors("record an event"):
            conn = self._conn()
            # A redelivery (already recorded) needs no write lock: a plain read says so.
            if conn.execute(_qmark(SELECT_EVENT), request.key).fetchall():
                return False
            with self._write(conn):
                if conn.execute(_qmark(INSERT_EVENT), record.to_row()).rowcount != 1:
                    return False
                conn.execute(_qmark(_SETTLED_ATTEMPT), attempt)
            return True

    def _transact(
        self, doing: str, block: Callable[[Callable[[str, Sequence[Any]], int]], bool]
    ) -> bool:
        with self._errors(doing):
            conn = self._conn()
            with self._write(conn):
                return block(
                    lambda statement, params: conn.execute(_qmark(statement), params).rowcount
                )

    # -- events ------------------------------------------------------------------------

    def _claim(self, request: ClaimRequest) -> Claim:
        with self._errors("claim an event"):
            conn = self._conn()
            select = _qmark(SELECT_EVENT)
            # Fast path without the write lock: duplicates and in-flight events are the
            # common redelivery case and need no write.
            refusal = request.refusal(record_in(conn.execute(select, request.key).fetchall()))
            if refusal is not None:
                return refusal
            with self._write(conn):
                claimed = request.claimed(None)
                # First delivery: the insert is the decision (nothing to read again).
                if conn.execute(_qmark(INSERT_EVENT), claimed.to_row()).rowcount == 1:
                    return Claim(ClaimResult.CLAIMED, claimed)
                record = record_in(conn.execute(select, request.key).fetchall())
                refusal = request.refusal(record)
                if refusal is not None:
                    return refusal
                claimed = request.claimed(record)
                conn.execute(_qmark(TAKE_OVER_EVENT), take_over_params(claimed))
            return Claim(ClaimResult.CLAIMED, claimed)

    def claim_queued(self, *, owner: str, lease_seconds: float, now: float) -> EventRecord | None:
        with self._errors("claim a queued event"):
            conn = self._conn()
            with self._write(conn):  # one host: the write lock serialises the workers

                def run(statement: str, params: Sequence[Any]) -> Sequence[Row]:
                    return conn.execute(_qmark(statement), params).fetchall()

                return claim_due(run, owner=owner, lease_seconds=lease_seconds, now=now)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
