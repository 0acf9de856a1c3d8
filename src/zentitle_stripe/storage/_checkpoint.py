"""SQLite's WAL checkpoints, run by a background thread instead of inside a request.

SQLite's automatic checkpoint runs inside the `COMMIT` that pushes the write-ahead log
past 1,000 pages: that commit copies the log into the database and syncs both files, so
one request in a few hundred pays milliseconds for everyone's writes (on the benchmark
disk it set the *mean* cost of a first-seen event). The request connections of
[`SQLiteStorage`][zentitle_stripe.storage.SQLiteStorage] switch it off
(`wal_autocheckpoint=0`); a `Checkpointer` thread with a connection of its own runs a
`PASSIVE` checkpoint, which never blocks a writer, after every `every_commits` commits
or once `interval` seconds passed since a write.

A passive checkpoint cannot restart the log while writes keep arriving, so the log
would grow without end under a storm (four writer threads: 800 MB in two seconds). The
bound: when a round finds more than `max_wal_pages` pages in the log, or the thread
has not run for `max_commits` commits, the next writer of this process checkpoints the
rest itself, holding the process's writer lock (so nothing is appended meanwhile), and
the write after it starts the log again from its beginning. Only a storm pays that, once
per `max_wal_pages`; `journal_size_limit` truncates the file after it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import weakref
from collections.abc import Callable

__all__ = ["Checkpointer"]

EVERY_COMMITS = 200
"""Commits between checkpoints; at 5-6 pages a first-seen event, SQLite's own 1,000 pages."""
INTERVAL = 1.0
"""Seconds after a write before an idle database is checkpointed anyway."""
MAX_WAL_PAGES = 16_384
"""Pages (64 MiB at 4 KiB) the log may keep before a writer checkpoints the rest itself."""
MAX_COMMITS = 8 * EVERY_COMMITS
"""Commits without a round of the thread (starved of CPU) before a writer checkpoints."""


class Checkpointer:
    """The background checkpoints of one `SQLiteStorage` (see the module)."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        every_commits: int = EVERY_COMMITS,
        interval: float = INTERVAL,
        max_wal_pages: int = MAX_WAL_PAGES,
        max_commits: int = MAX_COMMITS,
        enabled: bool = True,
    ) -> None:
        self._connect = connect
        self.every_commits = every_commits
        self.interval = interval
        self.max_wal_pages = max_wal_pages
        self.max_commits = max_commits
        self._commits = 0
        self._overdue = False
        self._rounds = threading.Lock()
        """Held by a checkpoint of this process: a writer's waits for the thread's."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        if not enabled:
            self._stop.set()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.runs = 0
        """Checkpoints run so far (the tests read it)."""
        self.held = 0
        """Checkpoints a writer ran itself, others held (the bound on the log)."""

    @property
    def due(self) -> bool:
        """Whether the next writer checkpoints (`before_write`), so it would wait."""
        return self._overdue or self._commits >= self.max_commits

    def before_write(self, conn: sqlite3.Connection) -> None:
        """Called by a writer holding the process's writer lock, before its statement:
        checkpoint here when the log is too long (see the module), else nothing."""
        if self.due:
            self._commits = 0
            try:
                with self._rounds:  # waits for a round of the thread to end
                    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error:
                return  # the write goes on; the next one tries again
            busy, log, done = row
            # Busy (another process checkpoints now) or a reader still on old pages:
            # the next write tries again.
            self._overdue = bool(busy) or log != done
            self.held += not self._overdue

    def committed(self) -> None:
        """Count a commit (called by writers after each one; a few attribute reads)."""
        self._commits += 1
        if self._thread is None:
            if not self._stop.is_set():
                self._start()
        elif self._commits >= self.every_commits:
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._stop.is_set():
                return
            # The thread holds only a weak reference: a storage dropped without close()
            # ends its thread at the next wake-up instead of keeping it forever.
            thread = threading.Thread(
                target=_run, args=(weakref.ref(self),), name="zentitle-stripe-checkpoint"
            )
            thread.daemon = True
            self._thread = thread
            thread.start()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One round of the thread: a passive checkpoint; a log still too long after it
        is left to the next writer (`before_write`)."""
        self._commits = 0
        self.runs += 1
        with self._rounds:
            log = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        self._overdue = log > self.max_wal_pages

    def close(self) -> None:
        """Stop the thread after its current round (the last connection's close
        checkpoints what is left)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)


def _run(ref: weakref.ReferenceType[Checkpointer]) -> None:
    """The thread: wait for enough commits or the interval, checkpoint, repeat."""
    found = ref()
    if found is None:
        return
    conn = found._connect()
    try:
        while True:
            wake, stop, interval = found._wake, found._stop, found.interval
            del found  # no strong reference while waiting
            woken = wake.wait(interval)
            found = ref()
            if found is None or stop.is_set():
                return
            wake.clear()
            if woken or found._commits:
                # Busy or locked by another process: the next round tries again.
                with contextlib.suppress(sqlite3.Error):
                    found.checkpoint(conn)
    finally:
        conn.close()
