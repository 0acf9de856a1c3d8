"""Events per second through ``Provisioner.handle_event``, per storage backend.

Run by hand: ``python benchmarks/bench_storage.py [--quick] [--events N]``.

Measures memory, SQLite (temp file, WAL) and PostgreSQL (a fresh schema on the server
named by ``ZENTITLE_STRIPE_TEST_POSTGRES``, default ``postgresql://postgres@127.0.0.1:5432/test``;
skipped if none answers) with 1, 4 and 8 workers, all in one process run, and prints
each figure's ratio to memory with the same number of workers.

Workers are threads sharing one storage object and one pair of in-process emulators
(Zentitle2 and Stripe over httpx mock transports: real HTTP client code, zero network
latency), each with its own clients and ``Provisioner``. Threads, because memory storage
cannot be shared across processes, and the point is the storage cost on the hot path,
not CPU scaling (the GIL serialises the Python work either way).

The workload is fixed and pre-signed before timing: for every subscription its first
payment, a redelivery of it, for half of them a renewal and its redelivery, and for a
fifth a cancellation. Subscriptions are dealt round-robin to workers, each worker
processing its own in story order, so no run depends on lock waits between workers.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from zentitle_stripe import Provisioner
from zentitle_stripe.storage import MemoryStorage, Storage
from zentitle_stripe.stripe_api import StripeGateway
from zentitle_stripe.testing import StripeEmulator, ZentitleEmulator

WORKER_COUNTS = (1, 4, 8)
START = int(datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc).timestamp())
_SKUS = (("PRO-1Y", 1), ("TEAM-1Y", 5))

Delivery = tuple[bytes, str]
World = tuple[ZentitleEmulator, StripeEmulator]
Backend = Callable[[], AbstractContextManager[Storage]]


def build_world(subscriptions: int, workers: int) -> tuple[World, list[list[Delivery]]]:
    """Fresh emulators and each worker's pre-signed deliveries (about 3.1 per subscription)."""
    zentitle, stripe = ZentitleEmulator(), StripeEmulator()
    prices = []
    for sku, seats in _SKUS:
        product = zentitle.add_product(f"Product {sku}")
        plan = zentitle.add_plan(product, duration=("year", 1))
        zentitle.add_offering(sku=sku, product_id=product, plan_id=plan, seat_count=seats)
        stripe_product = stripe.create_product(f"Product {sku}")
        prices.append(stripe.create_price(stripe_product, metadata={"offering_sku": sku}))
    stripe.now = START
    rng = random.Random(5)
    stories: list[tuple[str, list[dict[str, Any]]]] = []
    for n in range(subscriptions):
        customer = stripe.create_customer(email=f"buyer{n}@example.com", name=f"Buyer {n}")
        items = [(price, rng.choice((1, 2))) for price in rng.sample(prices, rng.choice((1, 2)))]
        subscription_id, paid = stripe.create_subscription(customer, items)
        stories.append((subscription_id, [paid, paid]))
    for n, (subscription_id, story) in enumerate(stories):
        if n % 2 == 0:
            renewal = stripe.renew_subscription(subscription_id)
            story += [renewal, renewal]
        if n % 5 == 0:
            story.append(stripe.cancel_subscription(subscription_id))
    zentitle.now = datetime.fromtimestamp(START, timezone.utc)  # licences start at START
    now = int(time.time())
    per_worker: list[list[Delivery]] = [[] for _ in range(workers)]
    for n, (_, story) in enumerate(stories):
        per_worker[n % workers] += [stripe.sign(event, timestamp=now) for event in story]
    return (zentitle, stripe), per_worker


def make_provisioner(world: World, storage: Storage) -> Provisioner:
    zentitle_emulator, stripe_emulator = world
    return Provisioner(
        webhook_secrets=[stripe_emulator.webhook_secret],
        storage=storage,
        zentitle=zentitle_emulator.client(sleep=lambda seconds: None),
        stripe=StripeGateway(
            stripe_emulator.api_key,
            api_base="http://stripe.emulator",
            max_network_retries=0,
            http_transport=stripe_emulator.transport(),
        ),
    )


def run_once(storage: Storage, subscriptions: int, workers: int) -> tuple[float, int]:
    """Events per second for one backend and worker count, and the number of events."""
    world, deliveries = build_world(subscriptions, workers)
    provisioners = [make_provisioner(world, storage) for _ in range(workers)]
    failures: list[str] = []
    start = threading.Barrier(workers + 1)

    def work(provisioner: Provisioner, mine: list[Delivery]) -> None:
        start.wait()
        for body, header in mine:
            response = provisioner.handle_event(body, header)
            if response.status != 200:
                failures.append(f"{response.status} {response.outcome.reason}")

    threads = [
        threading.Thread(target=work, args=(p, d))
        for p, d in zip(provisioners, deliveries, strict=True)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise SystemExit(f"{len(failures)} deliveries failed, e.g. {failures[:3]}")
    events = sum(len(d) for d in deliveries)
    return events / elapsed, events


@contextmanager
def memory_backend() -> Iterator[Storage]:
    yield MemoryStorage()


@contextmanager
def sqlite_backend() -> Iterator[Storage]:
    from zentitle_stripe.storage.sqlite import SQLiteStorage

    with tempfile.TemporaryDirectory() as tmp:
        storage = SQLiteStorage(str(Path(tmp) / "bench.db"))
        try:
            yield storage
        finally:
            storage.close()


def postgres_server() -> str | None:
    """The server URL, or ``None`` when psycopg or the server is missing."""
    try:
        import psycopg
    except ImportError:
        return None
    url = os.environ.get(
        "ZENTITLE_STRIPE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
    )
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return None
    return url


def postgres_backend(server: str) -> Backend:
    @contextmanager
    def backend() -> Iterator[Storage]:
        import psycopg

        from zentitle_stripe.storage.postgres import PostgresStorage

        schema = f"zs_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        joiner = "&" if "?" in server else "?"
        url = f"{server}{joiner}options={quote(f'-c search_path={schema}')}"
        storage = PostgresStorage(url, max_size=10)
        try:
            storage.ping()
            yield storage
        finally:
            storage.close()
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    return backend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a small workload, for a smoke run")
    parser.add_argument("--subscriptions", type=int, help="subscriptions per run (default 240)")
    parser.add_argument("--repeat", type=int, help="runs per figure, best kept (default 2)")
    args = parser.parse_args(argv)
    subscriptions = args.subscriptions or (48 if args.quick else 240)
    repeat = args.repeat or (1 if args.quick else 2)

    backends: dict[str, Backend] = {"memory": memory_backend, "sqlite": sqlite_backend}
    server = postgres_server()
    if server is not None:
        backends["postgres"] = postgres_backend(server)
    else:
        print("PostgreSQL: no server answered, skipped", file=sys.stderr)

    print(
        f"# {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{subscriptions} subscriptions per run"
    )
    run_started = time.perf_counter()
    with memory_backend() as storage:
        run_once(storage, 8, 1)  # warm-up: imports, first token, caches
    figures: dict[tuple[str, int], float] = {}
    events = 0
    for _ in range(repeat):  # rounds interleave backends, so drift in load hits all alike
        for workers in WORKER_COUNTS:
            for name, backend in backends.items():
                with backend() as storage:
                    rate, events = run_once(storage, subscriptions, workers)
                figures[name, workers] = max(rate, figures.get((name, workers), 0.0))
    print(
        f"# {events} events per run, best of {repeat}; "
        f"all runs took {time.perf_counter() - run_started:.0f} s\n"
    )
    print("| backend | workers | events/s | ratio to memory |")
    print("|---|---:|---:|---:|")
    for name in backends:
        for workers in WORKER_COUNTS:
            rate = figures[name, workers]
            ratio = rate / figures["memory", workers]
            print(f"| {name} | {workers} | {rate:,.0f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
