"""SQLite's WAL checkpoints run off the request path, with a bound on the log; the
durability setting; what a process crash keeps."""

from __future__ import annotations

import gc
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from zentitle_stripe.exceptions import ConfigurationError
from zentitle_stripe.storage import EventStatus, NewEvent, SQLiteStorage, open_storage


def _event(event_id: str | None = None) -> NewEvent:
    event_id = event_id or f"evt_{uuid.uuid4().hex}"
    return NewEvent(event_id=event_id, source="stripe", type="customer.updated", payload=b"{}")


def _settle(storage: SQLiteStorage, count: int) -> list[str]:
    ids = [f"evt_{uuid.uuid4().hex}" for _ in range(count)]
    for event_id in ids:
        assert storage.record_settled(
            _event(event_id), owner="w1", outcome="ignored", detail="x", now=time.time()
        )
    return ids


def _until(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.01)
    return False


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "zentitle-stripe-checkpoint"]


def test_request_connections_never_checkpoint(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "zs.db"))
    try:
        conn = storage._conn()
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    finally:
        storage.close()


def test_the_background_thread_checkpoints_after_enough_commits(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "zs.db"))
    checkpointer = storage._checkpointer
    checkpointer.every_commits = 20
    checkpointer.interval = 60.0  # only the commit count can wake it in this test
    try:
        _settle(storage, 5)
        assert checkpointer.runs == 0
        before = os.path.getsize(tmp_path / "zs.db")  # the schema, still in the log
        _settle(storage, 30)
        assert _until(lambda: checkpointer.runs >= 1)
        # What the log held went into the database file.
        assert _until(lambda: os.path.getsize(tmp_path / "zs.db") > before + 8 * 4096)
    finally:
        storage.close()
    assert not _checkpoint_threads()


def test_an_idle_database_is_checkpointed_after_the_interval(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "zs.db"))
    storage._checkpointer.interval = 0.05
    try:
        _settle(storage, 3)  # far below every_commits
        assert _until(lambda: storage._checkpointer.runs >= 1)
    finally:
        storage.close()


def test_the_log_is_bounded_when_writes_never_pause(tmp_path: Path) -> None:
    """A passive checkpoint cannot restart a log that writers keep appending to (without
    the bound, four writers grew it to 800 MB in two seconds); past the bound, the thread
    holds this process's writers for one checkpoint and the next write restarts it."""
    path = tmp_path / "zs.db"
    storage = SQLiteStorage(str(path))
    checkpointer = storage._checkpointer
    checkpointer.every_commits = 10
    checkpointer.max_wal_pages = 100
    checkpointer.max_commits = 80
    events, writers = 400, 4

    def write() -> None:
        _settle(storage, events)

    try:
        threads = [threading.Thread(target=write) for _ in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        count = storage._conn().execute("SELECT count(*) FROM zs_events").fetchone()[0]
        assert count == events * writers
        assert checkpointer.runs >= 1
        # Every event writes about six pages; a log never restarted would hold them all.
        never_restarted = events * writers * 6 * 4096
        assert os.path.getsize(f"{path}-wal") < never_restarted / 3
    finally:
        storage.close()


def test_a_long_log_is_checkpointed_by_the_next_writer_holding_the_lock(
    tmp_path: Path,
) -> None:
    storage = SQLiteStorage(str(tmp_path / "zs.db"))
    checkpointer = storage._checkpointer
    checkpointer.every_commits = 10**9  # the thread stays asleep: rounds run by hand
    checkpointer.interval = 3600.0
    checkpointer.max_wal_pages = 150
    seen: list[tuple[str, bool]] = []
    conn = sqlite3.connect(tmp_path / "zs.db", isolation_level=None)

    def traced(statement: str) -> None:
        seen.append((statement.split()[0], storage._writer.locked()))

    storage._conn().set_trace_callback(traced)
    try:
        _settle(storage, 5)  # a short log: a round leaves nothing to the writers
        checkpointer.checkpoint(conn)
        seen.clear()
        _settle(storage, 150)  # ~400 log pages (2-3 per settled event)
        assert seen[0] == ("INSERT", True)
        assert ("PRAGMA", True) not in seen
        checkpointer.checkpoint(conn)  # a round that finds the log too long
        seen.clear()
        _settle(storage, 2)
        assert seen[:2] == [("PRAGMA", True), ("INSERT", True)]
        assert checkpointer.held == 1
        log = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        assert log < 50  # the log started again (the schema alone is more)
        checkpointer.max_commits = 3  # a thread starved of CPU: writers step in too
        seen.clear()
        _settle(storage, 4)
        assert [statement for statement, _ in seen].count("PRAGMA") == 1
    finally:
        conn.close()
        storage.close()


def test_a_storage_dropped_without_close_ends_its_thread(tmp_path: Path) -> None:
    before = len(_checkpoint_threads())
    storage = SQLiteStorage(str(tmp_path / "zs.db"))
    storage._checkpointer.interval = 0.05
    _settle(storage, 1)
    assert len(_checkpoint_threads()) == before + 1
    del storage
    gc.collect()
    assert _until(lambda: len(_checkpoint_threads()) == before)


def test_a_memory_database_starts_no_thread() -> None:
    before = len(_checkpoint_threads())
    storage = SQLiteStorage(":memory:")
    try:
        _settle(storage, 3)
        assert len(_checkpoint_threads()) == before
    finally:
        storage.close()


def test_synchronous_full_is_a_setting(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path}/zs.db?synchronous=full")
    assert isinstance(storage, SQLiteStorage)
    try:
        assert storage.synchronous == "full"
        assert storage._conn().execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        _settle(storage, 2)
    finally:
        storage.close()
    with pytest.raises(ValueError, match="synchronous must be"):
        SQLiteStorage(str(tmp_path / "x.db"), synchronous="off")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///x.db?synchronous=off", "unknown SQLite option synchronous='off'"),
        ("sqlite:///x.db?journal_mode=delete", "unknown SQLite option journal_mode"),
        ("sqlite:///?synchronous=full", "names no SQLite file"),
    ],
)
def test_bad_sqlite_options_are_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_storage(url)


_CRASHING_WRITER = """
import os, sys, time
from zentitle_stripe.storage import NewEvent, SQLiteStorage
storage = SQLiteStorage(sys.argv[1])
for i in range(int(sys.argv[2])):
    event = NewEvent(event_id=f"evt_{i}", source="stripe", type="t", payload=b"{}")
    assert storage.record_settled(event, owner="w1", outcome="ignored", detail="x", now=1.0)
    print(i, flush=True)  # acknowledged
os._exit(0)  # a crash: no close, no checkpoint, the log left as it is
"""


def test_every_acknowledged_event_survives_a_crash_of_the_process(tmp_path: Path) -> None:
    """Checkpoints off the request path keep what a commit promised: a commit is in the
    log (the operating system has it) before the call returns."""
    path = tmp_path / "zs.db"
    SQLiteStorage(str(path)).close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", _CRASHING_WRITER, str(path), "300"],
        capture_output=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert len(result.stdout.splitlines()) == 300
    assert Path(f"{path}-wal").stat().st_size > 0  # left behind, not checkpointed
    storage = SQLiteStorage(str(path))
    try:
        for i in range(300):
            record = storage.get_event(f"evt_{i}")
            assert record is not None
            assert record.status is EventStatus.DONE
            assert len(record.history) == 1
        assert storage._conn().execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        storage.close()
