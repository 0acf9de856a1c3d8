"""SQLite storage (stdlib `sqlite3`): the embedded default.

WAL mode lets readers run beside one writer; every write (claims, finishes, locks, state)
is one statement in autocommit or runs inside `BEGIN IMMEDIATE`, which takes SQLite's
write lock first, so each decision holds across threads *and* processes on one machine.
Each thread gets its own connection; WAL checkpoints run in a background thread
([`_checkpoint`][zentitle_stripe.storage._checkpoint]), not inside a request's commit.

Durability: `synchronous="normal"` (the default) syncs the log to disk at each
checkpoint, not at each commit. A commit survives a crash of the process; on a power
loss or an operating-system crash the last transactions (up to about a second, or 200
commits) may be lost, never the database's consistency. An event answered 200 in that
window may be lost with them, and Stripe does not resend an event it got a 200 for:
`zentitle-stripe reconcile` fetches such events again. `synchronous="full"`
(`sqlite:///path.db?synchronous=full`) syncs every commit: no acknowledged event is lost
on power loss, at the price of one disk sync per write.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from ..exceptions import StorageError
from ._backend import ClaimRequest, Finish
from ._base import Claim, ClaimResult, EventRecord, NewEvent
from ._checkpoint import Checkpointer
from ._history import SQLITE_HISTORY_SCHEMA
from ._hooks import HOOK_TABLES, SQLHooks
from ._queue import SQLQueue, claim_due
from ._sql import (
    INSERT_EVENT,
    SELECT_EVENT,
    TAKE_OVER_EVENT,
    Row,
    SQLStorage,
    record_in,
    take_over_params,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStorage"]

SCHEMA_VERSION = 6
"""1: the initial schema; 2: the attempt history (`zs_event_attempts` and its triggers);
3: outcome hooks (`zs_outcomes`, `zs_hook_runs`); 4: the trigger that writes a settled
event's attempt (`zs_events_settled`); 5: a settled event's attempt implied by its row,
written only when the row changes (`zs_events_settled_taken`); 6: one index of the
events not done (`zs_events_open`) in place of the indexes of every event by status and
by time, so recording a settled event writes two b-trees, not four (listings go by
`rowid`, the order events were recorded in)."""

Synchronous = Literal["normal", "full"]
"""SQLite's `synchronous` setting in WAL mode (see the module for what each keeps)."""
SYNCHRONOUS: tuple[Synchronous, ...] = ("normal", "full")

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
DROP INDEX IF EXISTS zs_events_received;
DROP INDEX IF EXISTS zs_events_status;
CREATE INDEX IF NOT EXISTS zs_events_open ON zs_events (status) WHERE status <> 'done';
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


_SELECT = SELECT_EVENT.replace("%s", "?")
_INSERT = INSERT_EVENT.replace("%s", "?")
_TAKE_OVER = TAKE_OVER_EVENT.replace("%s", "?")
_LOOP_WAIT = 0.002
"""Seconds `try_record_settled` waits for this process's writer lock. A writer holds it
for tens of µs, once it has the GIL back, and the wait hands the GIL over; without it,
one delivery in a thread makes the next ones find the lock held and go to threads too,
which snowballs (most deliveries in threads, 0.6x the throughput). A checkpoint holds it
longer: past the wait, the delivery goes to a thread."""
_NO_FILE = ("", ":memory:")
_JOURNAL_LIMIT = 64 * 1024 * 1024
"""Bytes the log file is truncated to when it restarts (after a long storm)."""

_WRITERS: dict[str, threading.Lock] = {}
_WRITERS_LOCK = threading.Lock()


def _writer_lock(path: str) -> threading.Lock:
    """The in-process lock that serialises the write transactions on one database file.

    SQLite's busy handler sleeps and retries instead of queueing, so threads contending
    for its write lock wait far longer than the writes take (tails of seconds under
    load); a lock per file queues them fairly in the process. Other processes still
    meet SQLite's own lock and `busy_timeout`.
    """
    if path in _NO_FILE or path.startswith("file:"):
        return threading.Lock()  # a database of this object alone (or one we cannot name)
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(os.path.realpath(path), threading.Lock())


@functools.lru_cache(maxsize=32)
def _qmark(statement: str) -> str:
    """The shared statements' `%s` placeholders as sqlite3's `?`."""
    return statement.replace("%s", "?")


def _connect(path: str, busy_timeout: float, synchronous: Synchronous) -> sqlite3.Connection:
    """A connection set up as every connection of the storage is (a module function, so
    the checkpoint thread can open one without holding the storage)."""
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout,
        isolation_level=None,  # we issue BEGIN ourselves
        check_same_thread=False,  # only so close() may run on any thread
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # the Checkpointer's thread does it
    conn.execute(f"PRAGMA journal_size_limit={_JOURNAL_LIMIT}")
    return conn


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Whether `exc` is SQLite's "busy" (locked by another connection), not a failure."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    return code in (5, 6) if code is not None else "locked" in str(exc)  # BUSY, LOCKED


def settled_row(event: NewEvent, owner: str, outcome: str, detail: str, now: float) -> Row:
    """The `EVENT_COLUMNS` row of an event recorded done at once: `claimed_by` keeps the
    settling owner, so the row implies its one attempt (see `storage._history`)."""
    return (
        *(event.event_id, event.source, event.type, "done", 1, event.payload),
        *(event.created, event.api_version, outcome, detail, None, now, now, owner, None),
    )


class SQLiteStorage(SQLHooks, SQLQueue, SQLStorage):
    """A [`Storage`][zentitle_stripe.storage.Storage] in one SQLite file."""

    _insertion_order = "rowid"
    _newest_first = "rowid DESC"
    """Events are recorded as they are received, so the table's own order is theirs; an
    index of every event by time would cost each insert two more pages."""
    _ping = "SELECT 1 FROM zs_meta LIMIT 1"

    def __init__(
        self, path: str, *, busy_timeout: float = 10.0, synchronous: Synchronous = "normal"
    ) -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be 'normal' or 'full', not {synchronous!r}")
        self.path = path
        self.synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer = _writer_lock(path)
        connect = functools.partial(_connect, path, busy_timeout, synchronous)
        # A memory database is one per connection: nothing for a thread to checkpoint.
        self._checkpointer = Checkpointer(connect, enabled=path not in _NO_FILE)
        with self._errors("create the schema"):
            # Constants only: no input reaches this SQL.
            record = _RECORD_VERSION.format(version=SCHEMA_VERSION)
            script = f"BEGIN IMMEDIATE;{_SCHEMA}{record}COMMIT;"
            self._conn().executescript(script)

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r})"

    # -- plumbing ---------------------------------------------------------------------

    def _conn(self, *, wait: bool = True) -> sqlite3.Connection:
        """This thread's connection; `wait=False`: its other one, whose busy timeout is
        0, so a write lock held by another process fails at once instead of waiting."""
        name = "conn" if wait else "nowait"
        conn: sqlite3.Connection | None = getattr(self._local, name, None)
        if conn is None:
            conn = _connect(self.path, self._busy_timeout if wait else 0.0, self.synchronous)
            setattr(self._local, name, conn)
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(doing, exc) from exc

    def _error(self, doing: str, exc: sqlite3.Error) -> StorageError:
        return StorageError(f"SQLite storage {self.path!r} could not {doing}: {exc}")

    @contextmanager
    def _writing(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Hold this process's writer lock of the file (see `_writer_lock`), waiting at
        most the busy timeout: the block holds it only for its statements, never across
        a remote call. Counts the write for the checkpoint thread."""
        if not self._writer.acquire(timeout=self._busy_timeout):
            raise sqlite3.OperationalError("database is locked (by this process's writers)")
        try:
            self._checkpointer.before_write(conn)
            yield
        finally:
            self._writer.release()
        self._checkpointer.committed()

    @contextmanager
    def _write(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Run the block in `BEGIN IMMEDIATE` ... `COMMIT` (rollback on error)."""
        with self._writing(conn):
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
            with self._writing(conn):
                return conn.execute(_qmark(statement), params).rowcount

    def record_settled(
        self, event: NewEvent, *, owner: str, outcome: str, detail: str, now: float
    ) -> bool:
        """One statement in autocommit: the insert, which implies the attempt. A
        redelivery's insert changes nothing (`False`); the claim path then reads it."""
        # `_errors` and `_writing` written out: this is every settled event's one write,
        # and two context managers cost a tenth of it.
        row = settled_row(event, owner, outcome, detail, now)
        try:
            conn = self._conn()
            if not self._writer.acquire(timeout=self._busy_timeout):
                raise sqlite3.OperationalError("database is locked (by this process's writers)")
            try:
                self._checkpointer.before_write(conn)
                changed = conn.execute(_INSERT, row).rowcount
            finally:
                self._writer.release()
        except sqlite3.Error as exc:
            raise self._error("record an event", exc) from exc
        self._checkpointer.committed()
        return bool(changed == 1)

    def try_record_settled(
        self, event: NewEvent, *, owner: str, outcome: str, detail: str, now: float
    ) -> bool | None:
        """`record_settled` if it can be done without waiting, else `None` (nothing
        written): another writer of this process kept the lock past `_LOOP_WAIT`,
        another process holds SQLite's write lock, or a checkpoint is due. An event loop
        calls it in place of handing the event to a thread
        (`Provisioner.handle_event_nowait`)."""
        if not self._writer.acquire(timeout=_LOOP_WAIT):
            return None
        try:
            if self._checkpointer.due:
                return None
            row = settled_row(event, owner, outcome, detail, now)
            try:
                changed = self._conn(wait=False).execute(_INSERT, row).rowcount
            except sqlite3.Error as exc:
                if isinstance(exc, sqlite3.OperationalError) and _busy(exc):
                    return None
                raise self._error("record an event", exc) from exc
        finally:
            self._writer.release()
        self._checkpointer.committed()
        return changed == 1

    def _record_settled(self, request: ClaimRequest, finish: Finish) -> bool:
        event, now = request.event, request.now
        return self.record_settled(
            event, owner=finish.owner, outcome=finish.outcome, detail=finish.detail, now=now
        )

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
            # Fast path without the write lock: duplicates and in-flight events are the
            # common redelivery case and need no write.
            found = record_in(conn.execute(_SELECT, request.key).fetchall())
            refusal = request.refusal(found)
            if refusal is not None:
                return refusal
            if found is None:
                claimed = request.claimed(None)
                # First delivery: the insert, in autocommit, is the decision.
                with self._writing(conn):
                    if conn.execute(_INSERT, claimed.to_row()).rowcount == 1:
                        return Claim(ClaimResult.CLAIMED, claimed)
            with self._write(conn):  # a take-over, or a racing insert won: decide again
                record = record_in(conn.execute(_SELECT, request.key).fetchall())
                refusal = request.refusal(record)
                if refusal is not None:
                    return refusal
                claimed = request.claimed(record)
                conn.execute(_TAKE_OVER, take_over_params(claimed))
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
        self._checkpointer.close()
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
