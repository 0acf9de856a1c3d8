"""The PostgreSQL schema: its migrations, and how one connection reads and upgrades it.

Upgrades run in one transaction under a transaction-scoped advisory lock, so several
workers starting at once against an empty database do not race: the first creates the
tables, the others wait, then find them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import StorageError
from ._history import POSTGRES_HISTORY_SCHEMA
from ._hooks import HOOK_TABLES

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA_VERSION", "upgrade", "version_in"]

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
    # 1 -> 2: the attempt history of events, kept by a trigger on zs_events.
    POSTGRES_HISTORY_SCHEMA,
    # 2 -> 3: outcome hooks: each event's recorded outcome and its handlers' runs.
    HOOK_TABLES.format(real="double precision"),
)

SCHEMA_VERSION = len(_MIGRATIONS)
"""The schema version this code writes and expects (stored in `zs_meta`)."""

# Arbitrary constant key for pg_advisory_xact_lock ("zs_m"): serialises migrations.
_SCHEMA_LOCK_KEY = 0x7A735F6D


def version_in(conn: psycopg.Connection[tuple[Any, ...]]) -> int | None:
    """The schema version recorded in `zs_meta`, or `None` if there is no schema."""
    row = conn.execute("SELECT to_regclass('zs_meta') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    row = conn.execute("SELECT value FROM zs_meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else None


def upgrade(conn: psycopg.Connection[tuple[Any, ...]], where: str) -> int:
    """Run the migrations `conn`'s schema lacks; return the version. `where` names the
    server (password redacted) in errors."""
    with conn.transaction():
        # Held until commit, so a concurrent first start waits, then sees our tables.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        current = version_in(conn) or 0
        if current > SCHEMA_VERSION:
            raise StorageError(
                f"PostgreSQL storage {where} has schema version {current}, newer "
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
