"""PostgreSQL storage: the shared contract, plus what only a server can prove.

Needs a server: ``ZENTITLE_STRIPE_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``, then ``postgresql:///test`` via the
local socket). Without one the module is skipped, unless
``ZENTITLE_STRIPE_REQUIRE_POSTGRES=1`` (CI), which makes it fail instead.

Isolation: every test gets its own freshly created PostgreSQL schema, selected with
``options=-c search_path=...`` in the URL and dropped afterwards, so tests never see
each other's rows and a real first-start (empty schema) happens every time.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator

import pytest

from tests.support.postgres import create_schema, drop_schema, find_server, with_search_path
from zentitle_stripe.exceptions import ConfigurationError, StorageError
from zentitle_stripe.storage import ClaimResult, EventStatus, NewEvent, Storage, open_storage
from zentitle_stripe.testing import StorageContract

pytestmark = pytest.mark.postgres

SERVER = find_server()

import psycopg  # noqa: E402  (after the skip: psycopg may be missing)

from zentitle_stripe.storage.postgres import SCHEMA_VERSION, PostgresStorage  # noqa: E402


@pytest.fixture
def schema_url() -> Iterator[str]:
    """A URL pointing at a fresh, empty schema, dropped after the test."""
    name = create_schema(SERVER)
    try:
        yield with_search_path(SERVER, name)
    finally:
        drop_schema(SERVER, name)


class TestPostgresStorage(StorageContract):
    def make_storage(self) -> Storage:
        self._schema = create_schema(SERVER)
        return PostgresStorage(with_search_path(SERVER, self._schema), timeout=5.0)

    def teardown_method(self, method: object = None) -> None:
        try:
            super().teardown_method(method)
        finally:
            drop_schema(SERVER, self._schema)


def _race_in_child(
    url: str, owner: str, barrier: threading.Barrier, queue: multiprocessing.Queue[str]
) -> None:
    storage = PostgresStorage(url, timeout=10.0)
    storage.ping()  # connect before the race, so the race is on the claim itself
    event = NewEvent(event_id="evt_shared", source="stripe", type="invoice.paid", payload=b"{}")
    barrier.wait(timeout=60)
    claim = storage.claim_event(event, owner=owner, lease_seconds=60, now=1_000.0).result
    barrier.wait(timeout=60)
    locked = storage.acquire_lock("subscription:sub_1", owner=owner, lease_seconds=60, now=1_000.0)
    storage.close()
    queue.put(f"{claim.value},{locked}")


def test_claims_and_locks_are_exclusive_across_processes(schema_url: str) -> None:
    PostgresStorage(schema_url).close()  # nothing created yet: children also race on schema
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    queue: multiprocessing.Queue[str] = ctx.Queue()
    procs = [
        ctx.Process(target=_race_in_child, args=(schema_url, f"p{i}", barrier, queue))
        for i in range(4)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=90)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    outputs = [queue.get(timeout=10).split(",") for _ in procs]
    claims = [claim for claim, _ in outputs]
    assert claims.count(ClaimResult.CLAIMED.value) == 1, outputs
    assert claims.count(ClaimResult.IN_PROGRESS.value) == 3, outputs
    assert [locked for _, locked in outputs].count("True") == 1, outputs


def test_schema_version_is_recorded_and_migrate_is_idempotent(schema_url: str) -> None:
    storage = PostgresStorage(schema_url)
    try:
        assert storage.schema_version() is None  # created on first use, not before
        storage.ping()
        assert storage.schema_version() == SCHEMA_VERSION
        assert storage.migrate() == SCHEMA_VERSION
        assert storage.migrate() == SCHEMA_VERSION
        with psycopg.connect(schema_url) as conn:
            rows = conn.execute("SELECT key, value FROM zs_meta").fetchall()
        assert rows == [("schema_version", str(SCHEMA_VERSION))]
    finally:
        storage.close()


def test_a_version_1_schema_is_upgraded_and_keeps_event_history(schema_url: str) -> None:
    PostgresStorage(schema_url).migrate()
    with psycopg.connect(schema_url) as conn:  # back to version 1: no history yet
        conn.execute("DROP TABLE zs_event_attempts")
        conn.execute("DROP FUNCTION zs_record_attempt CASCADE")
        conn.execute("UPDATE zs_meta SET value = '1' WHERE key = 'schema_version'")
    storage = PostgresStorage(schema_url, create_schema=False)
    try:
        with pytest.raises(StorageError, match="schema version 1, this code needs 3"):
            storage.ping()
        assert storage.migrate() == 3
        event = NewEvent(event_id="evt_1", source="stripe", type="invoice.paid", payload=b"{}")
        storage.claim_event(event, owner="w1", lease_seconds=60, now=1_000.0)
        storage.finish_event(
            "evt_1",
            "stripe",
            owner="w1",
            status=EventStatus.FAILED,
            outcome="failed",
            detail="d",
            error="boom",
            now=1_001.0,
        )
        record = storage.get_event("evt_1")
        assert record is not None
        assert [(a.attempt, a.status, a.error) for a in record.history] == [(1, "failed", "boom")]
    finally:
        storage.close()


def test_a_version_2_schema_is_upgraded_with_the_hook_tables(schema_url: str) -> None:
    PostgresStorage(schema_url).migrate()
    with psycopg.connect(schema_url) as conn:  # back to version 2: no outcome hooks yet
        conn.execute("DROP TABLE zs_hook_runs")
        conn.execute("DROP TABLE zs_outcomes")
        conn.execute("UPDATE zs_meta SET value = '2' WHERE key = 'schema_version'")
    storage = PostgresStorage(schema_url, create_schema=False)
    try:
        with pytest.raises(StorageError, match="schema version 2, this code needs 3"):
            storage.ping()
        assert storage.migrate() == 3
        stored = storage.record_outcome(
            "stripe",
            "evt_1",
            kind="renewed",
            data="{}",
            handlers=["a.b"],
            now=1.0,
            not_before=2.0,
        )
        assert [r.handler for r in stored.runs] == ["a.b"]
        assert storage.claim_hook("stripe", "evt_1", "a.b", owner="w", lease_seconds=9, now=3.0)
    finally:
        storage.close()


def test_create_schema_false_asks_for_migrate_then_works(schema_url: str) -> None:
    storage = PostgresStorage(schema_url, create_schema=False)
    try:
        with pytest.raises(StorageError, match="zentitle-stripe migrate"):
            storage.get_event("evt_1")
        assert storage.migrate() == SCHEMA_VERSION
        assert storage.get_event("evt_1") is None
    finally:
        storage.close()


def test_schema_newer_than_the_code_is_refused(schema_url: str) -> None:
    PostgresStorage(schema_url).migrate()
    with psycopg.connect(schema_url) as conn:
        conn.execute("UPDATE zs_meta SET value = '99' WHERE key = 'schema_version'")
    storage = PostgresStorage(schema_url)
    try:
        with pytest.raises(StorageError, match="newer than this code supports"):
            storage.migrate()
    finally:
        storage.close()


def test_concurrent_first_starts_on_an_empty_schema_all_succeed(schema_url: str) -> None:
    storages = [PostgresStorage(schema_url) for _ in range(4)]
    barrier = threading.Barrier(len(storages))
    errors: list[BaseException] = []

    def start(storage: PostgresStorage) -> None:
        barrier.wait()
        try:
            storage.put_customer_link("cus_1", "cust_1")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in storages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    try:
        assert errors == []
        assert all(s.schema_version() == SCHEMA_VERSION for s in storages)
    finally:
        for storage in storages:
            storage.close()


def test_unreachable_server_is_a_storage_error_without_the_password() -> None:
    url = "postgresql://app:hunter2@127.0.0.1:1/zs"
    storage = PostgresStorage(url, timeout=0.5)
    try:
        assert "hunter2" not in repr(storage)
        assert "app:***@127.0.0.1:1" in repr(storage)
        with pytest.raises(StorageError, match="could not answer a health check") as info:
            storage.ping()
        message = str(info.value)
        assert "hunter2" not in message
        assert "postgresql://app:***@127.0.0.1:1/zs" in message
        assert isinstance(info.value.__cause__, psycopg.Error)
    finally:
        storage.close()


def test_open_storage_returns_postgres_storage(schema_url: str) -> None:
    storage = open_storage(schema_url)
    try:
        assert isinstance(storage, PostgresStorage)
        assert isinstance(storage, Storage)
        storage.ping()
    finally:
        storage.close()


def test_malformed_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not a valid PostgreSQL URL") as info:
        PostgresStorage("postgresql://app:hunter2@db/x?bogus=1")
    assert "hunter2" not in str(info.value)


def test_public_names_of_the_postgres_module_are_pinned() -> None:
    import zentitle_stripe.storage.postgres

    assert zentitle_stripe.storage.postgres.__all__ == ["SCHEMA_VERSION", "PostgresStorage"]
    assert zentitle_stripe.storage.postgres.SCHEMA_VERSION == 3
