"""PostgreSQL storage (psycopg 3 + psycopg_pool): for workers on several machines.

Exactly-once holds across processes and hosts because every decision is made by the
server: a claim is one transaction (`INSERT ... ON CONFLICT DO NOTHING`, else
`SELECT ... FOR UPDATE` of the existing row), a lock is one `INSERT ... ON CONFLICT
DO UPDATE ... WHERE` statement. Connections are pooled and run in autocommit, so plain
reads (the common duplicate-redelivery case) hold no transaction open.

The schema (tables `zs_*` in the first schema of `search_path`, see
`storage._postgres_schema`) is created or upgraded on first use, under a
transaction-scoped advisory lock so that several workers starting at once against an
empty database do not race. Set `create_schema=False` to leave that to
`zentitle-stripe migrate`
([`migrate`][zentitle_stripe.storage.postgres.PostgresStorage.migrate]).
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..exceptions import ConfigurationError, MissingExtraError, StorageError
from ._backend import ClaimRequest, Finish
from ._base import Claim, ClaimResult, EventRecord
from ._hooks import SQLHooks
from ._queue import SQLQueue, claim_due
from ._redact import redact_text, redact_url
from ._sql import (
    INSERT_EVENT,
    SELECT_EVENT,
    SETTLED_ATTEMPT,
    TAKE_OVER_EVENT,
    Row,
    SQLStorage,
    settled_rows,
    take_over_params,
)

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError("zentitle_stripe.storage.postgres", "postgres") from exc

from ._postgres_schema import SCHEMA_VERSION, upgrade, version_in

__all__ = ["SCHEMA_VERSION", "PostgresStorage"]

_IDLE_CHECK_SECONDS = 30.0
"""A pooled connection idle longer than this is checked (one round trip) before use."""
_LAST_USED: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_SETTLED = f"WITH inserted AS ({INSERT_EVENT} RETURNING 1) {SETTLED_ATTEMPT} FROM inserted"
"""A settled event and its one attempt in a single statement (autocommit: atomic)."""

_Connection = psycopg.Connection[tuple[Any, ...]]


def _check_if_idle(conn: _Connection) -> None:
    """The pool's check on checkout, only for a connection idle a while: one a server
    restart broke is then dropped instead of failing a call, without a round trip on
    every checkout of a busy pool."""
    if time.monotonic() - _LAST_USED.get(conn, 0.0) > _IDLE_CHECK_SECONDS:
        ConnectionPool.check_connection(conn)


class PostgresStorage(SQLHooks, SQLQueue, SQLStorage):
    """A [`Storage`][zentitle_stripe.storage.Storage] in a PostgreSQL database.

    `url` is a libpq URL or conninfo string (`postgresql://user:pw@host/db`);
    `min_size`/`max_size` bound the pool; `timeout` (seconds) caps the wait for a
    pooled connection and the connect attempt, so an unreachable server becomes a
    prompt [`StorageError`][zentitle_stripe.exceptions.StorageError] rather than a hang.
    Constructing does not wait for the server: an app may start while it is down.
    """

    _insertion_order = "seq"
    _ping = "SELECT 1"

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
        self._url = url  # only to hide its secrets in driver messages
        self._timeout = timeout
        self._create_schema = create_schema
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        try:  # fail now on a malformed URL rather than time out on every call
            conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise ConfigurationError(
                f"{self._where} is not a valid PostgreSQL URL: {self._reason(exc)}"
            ) from None
        # libpq's connect_timeout is whole seconds and treats < 2 as 2.
        connect_timeout = max(2, math.ceil(timeout))
        with self._errors("open a connection pool"):
            self._pool: ConnectionPool[_Connection] = ConnectionPool(
                url,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                kwargs={"autocommit": True, "connect_timeout": connect_timeout},
                # Drop connections a server restart broke instead of failing one call,
                # checking only those idle a while (a check is a round trip).
                check=_check_if_idle,
                name="zentitle_stripe",
                open=True,
            )

    def __repr__(self) -> str:
        return f"PostgresStorage({self._where!r})"

    def _reason(self, exc: Exception) -> str:
        """The driver's message, without any secret of the URL it may quote."""
        return redact_text(str(exc).strip(), self._url)

    # -- plumbing ---------------------------------------------------------------------

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn driver and pool errors into StorageError naming the server, never the password."""
        try:
            yield
        except psycopg.Error as exc:
            reason = self._reason(exc)
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
                try:
                    yield conn
                finally:
                    _LAST_USED[conn] = time.monotonic()

    def _fetch(self, doing: str, statement: str, params: Sequence[Any]) -> Sequence[Row]:
        with self._connection(doing) as conn:
            return conn.execute(statement, params).fetchall()

    def _change(self, doing: str, statement: str, params: Sequence[Any]) -> int:
        with self._connection(doing) as conn:  # autocommit: one statement is atomic
            return conn.execute(statement, params).rowcount

    # -- schema ------------------------------------------------------------------------

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

    def _read_version(self) -> int | None:
        with self._pool.connection(timeout=self._timeout) as conn:
            return version_in(conn)

    def _migrate(self) -> int:
        # Fast path: an up-to-date schema needs no lock and no DDL.
        if self._read_version() == SCHEMA_VERSION:
            return SCHEMA_VERSION
        with self._pool.connection(timeout=self._timeout) as conn:
            return upgrade(conn, self._where)

    def migrate(self) -> int:
        """Create or upgrade the schema; return its version. Safe to run repeatedly and
        concurrently (`zentitle-stripe migrate` calls this)."""
        with self._errors("migrate the schema"), self._schema_lock:
            version = self._migrate()
            self._schema_ready = True
            return version

    def schema_version(self) -> int | None:
        """The schema version recorded in the database, or `None` if there is no schema."""
        with self._errors("read the schema version"):
            return self._read_version()

    def _transact(
        self, doing: str, block: Callable[[Callable[[str, Sequence[Any]], int]], bool]
    ) -> bool:
        with self._connection(doing) as conn, conn.transaction():
            return block(lambda statement, params: conn.execute(statement, params).rowcount)

    # -- events ------------------------------------------------------------------------

    def _record_settled(self, request: ClaimRequest, finish: Finish) -> bool:
        record, attempt = settled_rows(request, finish)
        with self._connection("record an event") as conn:  # one statement, one round trip
            return conn.execute(_SETTLED, (*record.to_row(), *attempt)).rowcount == 1

    def _claim(self, request: ClaimRequest) -> Claim:
        with self._connection("claim an event") as conn:
            # Fast path without locks: duplicates and in-flight events are the common
            # redelivery case and need no write.
            row = conn.execute(SELECT_EVENT, request.key).fetchone()
            refusal = request.refusal(EventRecord.from_row(row) if row else None)
            if refusal is not None:
                return refusal
            # A first delivery: one autocommit insert. A concurrent insert of the same
            # key makes it wait for that one, then do nothing: exactly one inserter wins.
            claimed = request.claimed(None)
            if row is None and conn.execute(INSERT_EVENT, claimed.to_row()).rowcount == 1:
                return Claim(ClaimResult.CLAIMED, claimed)
            with conn.transaction():
                # It exists: lock the row so the decision and the update are one step.
                row = conn.execute(f"{SELECT_EVENT} FOR UPDATE", request.key).fetchone()
                if not row:  # events are never deleted; defensive only
                    raise StorageError(
                        f"PostgreSQL storage {self._where} lost event {request.key!r} "
                        "while claiming it"
                    )
                record = EventRecord.from_row(row)
                refusal = request.refusal(record)
                if refusal is not None:
                    return refusal
                claimed = request.claimed(record)
                conn.execute(TAKE_OVER_EVENT, take_over_params(claimed))
            return Claim(ClaimResult.CLAIMED, claimed)

    def claim_queued(self, *, owner: str, lease_seconds: float, now: float) -> EventRecord | None:
        with self._connection("claim a queued event") as conn, conn.transaction():
            # SKIP LOCKED: workers on any host take different events and never wait.
            def run(statement: str, params: Sequence[Any]) -> Sequence[Row]:
                cursor = conn.execute(statement, params)
                return cursor.fetchall() if cursor.description else []

            lock = " FOR UPDATE SKIP LOCKED"
            return claim_due(run, owner=owner, lease_seconds=lease_seconds, now=now, lock=lock)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._pool.close()
