"""Outcome hooks in storage: each event's recorded outcome, and one run per handler.

When an event's licence work is done and hooks are registered for its outcome, the
outcome (as JSON) and one `pending` run per handler are recorded together, before the
event is finished. Each handler run is then claimed like an event (a lease, so two
deliveries never run one handler at once) and finished `done` or `failed`; a `done` run
is never claimed again, so a retry, a redelivery or a replay runs only what has not
succeeded. A `failed` run's `lease_expires` is when a worker retries it on its own.

[`HookStorage`][zentitle_stripe.storage.HookStorage] is optional, like the queue: every
built-in backend has it; `Provisioner.on_outcome` refuses a storage without it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["HookRun", "HookStatus", "HookStorage", "StoredOutcome"]


class HookStatus(str, enum.Enum):
    """Where one handler's run for one event stands."""

    PENDING = "pending"
    """Recorded with the outcome, not started yet."""
    RUNNING = "running"
    """Claimed by a worker under a lease (or claimed, then the worker crashed)."""
    DONE = "done"
    """Succeeded: never run again for this event."""
    FAILED = "failed"
    """Raised: run again by the next redelivery, replay or worker pass."""


@attrs.frozen
class HookRun:
    """One handler's run for one event."""

    handler: str
    """The handler's stable name (`module.qualname`)."""
    status: HookStatus
    attempts: int = 0
    owner: str | None = None
    lease_expires: float | None = None
    """`running`: the claim's lease; `pending`/`failed`: when a worker may take it."""
    error: str | None = None
    updated_at: float = 0.0


@attrs.frozen
class StoredOutcome:
    """The outcome recorded for an event's hooks, and their runs in registration order."""

    source: str
    event_id: str
    kind: str
    data: str
    """The [`LicenceOutcome`][zentitle_stripe.hooks.LicenceOutcome] as JSON."""
    recorded_at: float
    runs: tuple[HookRun, ...] = ()

    def unfinished(self) -> tuple[HookRun, ...]:
        """The runs that have not succeeded."""
        return tuple(run for run in self.runs if run.status is not HookStatus.DONE)

    @classmethod
    def pending(
        cls,
        source: str,
        event_id: str,
        *,
        kind: str,
        data: str,
        handlers: Sequence[str],
        now: float,
        not_before: float,
    ) -> StoredOutcome:
        """What `record_outcome` stores when it is first: a `pending` run per handler."""
        runs = tuple(
            HookRun(h, HookStatus.PENDING, lease_expires=not_before, updated_at=now)
            for h in handlers
        )
        return cls(source, event_id, kind, data, now, runs)


@runtime_checkable
class HookStorage(Protocol):
    """The optional part of a storage that outcome hooks need (every built-in has it)."""

    def record_outcome(
        self,
        source: str,
        event_id: str,
        *,
        kind: str,
        data: str,
        handlers: Sequence[str],
        now: float,
        not_before: float,
    ) -> StoredOutcome:
        """Record an event's outcome and a `pending` run per handler in one atomic step,
        unless an outcome is recorded already (the first one wins, runs untouched).
        `not_before` is when a worker may take a pending run (the caller runs it first).
        Returns what is stored."""
        ...

    def get_outcome(self, event_id: str, source: str = "stripe") -> StoredOutcome | None:
        """The recorded outcome of an event with its runs, or `None`."""
        ...

    def claim_hook(
        self,
        source: str,
        event_id: str,
        handler: str,
        *,
        owner: str,
        lease_seconds: float,
        now: float,
    ) -> bool:
        """Take a run that is `pending`, `failed`, or `running` past its lease (attempts
        + 1), atomically; `False` when it is `done`, held by someone else, or unknown."""
        ...

    def finish_hook(
        self,
        source: str,
        event_id: str,
        handler: str,
        *,
        owner: str,
        error: str | None,
        retry_at: float | None,
        now: float,
    ) -> bool:
        """Finish a run `owner` holds: `done` when `error` is `None`, else `failed`, due
        again for a worker at `retry_at`. `False` (nothing written) when `owner` lost it."""
        ...

    def due_hooks(
        self, *, now: float, max_attempts: int, limit: int = 100
    ) -> list[tuple[str, str]]:
        """`(source, event_id)` of events with a run a worker should take now (pending or
        failed and due, or running past its lease, fewer than `max_attempts` attempts),
        the longest due first."""
        ...


# -- the SQL backends ----------------------------------------------------------------------

_RUN_COLUMNS = "handler, status, attempts, owner, lease_expires, error, updated_at"
_INSERT_OUTCOME = (
    "INSERT INTO zs_outcomes (source, event_id, kind, data, recorded_at) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (source, event_id) DO NOTHING"
)
_INSERT_RUN = (
    "INSERT INTO zs_hook_runs (source, event_id, handler, position, status, attempts, "
    "lease_expires, updated_at) VALUES (%s, %s, %s, %s, 'pending', 0, %s, %s) "
    "ON CONFLICT (source, event_id, handler) DO NOTHING"
)
_SELECT_OUTCOME = (
    "SELECT kind, data, recorded_at FROM zs_outcomes WHERE source = %s AND event_id = %s"
)
_SELECT_RUNS = (
    f"SELECT {_RUN_COLUMNS} FROM zs_hook_runs "  # noqa: S608
    "WHERE source = %s AND event_id = %s ORDER BY position"
)
# The claim rule, in the statement so that it is atomic.
_CLAIM_RUN = (
    "UPDATE zs_hook_runs SET status = 'running', attempts = attempts + 1, owner = %s, "
    "lease_expires = %s, updated_at = %s "
    "WHERE source = %s AND event_id = %s AND handler = %s AND (status IN ('pending', "
    "'failed') OR (status = 'running' AND lease_expires <= %s))"
)
_FINISH_RUN = (
    "UPDATE zs_hook_runs SET status = %s, error = %s, owner = NULL, lease_expires = %s, "
    "updated_at = %s WHERE source = %s AND event_id = %s AND handler = %s "
    "AND status = 'running' AND owner = %s"
)
_DUE_RUNS = (
    "SELECT source, event_id FROM zs_hook_runs WHERE status IN ('pending', 'failed', "
    "'running') AND lease_expires <= %s AND attempts < %s "
    "GROUP BY source, event_id ORDER BY min(lease_expires) LIMIT %s"
)

HOOK_TABLES = """
CREATE TABLE IF NOT EXISTS zs_outcomes (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    recorded_at {real} NOT NULL,
    PRIMARY KEY (source, event_id)
);
CREATE TABLE IF NOT EXISTS zs_hook_runs (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    handler TEXT NOT NULL,
    position INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    owner TEXT,
    lease_expires {real},
    error TEXT,
    updated_at {real} NOT NULL,
    PRIMARY KEY (source, event_id, handler)
);
CREATE INDEX IF NOT EXISTS zs_hook_runs_due ON zs_hook_runs (status, lease_expires);
"""
"""The two tables (SQLite: schema 3; PostgreSQL: migration 2 -> 3); `{real}` is the
backend's floating-point type."""


class SQLHooks:
    """Outcome hooks for the SQL backends; each supplies `_transact` (its transaction)."""

    _fetch: Callable[[str, str, Sequence[Any]], Sequence[Sequence[Any]]]
    _change: Callable[[str, str, Sequence[Any]], int]

    def _transact(
        self, doing: str, block: Callable[[Callable[[str, Sequence[Any]], int]], bool]
    ) -> bool:
        raise NotImplementedError  # pragma: no cover - every SQL backend has one

    def record_outcome(
        self,
        source: str,
        event_id: str,
        *,
        kind: str,
        data: str,
        handlers: Sequence[str],
        now: float,
        not_before: float,
    ) -> StoredOutcome:
        def block(change: Callable[[str, Sequence[Any]], int]) -> bool:
            if change(_INSERT_OUTCOME, (source, event_id, kind, data, now)) != 1:
                return False
            for position, handler in enumerate(handlers):
                change(_INSERT_RUN, (source, event_id, handler, position, not_before, now))
            return True

        if self._transact("record an outcome", block):  # what was just written: no read
            return StoredOutcome.pending(
                source,
                event_id,
                kind=kind,
                data=data,
                handlers=handlers,
                now=now,
                not_before=not_before,
            )
        stored = self.get_outcome(event_id, source)
        assert stored is not None  # recorded earlier; outcomes are never deleted
        return stored

    def get_outcome(self, event_id: str, source: str = "stripe") -> StoredOutcome | None:
        key = (source, event_id)
        rows = self._fetch("read an outcome", _SELECT_OUTCOME, key)
        if not rows:
            return None
        kind, data, recorded_at = rows[0]
        runs = self._fetch("read hook runs", _SELECT_RUNS, key)
        return StoredOutcome(source, event_id, kind, data, recorded_at, _runs(runs))

    def claim_hook(
        self,
        source: str,
        event_id: str,
        handler: str,
        *,
        owner: str,
        lease_seconds: float,
        now: float,
    ) -> bool:
        params = (owner, now + lease_seconds, now, source, event_id, handler, now)
        return self._change("claim a hook run", _CLAIM_RUN, params) == 1

    def finish_hook(
        self,
        source: str,
        event_id: str,
        handler: str,
        *,
        owner: str,
        error: str | None,
        retry_at: float | None,
        now: float,
    ) -> bool:
        status = HookStatus.DONE if error is None else HookStatus.FAILED
        after = None if error is None else (now if retry_at is None else retry_at)
        params = (status.value, error, after, now, source, event_id, handler, owner)
        return self._change("finish a hook run", _FINISH_RUN, params) == 1

    def due_hooks(
        self, *, now: float, max_attempts: int, limit: int = 100
    ) -> list[tuple[str, str]]:
        rows = self._fetch("list due hook runs", _DUE_RUNS, (now, max_attempts, limit))
        return [(str(source), str(event_id)) for source, event_id in rows]


def _runs(rows: Sequence[Sequence[Any]]) -> tuple[HookRun, ...]:
    return tuple(
        HookRun(handler, HookStatus(status), attempts, owner, lease, error, updated)
        for handler, status, attempts, owner, lease, error, updated in rows
    )


# -- the memory backend ------------------------------------------------------------------


class MemoryHooks:
    """Outcome hooks in dicts, under the memory backend's lock (the same rules)."""

    def __init__(self) -> None:
        self.outcomes: dict[tuple[str, str], StoredOutcome] = {}

    def record(self, key: tuple[str, str], outcome: StoredOutcome) -> StoredOutcome:
        return self.outcomes.setdefault(key, outcome)

    def claim(
        self, key: tuple[str, str], handler: str, owner: str, expires: float, now: float
    ) -> bool:
        def claimable(run: HookRun) -> bool:
            if run.status in (HookStatus.PENDING, HookStatus.FAILED):
                return True
            return run.status is HookStatus.RUNNING and (run.lease_expires or 0.0) <= now

        return self._change(
            key,
            handler,
            claimable,
            lambda run: attrs.evolve(
                run,
                status=HookStatus.RUNNING,
                attempts=run.attempts + 1,
                owner=owner,
                lease_expires=expires,
                updated_at=now,
            ),
        )

    def finish(
        self,
        key: tuple[str, str],
        handler: str,
        owner: str,
        error: str | None,
        retry_at: float | None,
        now: float,
    ) -> bool:
        failed = error is not None
        return self._change(
            key,
            handler,
            lambda run: run.status is HookStatus.RUNNING and run.owner == owner,
            lambda run: attrs.evolve(
                run,
                status=HookStatus.FAILED if failed else HookStatus.DONE,
                owner=None,
                error=error,
                lease_expires=(now if retry_at is None else retry_at) if failed else None,
                updated_at=now,
            ),
        )

    def due(self, now: float, max_attempts: int, limit: int) -> list[tuple[str, str]]:
        waiting = (HookStatus.PENDING, HookStatus.FAILED, HookStatus.RUNNING)
        due: dict[tuple[str, str], float] = {}
        for key, outcome in self.outcomes.items():
            for run in outcome.runs:
                lease = run.lease_expires
                if run.status not in waiting or lease is None or run.attempts >= max_attempts:
                    continue
                if lease <= now:
                    due[key] = min(due.get(key, lease), lease)
        return sorted(due, key=lambda k: due[k])[:limit]

    def _change(
        self,
        key: tuple[str, str],
        handler: str,
        allowed: Callable[[HookRun], bool],
        change: Callable[[HookRun], HookRun],
    ) -> bool:
        outcome = self.outcomes.get(key)
        if outcome is None:
            return False
        runs = list(outcome.runs)
        for i, run in enumerate(runs):
            if run.handler == handler and allowed(run):
                runs[i] = change(run)
                self.outcomes[key] = attrs.evolve(outcome, runs=tuple(runs))
                return True
        return False
