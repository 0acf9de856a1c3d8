"""Statements per event on each ingress path: the cost of the door, pinned.

SQLite statements are counted with `sqlite3`'s trace callback (trigger bodies apart),
PostgreSQL round trips with a counting wrapper around the pool's connections. The
figures are the ones `docs/benchmarks.md` states.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import find_server, fresh_schema
from zentitle_stripe import OutcomeKind, Provisioner
from zentitle_stripe.responses import Outcome
from zentitle_stripe.storage import EventStatus, SQLiteStorage, Storage
from zentitle_stripe.testing import make_event, one_time_invoice_paid_event, sign_stripe_payload

SECRET = "whsec_statements"


class _NoWrites:
    """A processor that acts on `invoice.paid` and writes nothing: the ledger alone."""

    event_types = frozenset({"invoice.paid"})

    def process(self, event: Any, *, owner: str) -> Outcome:
        return Outcome(OutcomeKind.PROVISIONED, "nothing to do")


def _deliver(provisioner: Provisioner, event: dict[str, Any]) -> OutcomeKind:
    body, signature = sign_stripe_payload(event, SECRET)
    response = provisioner.handle_event(body, signature)
    assert response.status == 200, response.body
    return response.outcome.kind


def _unhandled() -> dict[str, Any]:
    return make_event("customer.updated", {"id": "cus_1", "object": "customer"})


def _claimed() -> dict[str, Any]:
    return one_time_invoice_paid_event([], event_id=f"evt_{uuid.uuid4().hex}")


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[tuple[SQLiteStorage, list[str]]]:
    storage = SQLiteStorage(str(tmp_path / "zs.db"))
    statements: list[str] = []
    storage._conn().set_trace_callback(statements.append)
    yield storage, statements
    storage.close()


def _top_level(statements: list[str]) -> list[str]:
    """The statements issued (their verbs). A trigger's program is traced as a `--`
    comment or, in some Python versions, as its write again: both are left out."""
    issued = [s for s in statements if not s.startswith("--")]
    kept = [
        s for i, s in enumerate(issued) if i == 0 or s != issued[i - 1] or s.startswith("SELECT")
    ]
    return [s.split()[0].upper() for s in kept]


def test_sqlite_settled_event_is_one_statement(
    sqlite: tuple[SQLiteStorage, list[str]],
) -> None:
    storage, statements = sqlite
    provisioner = Provisioner(webhook_secrets=[SECRET], storage=storage)
    event = _unhandled()
    assert _deliver(provisioner, event) is OutcomeKind.IGNORED
    # The event's insert in autocommit; its trigger writes the attempt.
    assert _top_level(statements) == ["INSERT"]
    record = storage.get_event(event["id"])
    assert record is not None
    assert record.status is EventStatus.DONE
    assert record.claimed_by is None
    assert [(a.status, a.owner is not None) for a in record.history] == [("done", True)]

    statements.clear()
    assert _deliver(provisioner, event) is OutcomeKind.DUPLICATE
    # The insert that changes nothing, then the claim path's lock-free read answers.
    assert _top_level(statements) == ["INSERT", "SELECT"]


def test_sqlite_one_time_payment_is_settled(sqlite: tuple[SQLiteStorage, list[str]]) -> None:
    storage, statements = sqlite
    world_free = Provisioner(webhook_secrets=[SECRET], storage=storage, processor=_OneTime())
    assert _deliver(world_free, _claimed()) is OutcomeKind.IGNORED
    assert _top_level(statements) == ["INSERT"]


class _OneTime(_NoWrites):
    """Settles what the standard flows settle: a payment without subscription."""

    def settled(self, event: Any) -> Outcome | None:
        from zentitle_stripe.flows import Provisioning

        return Provisioning.settled(self, event)  # type: ignore[arg-type]

    def process(self, event: Any, *, owner: str) -> Outcome:  # pragma: no cover
        raise AssertionError("a settled event is never claimed")


def test_sqlite_claimed_path_is_two_autocommit_writes(
    sqlite: tuple[SQLiteStorage, list[str]],
) -> None:
    storage, statements = sqlite
    provisioner = Provisioner(webhook_secrets=[SECRET], storage=storage, processor=_NoWrites())
    assert _deliver(provisioner, _claimed()) is OutcomeKind.PROVISIONED
    # The lock-free read, the claim (its insert, in autocommit, is the decision), the
    # finish (autocommit): no BEGIN/COMMIT pair on a first delivery.
    assert _top_level(statements) == ["SELECT", "INSERT", "UPDATE"]


class _Counting:
    """Counts `execute` calls (round trips) on the pool's connections."""

    def __init__(self, storage: Storage) -> None:
        self.count = 0
        pool = storage._pool  # type: ignore[attr-defined]
        original = pool.connection
        counter = self

        def connection(*args: Any, **kwargs: Any) -> Any:
            manager = original(*args, **kwargs)

            class Wrapped:
                def __enter__(self) -> Any:
                    conn = manager.__enter__()
                    execute = conn.execute

                    def counted(*a: Any, **k: Any) -> Any:
                        counter.count += 1
                        return execute(*a, **k)

                    conn.execute = counted
                    self.conn, self.execute = conn, execute
                    return conn

                def __exit__(self, *exc: Any) -> Any:
                    self.conn.execute = self.execute
                    return manager.__exit__(*exc)

            return Wrapped()

        pool.connection = connection


@pytest.fixture
def postgres() -> Iterator[Storage]:
    from zentitle_stripe.storage.postgres import PostgresStorage

    with fresh_schema(find_server()) as url:
        storage = PostgresStorage(url, timeout=5.0)
        yield storage
        storage.close()


def test_postgres_round_trips(postgres: Storage) -> None:
    provisioner = Provisioner(webhook_secrets=[SECRET], storage=postgres, processor=_NoWrites())
    postgres.ping()  # the schema is in place; count only the events' own statements
    counting = _Counting(postgres)
    assert _deliver(provisioner, _unhandled()) is OutcomeKind.IGNORED
    assert counting.count == 1  # one statement, autocommit: one round trip, one commit
    counting.count = 0
    assert _deliver(provisioner, _claimed()) is OutcomeKind.PROVISIONED
    assert counting.count == 3  # read, insert (the claim), finish
