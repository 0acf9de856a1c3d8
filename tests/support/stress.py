"""The multi-process stress run behind ``tests/flows/test_stress.py``.

Kept out of the test module so ``multiprocessing`` (spawn) children import only this
file: the story builder, the worker process and the "Stripe side" that delivers every
event three times in shuffled order and retries each delivery until it gets a 2xx.
"""

from __future__ import annotations

import heapq
import multiprocessing
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from zentitle_stripe import Provisioner
from zentitle_stripe.storage import Storage
from zentitle_stripe.stripe_api import StripeGateway
from zentitle_stripe.testing import StripeEmulator, ZentitleEmulator, sign_stripe_payload
from zentitle_stripe.zentitle import ZentitleClient

SUBSCRIPTIONS = 300
DELIVERIES_PER_EVENT = 3
WORKERS = 8
MAX_ATTEMPTS = 30
START = int(datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc).timestamp())
"""Every subscription starts here (no 29 February, so calendar years add up exactly)."""
TRANSIENT_FAULTS = ("503", "429", "timeout", "lost_response")
# Renewal counts: 40 subscriptions never renewed, 40 once, 75 twice, 145 three times,
# so 300 first payments + 625 renewals + 75 cancellations = 1,000 events.
_RENEWAL_MIX = (0,) * 40 + (1,) * 40 + (2,) * 75 + (3,) * 145
_SKUS = (("PRO-1Y", 1), ("TEAM-1Y", 5), ("ADDON-1Y", 1))


@dataclass
class SubscriptionPlan:
    """What the story did to one subscription, to check the end state against."""

    subscription_id: str
    renewals: int
    canceled: bool
    paid_through: int
    """Period end of its latest paid invoice (unix seconds)."""


@dataclass
class Story:
    """The events Stripe sent, and what each subscription should end up with."""

    events: list[dict[str, Any]] = field(default_factory=list)
    plans: dict[str, SubscriptionPlan] = field(default_factory=dict)


def seed_offerings(zentitle: ZentitleEmulator) -> None:
    """One yearly subscription offering per SKU, no grace period."""
    for sku, seats in _SKUS:
        product = zentitle.add_product(f"Product {sku}")
        plan = zentitle.add_plan(product, duration=("year", 1))
        zentitle.add_offering(sku=sku, product_id=product, plan_id=plan, seat_count=seats)


def build_story(stripe: StripeEmulator, seed: int = 7, *, scale: int = 1) -> Story:
    """300 subscriptions of 1-2 items; renewals; a quarter cancelled: 1,000 events.

    All subscriptions start at :data:`START` before any renewal moves the emulator's
    clock, so a licence created by any delivery expires exactly one year after START,
    and the subscription's final expiry must be its last paid period end. `scale` > 1
    keeps every `scale`-th subscription's share of the mix (200 events for 5).
    """
    subscriptions = SUBSCRIPTIONS // scale
    rng = random.Random(seed)
    prices = [
        stripe.create_price(stripe.create_product(f"Product {sku}"), metadata={"offering_sku": sku})
        for sku, _ in _SKUS
    ]
    stripe.now = START
    customers = [
        stripe.create_customer(email=f"buyer{n}@example.com", name=f"Buyer {n}")
        for n in range(subscriptions * 2 // 3)  # some customers hold two subscriptions
    ]
    story = Story()
    renewal_counts = list(_RENEWAL_MIX[::scale])
    rng.shuffle(renewal_counts)
    canceled = set(rng.sample(range(subscriptions), subscriptions // 4))
    subscription_ids = []
    for n in range(subscriptions):
        chosen = rng.sample(prices, rng.choice((1, 1, 2)))
        items = [(price, rng.choice((1, 1, 2, 3))) for price in chosen]
        subscription_id, event = stripe.create_subscription(customers[n % len(customers)], items)
        story.events.append(event)
        subscription_ids.append(subscription_id)
        story.plans[subscription_id] = SubscriptionPlan(
            subscription_id, renewal_counts[n], n in canceled, _period_end(event)
        )
    for round_ in range(1, max(renewal_counts) + 1):
        for subscription_id in subscription_ids:
            plan = story.plans[subscription_id]
            if plan.renewals >= round_:
                event = stripe.renew_subscription(subscription_id)
                story.events.append(event)
                plan.paid_through = _period_end(event)
    for subscription_id in subscription_ids:
        if story.plans[subscription_id].canceled:
            story.events.append(stripe.cancel_subscription(subscription_id))
    return story


def _period_end(event: dict[str, Any]) -> int:
    return int(event["data"]["object"]["lines"]["data"][0]["period"]["end"])


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs to build its own :class:`Provisioner`."""

    storage_kind: str  # "sqlite" or "postgres"
    storage_target: str  # file path or URL
    zentitle_url: str
    zentitle_tenant: str
    zentitle_client_id: str
    zentitle_client_secret: str
    stripe_url: str
    stripe_api_key: str
    webhook_secret: str
    threads: int
    lease_seconds: float = 120.0
    create_window: float = 1.0
    """The injected faults of the plain run either do no work or do it at once (no late
    landings), so a create in doubt need not be waited for long."""
    max_sleep: float = 0.02
    """Cap on the client's backoff and `Retry-After` sleeps (the slow-remote mode honours
    them: the fence bounds them by the lease)."""


def open_worker_storage(kind: str, target: str) -> Storage:
    if kind == "sqlite":
        from zentitle_stripe.storage.sqlite import SQLiteStorage

        return SQLiteStorage(target, busy_timeout=30.0)
    from zentitle_stripe.storage.postgres import PostgresStorage

    return PostgresStorage(target, max_size=8, timeout=30.0)


def worker_main(
    config: WorkerConfig,
    events: list[dict[str, Any]],
    tasks: multiprocessing.Queue[tuple[int, int] | None],
    results: multiprocessing.Queue[tuple[int, int, int, str]],
) -> None:
    """One worker process: ``config.threads`` threads take (delivery, event) tasks, sign
    the event afresh (as each Stripe delivery attempt is) and report the status."""
    storage = open_worker_storage(config.storage_kind, config.storage_target)
    token_url = (
        f"{config.zentitle_url}/realms/{config.zentitle_tenant}/protocol/openid-connect/token"
    )
    zentitle = ZentitleClient(
        config.zentitle_url,
        config.zentitle_tenant,
        config.zentitle_client_id,
        config.zentitle_client_secret,
        token_url,
        timeout=30.0,
        sleep=lambda seconds: time.sleep(min(seconds, config.max_sleep)),
    )
    stripe = StripeGateway(config.stripe_api_key, api_base=config.stripe_url, timeout=30.0)
    provisioner = Provisioner(
        webhook_secrets=[config.webhook_secret],
        storage=storage,
        zentitle=zentitle,
        stripe=stripe,
        lease_seconds=config.lease_seconds,
        create_window=config.create_window,
    )

    def run() -> None:
        while True:
            task = tasks.get()
            if task is None:
                return
            delivery, index = task
            body, header = sign_stripe_payload(
                events[index], config.webhook_secret, timestamp=int(time.time())
            )
            try:
                response = provisioner.handle_event(body, header)
                status, detail = response.status, response.outcome.reason
            except BaseException as exc:  # handle_event must never raise; report it if it does
                status, detail = 599, f"handle_event raised {type(exc).__name__}: {exc}"
            results.put((delivery, index, status, detail))

    threads = [threading.Thread(target=run, daemon=True) for _ in range(config.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    zentitle.close()
    stripe.close()
    storage.close()


@dataclass
class DeliveryReport:
    """How the deliveries went, for assertions and the test's log."""

    attempts: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    never_acknowledged: list[tuple[str, int, str]] = field(default_factory=list)
    leases_lost: int = 0
    """Answers that said the attempt lost its lease to another worker."""
    seconds: float = 0.0


def deliver_all(
    config: WorkerConfig,
    events: list[dict[str, Any]],
    *,
    workers: int = WORKERS,
    seed: int = 11,
    deadline_seconds: float = 240.0,
    max_attempts: int = MAX_ATTEMPTS,
    on_progress: Callable[[str], None] = lambda message: None,
) -> DeliveryReport:
    """Play Stripe: every event ``DELIVERIES_PER_EVENT`` times, shuffled, to ``workers``
    processes; a non-2xx answer is retried after a growing delay, up to ``MAX_ATTEMPTS``."""
    rng = random.Random(seed)
    deliveries = [i for i in range(len(events)) for _ in range(DELIVERIES_PER_EVENT)]
    rng.shuffle(deliveries)
    context = multiprocessing.get_context("spawn")
    tasks: multiprocessing.Queue[tuple[int, int] | None] = context.Queue()
    results: multiprocessing.Queue[tuple[int, int, int, str]] = context.Queue()
    processes = [
        context.Process(target=worker_main, args=(config, events, tasks, results), daemon=True)
        for _ in range(workers)
    ]
    report = DeliveryReport()
    started = time.monotonic()
    for process in processes:
        process.start()
    try:
        for delivery, index in enumerate(deliveries):
            tasks.put((delivery, index))
        attempts = dict.fromkeys(range(len(deliveries)), 1)
        last_detail: dict[int, str] = {}
        retry_at: list[tuple[float, int]] = []  # (monotonic time, delivery), a heap
        outstanding = len(deliveries)
        while outstanding:
            now = time.monotonic()
            if now - started > deadline_seconds:
                raise AssertionError(
                    f"deliveries did not settle within {deadline_seconds:.0f} s "
                    f"({outstanding} outstanding)"
                )
            while retry_at and retry_at[0][0] <= now:
                _, delivery = heapq.heappop(retry_at)
                attempts[delivery] += 1
                tasks.put((delivery, deliveries[delivery]))
            if not all(p.is_alive() for p in processes):
                raise AssertionError("a worker process died")
            try:
                delivery, index, status, detail = results.get(timeout=0.05)
            except queue.Empty:
                continue
            report.attempts += 1
            report.statuses[status] = report.statuses.get(status, 0) + 1
            if "no longer holds" in detail:
                report.leases_lost += 1
            if 200 <= status < 300:
                outstanding -= 1
            elif attempts[delivery] >= max_attempts:
                outstanding -= 1
                report.never_acknowledged.append((events[index]["id"], status, detail))
            else:
                last_detail[delivery] = detail
                delay = min(0.02 * 2 ** attempts[delivery], 1.0) * (0.5 + rng.random())
                heapq.heappush(retry_at, (time.monotonic() + delay, delivery))
            if report.attempts % 1000 == 0:
                on_progress(f"{report.attempts} attempts, {outstanding} deliveries outstanding")
        for _ in processes:
            for _ in range(config.threads):
                tasks.put(None)
        for process in processes:
            process.join(30)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(5)
    report.seconds = time.monotonic() - started
    return report
