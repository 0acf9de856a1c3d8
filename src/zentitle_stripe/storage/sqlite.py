"""SQLite storage (stdlib ``sqlite3``): the embedded default.

WAL mode lets readers run beside one writer; every decision that must be atomic
(claims, locks) runs inside ``BEGIN IMMEDIATE``, which takes SQLite's write lock first,
so it holds across threads *and* processes on one machine. Each thread gets its own
connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..exceptions import StorageError
from ._base import (
    EVENT_COLUMNS,
    Claim,
    ClaimResult,
    EventRecord,
    EventStatus,
    NewEvent,
    SubscriptionState,
    decide_claim,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStorage"]

SCHEMA_VERSION = 1

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


class SQLiteStorage:
    """A :class:`~zentitle_stripe.storage.Storage` in one SQLite file."""

    def __init__(self, path: str, *, busy_timeout: float = 10.0) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        with self._errors("create the schema"):
            # Constants only: no input reaches this SQL.
            script = f"BEGIN IMMEDIATE;{_SCHEMA}INSERT OR IGNORE INTO zs_meta (key, value) "
            script += f"VALUES ('schema_version', '{SCHEMA_VERSION}');COMMIT;"
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
    def _write(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Run the block in ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _select_event(
        self, conn: sqlite3.Connection, source: str, event_id: str
    ) -> EventRecord | None:
        row = conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM zs_events WHERE source = ? AND event_id = ?",  # noqa: S608
            (source, event_id),
        ).fetchone()
        return EventRecord.from_row(row) if row else None

    # -- events ------------------------------------------------------------------------

    def claim_event(
        self,
        event: NewEvent,
        *,
        owner: str,
        lease_seconds: float,
        now: float,
        reclaim_done: bool = False,
    ) -> Claim:
        with self._errors("claim an event"):
            conn = self._conn()
            # Fast path without the write lock: duplicates and in-flight events are the
            # common redelivery case and need no write.
            record = self._select_event(conn, event.source, event.event_id)
            result = decide_claim(record, now=now, reclaim_done=reclaim_done)
            if result is not ClaimResult.CLAIMED:
                assert record is not None
                return Claim(result, record)
            with self._write(conn):
                record = self._select_event(conn, event.source, event.event_id)
                result = decide_claim(record, now=now, reclaim_done=reclaim_done)
                if result is not ClaimResult.CLAIMED:
                    assert record is not None
                    return Claim(result, record)
                if record is None:
                    conn.execute(
                        "INSERT INTO zs_events (source, event_id, type, status, attempts, "
                        "payload, created, api_version, received_at, updated_at, claimed_by, "
                        "lease_expires) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            event.source,
                            event.event_id,
                            event.type,
                            EventStatus.PROCESSING.value,
                            event.payload,
                            event.created,
                            event.api_version,
                            now,
                            now,
                            owner,
                            now + lease_seconds,
                        ),
                    )
                else:
                    conn.execute(
                        "UPDATE zs_events SET status = ?, attempts = attempts + 1, "
                        "updated_at = ?, claimed_by = ?, lease_expires = ? "
                        "WHERE source = ? AND event_id = ?",
                        (
                            EventStatus.PROCESSING.value,
                            now,
                            owner,
                            now + lease_seconds,
                            event.source,
                            event.event_id,
                        ),
                    )
                claimed = self._select_event(conn, event.source, event.event_id)
            assert claimed is not None
            return Claim(ClaimResult.CLAIMED, claimed)

    def finish_event(
        self,
        event_id: str,
        source: str,
        *,
        owner: str,
        status: EventStatus,
        outcome: str,
        detail: str,
        error: str | None,
        now: float,
    ) -> bool:
        with self._errors("finish an event"):
            conn = self._conn()
            with self._write(conn):
                cursor = conn.execute(
                    "UPDATE zs_events SET status = ?, outcome = ?, detail = ?, last_error = ?, "
                    "updated_at = ?, claimed_by = NULL, lease_expires = NULL "
                    "WHERE source = ? AND event_id = ? AND status = ? AND claimed_by = ?",
                    (
                        status.value,
                        outcome,
                        detail,
                        error,
                        now,
                        source,
                        event_id,
                        EventStatus.PROCESSING.value,
                        owner,
                    ),
                )
            return cursor.rowcount == 1

    def get_event(self, event_id: str, source: str = "stripe") -> EventRecord | None:
        with self._errors("read an event"):
            return self._select_event(self._conn(), source, event_id)

    def list_events(
        self,
        *,
        status: EventStatus | None = None,
        source: str | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        clauses, params = [], []
        if status is not None:
            clauses.append("status = ?")
            params.append(status.value)
        if source is not None:
            clauses.append("source = ?")
            params.append(source)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._errors("list events"):
            rows = self._conn().execute(
                f"SELECT {EVENT_COLUMNS} FROM zs_events {where} "  # noqa: S608
                "ORDER BY received_at DESC, rowid DESC LIMIT ?",
                (*params, limit),
            )
            return [EventRecord.from_row(row) for row in rows]

    # -- subscriptions and customers -------------------------------------------------------

    def get_subscription(self, subscription_id: str) -> SubscriptionState | None:
        with self._errors("read a subscription"):
            row = (
                self._conn()
                .execute(
                    "SELECT state FROM zs_subscriptions WHERE subscription_id = ?",
                    (subscription_id,),
                )
                .fetchone()
            )
        return SubscriptionState.from_json(row[0]) if row else None

    def put_subscription(self, state: SubscriptionState) -> None:
        with self._errors("store a subscription"):
            self._conn().execute(
                "INSERT OR REPLACE INTO zs_subscriptions (subscription_id, state) VALUES (?, ?)",
                (state.subscription_id, state.to_json()),
            )

    def get_customer_link(self, stripe_customer_id: str) -> str | None:
        with self._errors("read a customer link"):
            row = (
                self._conn()
                .execute(
                    "SELECT zentitle_customer_id FROM zs_customers WHERE stripe_customer_id = ?",
                    (stripe_customer_id,),
                )
                .fetchone()
            )
        return str(row[0]) if row else None

    def put_customer_link(self, stripe_customer_id: str, zentitle_customer_id: str) -> None:
        with self._errors("store a customer link"):
            self._conn().execute(
                "INSERT OR REPLACE INTO zs_customers (stripe_customer_id, zentitle_customer_id) "
                "VALUES (?, ?)",
                (stripe_customer_id, zentitle_customer_id),
            )

    # -- locks -----------------------------------------------------------------------------

    def acquire_lock(self, name: str, *, owner: str, lease_seconds: float, now: float) -> bool:
        with self._errors("take a lock"):
            conn = self._conn()
            with self._write(conn):
                cursor = conn.execute(
                    "INSERT INTO zs_locks (name, owner, expires) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                    "expires = excluded.expires WHERE zs_locks.owner = excluded.owner "
                    "OR zs_locks.expires <= ?",
                    (name, owner, now + lease_seconds, now),
                )
            return cursor.rowcount == 1

    def release_lock(self, name: str, *, owner: str) -> None:
        with self._errors("release a lock"):
            self._conn().execute("DELETE FROM zs_locks WHERE name = ? AND owner = ?", (name, owner))

    # -- lifecycle -------------------------------------------------------------------------

    def ping(self) -> None:
        with self._errors("answer a health check"):
            self._conn().execute("SELECT 1 FROM zs_meta LIMIT 1").fetchall()

    def close(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
