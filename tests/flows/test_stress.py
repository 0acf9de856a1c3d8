"""Stress: 8 worker processes, one database, 1,000 events each delivered 3 times.

The issue's scenario, for SQLite (processes on one machine) and PostgreSQL: 300
subscriptions, 1,000 ``invoice.paid`` / ``customer.subscription.deleted`` events, every
event delivered three times in shuffled order to 8 spawned processes of 3 threads each,
while the served Zentitle2 emulator fails 5% of requests transiently and the "Stripe
side" retries every non-2xx delivery (re-signed) until it is acknowledged.

The Zentitle2 emulator is the single source of truth for the end state. Its clock stands
at the subscriptions' common start, so every licence, whichever delivery creates it,
expires one year after the start, a renewal always extends from the old (future) expiry
by exactly one year, and the expected final expiry is simply the last paid period end.

Slow remotes (`test_stress_slow_remote_*`): a 3 s lease, 200 events (scale 5) and 8%
of Zentitle2 requests faulted, half of them `slow` (the request reaches the backend 4 s
late, longer than the lease: the client gives up at the time budget and the work lands
afterwards) or `late` (landed by a background thread within 2 s), the rest 429 with
`Retry-After` (honoured, up to the budget) and the plain transient faults. The create
window (8 s) exceeds every late landing (4 s), so a redelivery waits instead of creating
again.

PostgreSQL: same server discovery and skip/require rule as ``tests/storage/test_postgres.py``
(`tests.support.postgres`), in a fresh schema dropped afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.support.postgres import find_server, fresh_schema
from tests.support.stress import (
    DELIVERIES_PER_EVENT,
    MAX_ATTEMPTS,
    START,
    TRANSIENT_FAULTS,
    Story,
    WorkerConfig,
    build_story,
    deliver_all,
    open_worker_storage,
    seed_offerings,
)
from zentitle_stripe.storage import EventStatus, Storage
from zentitle_stripe.testing import StripeEmulator, ZentitleEmulator

pytestmark = pytest.mark.slow

THREADS_PER_WORKER = 3
SLOW_LEASE = 3.0
SLOW_DELAY = 4.0
"""How late a `slow` request reaches the backend: longer than the lease."""
LAND_EVERY = 2.0
"""How often the background thread lands `late` work (the emulator's clock stands still)."""
SLOW_CREATE_WINDOW = 8.0
"""Above every late landing (`SLOW_DELAY`, `LAND_EVERY`), with a margin."""


@pytest.fixture(autouse=True)
def _quiet_uvicorn() -> Iterator[None]:
    """Injected network faults make the served emulator raise; uvicorn logs each one."""
    logger = logging.getLogger("uvicorn.error")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _run(storage_kind: str, storage_target: str, *, slow: bool = False) -> None:
    zentitle, stripe = ZentitleEmulator(), StripeEmulator()
    seed_offerings(zentitle)
    story = build_story(stripe, scale=5 if slow else 1)
    assert len(story.events) == (200 if slow else 1000)
    zentitle.now = datetime.fromtimestamp(START, timezone.utc)
    # Schema creation happens here, once, before the workers race for it.
    open_worker_storage(storage_kind, storage_target).close()
    with zentitle.serve() as zentitle_url, stripe.serve() as stripe_url:
        if slow:
            kinds = ("slow", "slow", "late", "late", "429", "429", *TRANSIENT_FAULTS)
            zentitle.fail_rate(0.08, kinds=kinds, seed=3, delay=SLOW_DELAY)
        else:
            zentitle.fail_rate(0.05, kinds=TRANSIENT_FAULTS, seed=3)
        config = WorkerConfig(
            storage_kind=storage_kind,
            storage_target=storage_target,
            zentitle_url=zentitle_url,
            zentitle_tenant=zentitle.tenant_id,
            zentitle_client_id=zentitle.client_id,
            zentitle_client_secret=zentitle.client_secret,
            stripe_url=stripe_url,
            stripe_api_key=stripe.api_key,
            webhook_secret=stripe.webhook_secret,
            threads=THREADS_PER_WORKER,
            **(
                {
                    "lease_seconds": SLOW_LEASE,
                    "create_window": SLOW_CREATE_WINDOW,
                    "max_sleep": SLOW_LEASE,
                }
                if slow
                else {}
            ),
        )
        with _landing_late(zentitle, every=LAND_EVERY if slow else None):
            report = deliver_all(
                config, story.events, max_attempts=MAX_ATTEMPTS * (3 if slow else 1)
            )
        zentitle.fail_rate(0)
    faults = sum(1 for r in zentitle.requests if r.fault)
    kinds_seen = {
        k: sum(1 for r in zentitle.requests if r.fault == k) for k in ("slow", "late", "429")
    }
    print(
        f"\n{storage_kind}{' slow remotes' if slow else ''}: "
        f"{len(story.events) * DELIVERIES_PER_EVENT} deliveries, "
        f"{report.attempts} attempts ({report.attempts - len(story.events) * DELIVERIES_PER_EVENT}"
        f" retries) in {report.seconds:.1f} s; statuses {report.statuses}; "
        f"leases lost {report.leases_lost}; {len(zentitle.requests)} Zentitle2 requests, "
        f"{faults} failed by injection {kinds_seen}"
    )
    assert not report.never_acknowledged, (
        f"{len(report.never_acknowledged)} deliveries never got a 2xx, e.g. "
        f"{report.never_acknowledged[:3]}"
    )
    assert faults > 0, "the fault injection did not fire"
    storage = open_worker_storage(storage_kind, storage_target)
    try:
        _check_events(storage, story)
    finally:
        storage.close()
    refs = [c.account_ref_id for c in zentitle.customers()]
    assert len(refs) == len(set(refs)), (
        f"{len(refs)} Zentitle2 customers for {len(set(refs))} Stripe customers"
    )
    _check_licences(zentitle, story)


@contextlib.contextmanager
def _landing_late(zentitle: ZentitleEmulator, *, every: float | None) -> Iterator[None]:
    """Land `late` work every `every` seconds while the run goes on (none when `None`)."""
    stop = threading.Event()

    def land() -> None:
        while not stop.wait(every):
            zentitle.complete_late()

    thread = threading.Thread(target=land, daemon=True) if every is not None else None
    if thread is not None:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join()
        zentitle.complete_late()


def _check_events(storage: Storage, story: Story) -> None:
    for status in (EventStatus.PROCESSING, EventStatus.FAILED):
        left = storage.list_events(status=status, limit=10)
        assert not left, f"events left {status.value}: {[(e.event_id, e.last_error) for e in left]}"
    done = storage.list_events(status=EventStatus.DONE, limit=5000)
    assert {e.event_id for e in done} == {e["id"] for e in story.events}


def _check_licences(zentitle: ZentitleEmulator, story: Story) -> None:
    groups_by_sub: dict[str, list[str]] = {}
    for group in zentitle.groups():
        groups_by_sub.setdefault(group.order_ref_id or "", []).append(group.id)
    problems: list[str] = []
    for sub_id, plan in story.plans.items():
        groups = groups_by_sub.get(sub_id, [])
        entitlements = [e for g in groups for e in zentitle.entitlements(g)]
        if plan.canceled:
            if len(groups) > 1:
                problems.append(f"{sub_id} (cancelled): {len(groups)} groups")
            active = [e.id for e in entitlements if e.status != "disabled"]
            if active:
                problems.append(f"{sub_id} (cancelled): entitlements not disabled {active}")
            continue
        if len(groups) != 1:
            problems.append(f"{sub_id}: {len(groups)} groups, expected exactly one")
            continue
        for entitlement in entitlements:
            assert entitlement.expiry_date is not None
            expiry = int(entitlement.expiry_date.timestamp())
            if entitlement.status != "active":
                problems.append(f"{sub_id}: entitlement {entitlement.id} is {entitlement.status}")
            elif expiry > plan.paid_through:
                problems.append(
                    f"{sub_id}: entitlement {entitlement.id} renewed too often: expires "
                    f"{entitlement.expiry_date:%Y-%m-%d}, paid through "
                    f"{datetime.fromtimestamp(plan.paid_through, timezone.utc):%Y-%m-%d} "
                    f"({plan.renewals} renewals)"
                )
            elif expiry < plan.paid_through:
                problems.append(
                    f"{sub_id}: entitlement {entitlement.id} renewed too little: expires "
                    f"{entitlement.expiry_date:%Y-%m-%d}, paid through "
                    f"{datetime.fromtimestamp(plan.paid_through, timezone.utc):%Y-%m-%d}"
                )
    assert not problems, f"{len(problems)} licence problems:\n" + "\n".join(problems[:20])


def test_stress_sqlite_processes(tmp_path: Path) -> None:
    _run("sqlite", str(tmp_path / "stress.db"))


# -- PostgreSQL: discovery and isolation as in tests/storage/test_postgres.py ------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections see only a fresh schema, dropped afterwards."""
    with fresh_schema(find_server(), prefix="zs_stress") as url:
        yield url


@pytest.mark.postgres
def test_stress_postgres_processes(postgres_url: str) -> None:
    _run("postgres", postgres_url)


def test_stress_slow_remote_sqlite(tmp_path: Path) -> None:
    _run("sqlite", str(tmp_path / "stress.db"), slow=True)


@pytest.mark.postgres
def test_stress_slow_remote_postgres(postgres_url: str) -> None:
    _run("postgres", postgres_url, slow=True)
