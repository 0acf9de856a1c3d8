"""PostgreSQL storage (psycopg 3 + psycopg_pool): for workers on several machines.

Exactly-once holds across processes and hosts because every decision is made by the
server: a claim is one transaction (``INSERT ... ON CONFLICT DO NOTHING``, else
``SELECT ... FOR UPDATE`` of the existing row), a lock is one ``INSERT ... ON CONFLICT
DO UPDATE ... WHERE`` statement. Connections are pooled and run in autocommit, so plain
reads (the common duplicate-redelivery case) hold no transaction open.

The schema (tables ``zs_*`` in the first schema of ``search_path``) is created or
upgraded on first use, under a transaction-scoped advisory lock so that several
workers starting at once against an empty database do not race. Set
``create_schema=False`` to leave that to ``zentitle-stripe migrate`` (:meth:`migrate`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..exceptions import ConfigurationError, MissingExtraError, StorageError
from . import redact_url
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

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError("zentitle_stripe.storage.postgres", "postgres") from exc

__all__ = ["SCHEMA_VERSION", "PostgresStorage"]

_Connection = psycopg.Connection[tuple[Any, ...]]

_MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the initial schema (mirrors SQLite's, plus an insertion sequence).
    """
    CREATE TABLE IF NOT EXISTS zs_meta (key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE IF NOT EXISTS zs_events (
        source text NOT NULL,
        event_id text NOT NULL,
        seq bigserial NOT NULL,
        type text NOT NULL,
        status text NOT NULL,
        attempts integer NOT NULL,
        payload bytea NOT NULL,
        created bigint,
        api_version text,
        outcome text,
        detail text,
        last_error text,
        received_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        claimed_by text,
        lease_expires double precision,
        PRIMARY KEY (source, event_id)
    );
    CREATE INDEX IF NOT EXISTS zs_events_received ON zs_events (received_at DESC, seq DESC);
    CREATE INDEX IF NOT EXISTS zs_events_status
        ON zs_events (status, received_at DESC, seq DESC);
    CREATE TABLE IF NOT EXISTS zs_subscriptions (
        subscription_id text PRIMARY KEY,
        state text NOT NULL
    );
    CREATE TABLE IF NOT EXISTS zs_customers (
        stripe_customer_id text PRIMARY KEY,
        zentitle_customer_id text NOT NULL
    );
    CREATE TABLE IF NOT EXISTS zs_locks (
        name text PRIMARY KEY,
        owner text NOT NULL,
        expires double precision NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(_MIGRATIONS)
"""The schema version this code writes and expects (stored in ``zs_meta``)."""

# Arbitrary constant key for pg_advisory_xact_lock ("zs_m"): serialises migrations.
_SCHEMA_LOCK_KEY = 0x7A735F6D


_SELECT_EVENT = f"SELECT {EVENT_COLUMNS} FROM zs_events WHERE source = %s AND event_id = %s"  # noqa: S608
_INSERT_EVENT = (
    "INSERT INTO zs_events (source, event_id, type, status, attempts, "  # noqa: S608
    "payload, created, api_version, received_at, updated_at, claimed_by, lease_expires) "
    "VALUES (%s, %s, %s, %s, 1, %s, %s, %s, %s, %s, %s, %s) "
    f"ON CONFLICT (source, event_id) DO NOTHING RETURNING {EVENT_COLUMNS}"
)
_TAKE_OVER_EVENT = (
    "UPDATE zs_events SET status = %s, attempts = attempts + 1, updated_at = %s, "  # noqa: S608
    "claimed_by = %s, lease_expires = %s WHERE source = %s AND event_id = %s "
    f"RETURNING {EVENT_COLUMNS}"
)


class PostgresStorage:
    """A :class:`~zentitle_stripe.storage.Storage` in a PostgreSQL database.

    ``url`` is a libpq URL or conninfo string (``postgresql://user:pw@host/db``);
    ``min_size``/``max_size`` bound the pool; ``timeout`` (seconds) caps the wait for a
    pooled connection and the connect attempt, so an unreachable server becomes a
    prompt :class:`~zentitle_stripe.exceptions.StorageError` rather than a hang.
    Constructing does not wait for the server: an app may start while it is down.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
        create_schema: bool = True,
    ) -> None:
        self._where = redact_url(url)
        self._timeout = timeout
        self._create_schema = create_schema
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        try:  # fail now on a malformed URL rather than time out on every call
            conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise ConfigurationError(
                f"{self._where} is not a valid PostgreSQL URL: {str(exc).strip()}"
            ) from exc
        # libpq's connect_timeout is whole seconds and treats < 2 as 2.
        connect_timeout = max(2, math.ceil(timeout))
        with self._errors("open a connection pool"):
            self._pool: ConnectionPool[_Connection] = ConnectionPool(
                url,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                kwargs={"autocommit": True, "connect_timeout": connect_timeout},
                # Drop connections a server restart broke instead of failing one call.
                check=ConnectionPool.check_connection,
                name="zentitle_stripe",
                open=True,
            )

    def __repr__(self) -> str:
        return f"PostgresStorage({self._where!r})"

    # -- plumbing ---------------------------------------------------------------------

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn driver and pool errors into StorageError naming the server, never the password."""
        try:
            yield
        except psycopg.Error as exc:
            reason = str(exc).strip()
            if isinstance(exc, PoolTimeout):
                # The pool retries connecting in the background and only logs why it fails.
                reason += (
                    " (server down, unreachable or refusing the login? "
                    "the 'psycopg.pool' log has the connect error)"
                )
            raise StorageError(
                f"PostgreSQL storage {self._where} could not {doing}: {reason}"
            ) from exc

    @contextmanager
    def _connection(self, doing: str) -> Iterator[_Connection]:
        """A pooled autocommit connection, with the schema known to be in place."""
        with self._errors(doing):
            if not self._schema_ready:
                self._prepare_schema()
            with self._pool.connection(timeout=self._timeout) as conn:
                yield conn

    def _prepare_schema(self) -> None:
        with self._schema_lock:
            if self._schema_ready:
                return
            if self._create_schema:
                self._migrate()
            else:
                found = self._read_version()
                if found != SCHEMA_VERSION:
                    raise StorageError(
                        f"PostgreSQL storage {self._where} has schema version {found}, "
                        f"this code needs {SCHEMA_VERSION}: run `zentitle-stripe migrate`"
                    )
            self._schema_ready = True

    @staticmethod
    def _version_in(conn: _Connection) -> int | None:
        row = conn.execute("SELECT to_regclass('zs_meta') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return None
        row = conn.execute("SELECT value FROM zs_meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else None

    def _read_version(self) -> int | None:
        with self._pool.connection(timeout=self._timeout) as conn:
            return self._version_in(conn)

    def _migrate(self) -> int:
        # Fast path: an up-to-date schema needs no lock and no DDL.
        if self._read_version() == SCHEMA_VERSION:
            return SCHEMA_VERSION
        with self._pool.connection(timeout=self._timeout) as conn, conn.transaction():
            # Held until commit, so a concurrent first start waits, then sees our tables.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            current = self._version_in(conn) or 0
            if current > SCHEMA_VERSION:
                raise StorageError(
                    f"PostgreSQL storage {self._where} has schema version {current}, newer "
                    f"than this code supports ({SCHEMA_VERSION}): upgrade zentitle-stripe"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                conn.execute(_MIGRATIONS[version - 1])
                conn.execute(
                    "INSERT INTO zs_meta (key, value) VALUES ('schema_version', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(version),),
                )
        return SCHEMA_VERSION

    # -- schema ------------------------------------------------------------------------

    def migrate(self) -> int:
        """Create or upgrade the schema; return its version. Safe to run repeatedly and
        concurrently (``zentitle-stripe migrate`` calls this)."""
        with self._errors("migrate the schema"), self._schema_lock:
            version = self._migrate()
            self._schema_ready = True
            return version

    def schema_version(self) -> int | None:
        """The schema version recorded in the database, or ``None`` if there is no schema."""
        with self._errors("read the schema version"):
            return self._read_version()

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
        key = (event.source, event.event_id)
        with self._connection("claim an event") as conn:
            # Fast path without locks: duplicates and in-flight events are the common
            # redelivery case and need no write.
            row = conn.execute(_SELECT_EVENT, key).fetchone()
            record = EventRecord.from_row(row) if row else None
            result = decide_claim(record, now=now, reclaim_done=reclaim_done)
            if result is not ClaimResult.CLAIMED:
                assert record is not None
                return Claim(result, record)
            with conn.transaction():
                # A concurrent insert of the same key makes this wait for that
                # transaction, then do nothing: exactly one inserter wins.
                row = conn.execute(
                    _INSERT_EVENT,
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
                ).fetchone()
                if row:
                    return Claim(ClaimResult.CLAIMED, EventRecord.from_row(row))
                # It exists: lock the row so the decision and the update are one step.
                row = conn.execute(f"{_SELECT_EVENT} FOR UPDATE", key).fetchone()
                if not row:  # events are never deleted; defensive only
                    raise StorageError(
                        f"PostgreSQL storage {self._where} lost event {key!r} while claiming it"
                    )
                record = EventRecord.from_row(row)
                result = decide_claim(record, now=now, reclaim_done=reclaim_done)
                if result is not ClaimResult.CLAIMED:
                    return Claim(result, record)
                row = conn.execute(
                    _TAKE_OVER_EVENT,
                    (EventStatus.PROCESSING.value, now, owner, now + lease_seconds, *key),
                ).fetchone()
            assert row is not None
            return Claim(ClaimResult.CLAIMED, EventRecord.from_row(row))

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
        with self._connection("finish an event") as conn:
            cursor = conn.execute(
                "UPDATE zs_events SET status = %s, outcome = %s, detail = %s, "
                "last_error = %s, updated_at = %s, claimed_by = NULL, lease_expires = NULL "
                "WHERE source = %s AND event_id = %s AND status = %s AND claimed_by = %s",
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
        with self._connection("read an event") as conn:
            row = conn.execute(_SELECT_EVENT, (source, event_id)).fetchone()
        return EventRecord.from_row(row) if row else None

    def list_events(
        self,
        *,
        status: EventStatus | None = None,
        source: str | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        clauses: list[sql.Composable] = []
        params: list[Any] = []
        if status is not None:
            clauses.append(sql.SQL("status = %s"))
            params.append(status.value)
        if source is not None:
            clauses.append(sql.SQL("source = %s"))
            params.append(source)
        where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")
        query = sql.SQL(
            f"SELECT {EVENT_COLUMNS} FROM zs_events {{}} "  # noqa: S608
            "ORDER BY received_at DESC, seq DESC LIMIT %s"
        ).format(where)
        with self._connection("list events") as conn:
            rows = conn.execute(query, (*params, limit)).fetchall()
        return [EventRecord.from_row(row) for row in rows]

    # -- subscriptions and customers -------------------------------------------------------

    def get_subscription(self, subscription_id: str) -> SubscriptionState | None:
        with self._connection("read a subscription") as conn:
            row = conn.execute(
                "SELECT state FROM zs_subscriptions WHERE subscription_id = %s",
                (subscription_id,),
            ).fetchone()
        return SubscriptionState.from_json(row[0]) if row else None

    def put_subscription(self, state: SubscriptionState) -> None:
        with self._connection("store a subscription") as conn:
            conn.execute(
                "INSERT INTO zs_subscriptions (subscription_id, state) VALUES (%s, %s) "
                "ON CONFLICT (subscription_id) DO UPDATE SET state = excluded.state",
                (state.subscription_id, state.to_json()),
            )

    def get_customer_link(self, stripe_customer_id: str) -> str | None:
        with self._connection("read a customer link") as conn:
            row = conn.execute(
                "SELECT zentitle_customer_id FROM zs_customers WHERE stripe_customer_id = %s",
                (stripe_customer_id,),
            ).fetchone()
        return str(row[0]) if row else None

    def put_customer_link(self, stripe_customer_id: str, zentitle_customer_id: str) -> None:
        with self._connection("store a customer link") as conn:
            conn.execute(
                "INSERT INTO zs_customers (stripe_customer_id, zentitle_customer_id) "
                "VALUES (%s, %s) ON CONFLICT (stripe_customer_id) "
                "DO UPDATE SET zentitle_customer_id = excluded.zentitle_customer_id",
                (stripe_customer_id, zentitle_customer_id),
            )

    # -- locks -----------------------------------------------------------------------------

    def acquire_lock(self, name: str, *, owner: str, lease_seconds: float, now: float) -> bool:
        with self._connection("take a lock") as conn:
            # One statement, so the check and the take are atomic on the server; a row
            # held by someone else with an unexpired lease is left alone (no RETURNING row).
            row = conn.execute(
                "INSERT INTO zs_locks (name, owner, expires) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "expires = excluded.expires WHERE zs_locks.owner = excluded.owner "
                "OR zs_locks.expires <= %s RETURNING 1",
                (name, owner, now + lease_seconds, now),
            ).fetchone()
        return row is not None

    def release_lock(self, name: str, *, owner: str) -> None:
        with self._connection("release a lock") as conn:
            conn.execute("DELETE FROM zs_locks WHERE name = %s AND owner = %s", (name, owner))

    # -- lifecycle -------------------------------------------------------------------------

    def ping(self) -> None:
        with self._connection("answer a health check") as conn:
            conn.execute("SELECT 1").fetchall()

    def close(self) -> None:
        self._pool.close()
