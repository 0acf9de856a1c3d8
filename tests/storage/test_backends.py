"""Every built-in backend passes the same contract; SQLite also across processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from zentitle_stripe.exceptions import ConfigurationError, StorageError
from zentitle_stripe.storage import (
    ClaimResult,
    EventStatus,
    HookStatus,
    HookStorage,
    MemoryStorage,
    NewEvent,
    Storage,
    open_storage,
    redact_url,
)
from zentitle_stripe.storage.sqlite import SCHEMA_VERSION, SQLiteStorage
from zentitle_stripe.testing import StorageContract


class TestMemoryStorage(StorageContract):
    def make_storage(self) -> Storage:
        return MemoryStorage()


class TestSQLiteStorage(StorageContract):
    def make_storage(self) -> Storage:
        import tempfile

        self._tmp = tempfile.TemporaryDirectory()
        return SQLiteStorage(str(Path(self._tmp.name) / "events.db"))

    def teardown_method(self, method: object = None) -> None:
        super().teardown_method(method)
        self._tmp.cleanup()


def _claim_in_child(path: str, owner: str, queue: multiprocessing.Queue[str]) -> None:
    storage = SQLiteStorage(path)
    event = NewEvent(event_id="evt_shared", source="stripe", type="invoice.paid", payload=b"{}")
    results = []
    for _ in range(20):
        results.append(
            storage.claim_event(event, owner=owner, lease_seconds=60, now=1_000.0).result.value
        )
    storage.close()
    queue.put(",".join(results))


def test_sqlite_claims_are_exclusive_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    SQLiteStorage(path).close()  # schema first, so children race only on the claim
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_claim_in_child, args=(path, f"p{i}", queue)) for i in range(4)]
    for proc in procs:
        proc.start()
    outputs = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    firsts = [out.split(",")[0] for out in outputs]
    # The winner re-claims its own event as in-progress afterwards (it holds the lease).
    claimed = sum(out.split(",").count(ClaimResult.CLAIMED.value) for out in outputs)
    assert claimed == 1, outputs
    assert firsts.count(ClaimResult.CLAIMED.value) == 1


def _sqlite_version(path: Path) -> tuple[str, ...]:
    with sqlite3.connect(path) as conn:
        row: tuple[str, ...] = conn.execute(
            "SELECT value FROM zs_meta WHERE key='schema_version'"
        ).fetchone()
    return row


def test_sqlite_records_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    SQLiteStorage(str(path)).close()
    assert _sqlite_version(path) == (str(SCHEMA_VERSION),)


def test_a_version_1_sqlite_file_is_upgraded_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    SQLiteStorage(str(path)).close()
    with sqlite3.connect(path) as conn:  # back to version 1: no history yet
        conn.executescript(
            "DROP TRIGGER zs_events_finished; DROP TRIGGER zs_events_taken_over;"
            "DROP TRIGGER zs_events_settled_taken; DROP TABLE zs_event_attempts;"
            "UPDATE zs_meta SET value = '1' WHERE key = 'schema_version';"
        )
    storage = SQLiteStorage(str(path))
    try:
        assert _sqlite_version(path) == (str(SCHEMA_VERSION),)
        event = NewEvent(event_id="evt_1", source="stripe", type="invoice.paid", payload=b"{}")
        storage.claim_event(event, owner="w1", lease_seconds=60, now=1_000.0)
        storage.claim_event(event, owner="w2", lease_seconds=60, now=1_100.0)
        record = storage.get_event("evt_1")
        assert record is not None
        assert [(a.attempt, a.owner, a.status) for a in record.history] == [(1, "w1", "abandoned")]
    finally:
        storage.close()
    with sqlite3.connect(path) as conn:  # a newer version is never lowered
        conn.execute("UPDATE zs_meta SET value = '99' WHERE key = 'schema_version'")
    SQLiteStorage(str(path)).close()
    assert _sqlite_version(path) == ("99",)


def test_a_version_2_sqlite_file_gets_the_hook_tables_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    SQLiteStorage(str(path)).close()
    with sqlite3.connect(path) as conn:  # back to version 2: no outcome hooks yet
        conn.executescript(
            "DROP TABLE zs_hook_runs; DROP TABLE zs_outcomes;"
            "UPDATE zs_meta SET value = '2' WHERE key = 'schema_version';"
        )
    storage = SQLiteStorage(str(path))
    try:
        assert _sqlite_version(path) == (str(SCHEMA_VERSION),)
        stored = storage.record_outcome(
            "stripe",
            "evt_1",
            kind="provisioned",
            data="{}",
            handlers=["a.b"],
            now=1.0,
            not_before=2.0,
        )
        assert [(r.handler, r.status) for r in stored.runs] == [("a.b", HookStatus.PENDING)]
    finally:
        storage.close()


_SETTLED_V4 = """
CREATE TRIGGER zs_events_settled AFTER INSERT ON zs_events
WHEN NEW.status = 'done' AND NEW.claimed_by IS NOT NULL
BEGIN
    INSERT INTO zs_event_attempts (source, event_id, attempt, finished_at, owner, status,
        outcome, detail, error)
    VALUES (NEW.source, NEW.event_id, NEW.attempts, NEW.updated_at, NEW.claimed_by,
        NEW.status, NEW.outcome, NEW.detail, NEW.last_error);
    UPDATE zs_events SET claimed_by = NULL WHERE rowid = NEW.rowid;
END;
"""


def _settled_history(storage: SQLiteStorage, event_id: str) -> list[tuple[int, str | None, str]]:
    record = storage.get_event(event_id)
    assert record is not None
    if record.status is EventStatus.DONE:
        assert record.claimed_by is None  # the owner is its attempt's, not a claim's
    return [(a.attempt, a.owner, a.status) for a in record.history]


def test_a_version_4_sqlite_file_keeps_its_settled_attempts(tmp_path: Path) -> None:
    """Schema 4 wrote a settled event's attempt apart (and cleared the owner); schema 5
    implies it by the row. A file keeps both kinds readable, and a v4 trigger is gone."""
    path = tmp_path / "v4.db"
    SQLiteStorage(str(path)).close()
    with sqlite3.connect(path) as conn:  # back to version 4
        conn.execute("DROP TRIGGER zs_events_settled_taken")
        conn.executescript(_SETTLED_V4)
        conn.execute("UPDATE zs_meta SET value = '4' WHERE key = 'schema_version'")
    with sqlite3.connect(path) as conn:  # a settled row as version 4 wrote it
        conn.execute(
            "INSERT INTO zs_events (source, event_id, type, status, attempts, payload, "
            "outcome, detail, received_at, updated_at, claimed_by) "
            "VALUES ('stripe', 'evt_4', 't', 'done', 1, x'7b7d', 'ignored', 'x', 1, 1, 'w4')"
        )
    storage = SQLiteStorage(str(path))
    try:
        assert _sqlite_version(path) == (str(SCHEMA_VERSION),)
        with sqlite3.connect(path) as conn:
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "zs_events_settled" not in names
        assert "zs_events_settled_taken" in names
        assert _settled_history(storage, "evt_4") == [(1, "w4", "done")]
        event = NewEvent(event_id="evt_5", source="stripe", type="t", payload=b"{}")
        assert storage.record_settled(event, owner="w5", outcome="ignored", detail="x", now=2.0)
        assert _settled_history(storage, "evt_5") == [(1, "w5", "done")]
        with sqlite3.connect(path) as conn:  # implied by the row: no attempt row written
            rows = conn.execute(
                "SELECT count(*) FROM zs_event_attempts WHERE event_id = 'evt_5'"
            ).fetchone()
        assert rows == (0,)
    finally:
        storage.close()


def test_a_version_5_sqlite_file_trades_its_event_indexes_for_the_open_one(
    tmp_path: Path,
) -> None:
    """Schema 6 indexes only the events not done: a settled event's insert writes the
    table and its key, and the queue and the listings of failed events use the index."""
    path = tmp_path / "v5.db"
    SQLiteStorage(str(path)).close()
    with sqlite3.connect(path) as conn:  # back to version 5
        conn.executescript(
            "DROP INDEX zs_events_open;"
            "CREATE INDEX zs_events_received ON zs_events (received_at);"
            "CREATE INDEX zs_events_status ON zs_events (status, received_at);"
            "UPDATE zs_meta SET value = '5' WHERE key = 'schema_version';"
        )
    storage = SQLiteStorage(str(path))
    try:
        assert _sqlite_version(path) == (str(SCHEMA_VERSION),)
        with sqlite3.connect(path) as conn:
            indexes = {
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = 'zs_events' AND sql IS NOT NULL"
                )
            }
        assert indexes == {"zs_events_open"}
        for i, status in enumerate((EventStatus.FAILED, EventStatus.DONE, EventStatus.FAILED)):
            event = NewEvent(event_id=f"evt_{i}", source="stripe", type="t", payload=b"{}")
            storage.claim_event(event, owner="w", lease_seconds=60, now=10.0 + i)
            storage.finish_event(
                event.event_id,
                "stripe",
                owner="w",
                status=status,
                outcome="x",
                detail="",
                error=None,
                now=20.0,
            )
        failed = storage.list_events(status=EventStatus.FAILED)
        assert [r.event_id for r in failed] == ["evt_2", "evt_0"]
        plan = (
            storage._conn()
            .execute(
                "EXPLAIN QUERY PLAN SELECT event_id FROM zs_events "
                "WHERE status = 'failed' AND status <> 'done'"
            )
            .fetchall()
        )
        assert "zs_events_open" in str(plan)
        assert [r.event_id for r in storage.list_events()] == ["evt_2", "evt_1", "evt_0"]
    finally:
        storage.close()


def test_a_settled_event_taken_over_keeps_its_first_attempt(tmp_path: Path) -> None:
    """A replay of a settled event (`reclaim_done`) changes its row: the trigger writes
    the implied attempt first, so the history reads 1 (settled), then 2 (the replay)."""
    storage = SQLiteStorage(str(tmp_path / "zs.db"))
    try:
        event = NewEvent(event_id="evt_1", source="stripe", type="t", payload=b"{}")
        assert storage.record_settled(event, owner="w1", outcome="ignored", detail="x", now=1.0)
        claim = storage.claim_event(event, owner="w2", lease_seconds=60, now=2.0, reclaim_done=True)
        assert claim.result is ClaimResult.CLAIMED
        assert claim.record.attempts == 2
        assert _settled_history(storage, "evt_1") == [(1, "w1", "done")]
        assert storage.finish_event(
            "evt_1",
            "stripe",
            owner="w2",
            status=EventStatus.DONE,
            outcome="provisioned",
            detail="y",
            error=None,
            now=3.0,
        )
        assert _settled_history(storage, "evt_1") == [(1, "w1", "done"), (2, "w2", "done")]
        listed = storage.list_events()
        assert [(a.attempt, a.owner) for a in listed[0].history] == [(1, "w1"), (2, "w2")]
    finally:
        storage.close()


def test_sqlite_driver_errors_become_storage_errors(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "e.db"))
    with sqlite3.connect(tmp_path / "e.db") as conn:
        conn.execute("DROP TABLE zs_events")
    with pytest.raises(StorageError, match="could not read an event"):
        storage.get_event("evt_1")
    storage.close()


def test_unopenable_sqlite_file_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="could not create the schema"):
        SQLiteStorage(str(tmp_path / "missing-dir" / "x.db"))


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("memory://", MemoryStorage),
        ("sqlite:///{tmp}/a.db", SQLiteStorage),
        ("SQLite:///{tmp}/a.db", SQLiteStorage),  # schemes are case-insensitive
    ],
)
def test_open_storage_picks_the_backend(url: str, kind: type, tmp_path: Path) -> None:
    storage = open_storage(url.format(tmp=tmp_path))
    assert isinstance(storage, kind)
    storage.close()


def test_open_storage_relative_sqlite_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    storage = open_storage("sqlite:///rel.db")
    storage.close()
    assert (tmp_path / "rel.db").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("zentitle.db", "must be a URL"),
        ("redis://localhost", "unknown scheme 'redis'"),
        ("sqlite://", "names no SQLite file"),
    ],
)
def test_open_storage_rejects_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        open_storage(url)
    assert "ZENTITLE_STRIPE_STORAGE" in str(info.value)


def test_redact_hides_the_password_of_a_storage_url() -> None:
    assert redact_url("postgresql://app:hunter2@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert redact_url("postgresql://db/x") == "postgresql://db/x"


def test_public_names_of_the_storage_modules_are_pinned() -> None:
    import zentitle_stripe.storage
    import zentitle_stripe.storage.memory
    import zentitle_stripe.storage.sqlite

    assert sorted(zentitle_stripe.storage.__all__) == [
        "Claim",
        "ClaimResult",
        "DEFAULT_STORAGE_URL",
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
    assert zentitle_stripe.storage.memory.__all__ == ["MemoryStorage"]
    assert zentitle_stripe.storage.sqlite.__all__ == ["SCHEMA_VERSION", "SQLiteStorage"]
    for name in zentitle_stripe.storage.__all__:
        assert hasattr(zentitle_stripe.storage, name), name


def test_every_built_in_backend_is_a_storage(tmp_path: Path) -> None:
    for backend in (MemoryStorage(), SQLiteStorage(str(tmp_path / "s.db"))):
        assert isinstance(backend, Storage)
        assert backend.keeps_history  # so the contract's history tests apply in full
        assert isinstance(backend, HookStorage)  # so outcome hooks can be registered
        backend.close()
