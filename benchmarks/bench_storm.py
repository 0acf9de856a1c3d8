"""A renewal storm in queue mode: ingress over HTTP, drained by worker processes.

Run by hand (needs the `server` and `postgres` extras and a PostgreSQL server):

    python benchmarks/bench_storm.py --renewals 10000 --workers 8 \
        --database postgresql://postgres@127.0.0.1:5432/test

Set-up (not timed): N buyers (one Stripe customer and e-mail each, as a storm of
renewals comes from many customers) get a subscription whose first payment goes through
the real flow in process, so storage and both emulators hold what production would. Then
both emulators are served over HTTP with `--latency` real seconds per request and a
`--rate-429` share of Zentitle2 requests answered 429; the ingress app (`create_app`,
`ZENTITLE_STRIPE_MODE=queue`) is served by uvicorn, and every renewal is posted to it
with 32 concurrent connections; then `zentitle-stripe worker --once --processes W`
drains the queue (run again while retried events wait for their backoff). Prints
events/s, ingress p50/p99, 5xx answers to Stripe (must be 0), extensions per invoice
(must be exactly one each) and events left pending (must be 0).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.support.postgres import create_schema, drop_schema, with_search_path
from zentitle_stripe.server import create_app, serve_in_thread
from zentitle_stripe.services import Services
from zentitle_stripe.storage import EventStatus, QueueStorage
from zentitle_stripe.storage.postgres import PostgresStorage
from zentitle_stripe.testing import EmulatedWorld

TEN_YEARS = 10 * 366 * 24 * 3600


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renewals", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.020)
    parser.add_argument("--rate-429", type=float, default=0.05)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    schema = create_schema(args.database, "zs_storm")
    try:
        return storm(args, with_search_path(args.database, schema))
    finally:
        drop_schema(args.database, schema)


def storm(args: argparse.Namespace, url: str) -> int:
    storage = PostgresStorage(url)
    world = EmulatedWorld(storage=storage)
    world.zentitle_emulator.token_lifetime = TEN_YEARS
    world.offering("PRO-1Y", seats=2)
    price = world.price("PRO-1Y")
    started = time.perf_counter()
    subscriptions = []
    for i in range(args.renewals):
        buyer = world.customer(email=f"buyer{i}@example.com", name=f"Buyer {i}")
        subscription_id, paid = world.subscribe(buyer, [(price, 1)])
        assert world.deliver(paid).status == 200
        subscriptions.append(subscription_id)
        if (i + 1) % 1000 == 0:
            print(
                f"set-up: {i + 1} first payments, {time.perf_counter() - started:.0f} s", flush=True
            )
    renewals = [world.renew(s) for s in subscriptions]
    print(f"set-up: {args.renewals} first payments in {time.perf_counter() - started:.0f} s")
    world.zentitle_emulator.reset_requests()
    with tempfile.TemporaryDirectory() as tmp, world.served(tmp) as environ:
        environ = environ | {"ZENTITLE_STRIPE_STORAGE": url, "ZENTITLE_STRIPE_MODE": "queue"}
        world.zentitle_emulator.latency = world.stripe_emulator.latency = args.latency
        world.zentitle_emulator.fail_rate(args.rate_429, ["429"], seed=16)
        statuses, latencies, ingress_s = ingress(world, environ, renewals, args.connections)
        drained_s, rounds = drain(environ, args.workers, storage)
    report(args, world, storage, statuses, latencies, ingress_s, drained_s, rounds)
    world.close()
    return 0


def ingress(
    world: EmulatedWorld, environ: dict[str, str], events: list[dict[str, Any]], connections: int
) -> tuple[collections.Counter[int], list[float], float]:
    services = Services.from_env(environ)
    statuses: collections.Counter[int] = collections.Counter()
    latencies: list[float] = []
    with serve_in_thread(create_app(services)) as base, httpx.Client(timeout=30) as client:

        def post(event: dict[str, Any]) -> None:
            body, header = world.stripe_emulator.sign(event, timestamp=int(time.time()))
            sent = time.perf_counter()
            answer = client.post(
                f"{base}/stripe/webhook",
                content=body,
                headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            )
            latencies.append(time.perf_counter() - sent)
            statuses[answer.status_code] += 1

        started = time.perf_counter()
        with ThreadPoolExecutor(connections) as pool:
            list(pool.map(post, events))
        elapsed = time.perf_counter() - started
    services.close()
    return statuses, latencies, elapsed


def drain(environ: dict[str, str], workers: int, storage: QueueStorage) -> tuple[float, int]:
    env = os.environ | environ
    command = [sys.executable, "-m", "zentitle_stripe.cli", "worker", "--once"]
    command += ["--processes", str(workers)]
    started = time.perf_counter()
    rounds = 0
    while True:
        rounds += 1
        subprocess.run(command, env=env, check=True)  # noqa: S603 (our own command)
        stats = storage.queue_stats(now=time.time() + 3600)
        if stats.queued == 0:
            return time.perf_counter() - started, rounds
        time.sleep(1.0)  # retried events wait for their backoff


def report(
    args: argparse.Namespace,
    world: EmulatedWorld,
    storage: PostgresStorage,
    statuses: collections.Counter[int],
    latencies: list[float],
    ingress_s: float,
    drained_s: float,
    rounds: int,
) -> None:
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    renews = collections.Counter(
        r.path
        for r in world.zentitle_emulator.requests
        if r.path.endswith("/renew") and r.fault is None  # a 429 turned it away unserved
    )
    n = args.renewals
    pending = [
        e
        for status in (EventStatus.QUEUED, EventStatus.PROCESSING, EventStatus.FAILED)
        for e in storage.list_events(status=status, limit=n)
    ]
    print(f"renewals: {n}, latency {args.latency * 1000:.0f} ms/call, 429 share {args.rate_429}")
    print("load average (1, 5, 15 min) at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(f"ingress: {n / ingress_s:.0f} events/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    errors = sum(v for k, v in statuses.items() if k >= 500)
    print(f"answers to Stripe: {dict(statuses)}; 5xx: {errors}")
    rate = n / drained_s
    print(
        f"drain: {args.workers} workers, {rate:.1f} events/s ({drained_s:.1f} s, {rounds} rounds)"
    )
    print(
        f"extensions: {sum(renews.values())} served renews for {len(renews)} entitlements; "
        f"exactly one each: {len(renews) == n and set(renews.values()) == {1}}"
    )
    print(f"events left pending or failed: {len(pending)}")


if __name__ == "__main__":
    sys.exit(main())
