"""Remote calls per webhook, counted by the in-process emulators.

Run by hand: ``python benchmarks/bench_calls.py``. Prints, per scenario, the Zentitle2
calls (reads, writes; token requests apart) and the Stripe calls (reads, writes) that one
delivery causes. ``tests/test_call_budget.py`` asserts the same budgets in CI.

The Zentitle2 emulator's token lifetime is raised to ten years: a renewal moves the
emulated clock a whole billing period forward, and the point here is calls per token
lifetime, not the 300 s default.
"""

from __future__ import annotations

import platform
import sys
from datetime import date
from typing import Any

import attrs

from zentitle_stripe.policy import LifecyclePolicy
from zentitle_stripe.testing import EmulatedWorld

TOKEN_PATH = "/protocol/openid-connect/token"
GROUP_LIST = "/api/v1/entitlements/groups"
OFFERINGS = "/api/v1/offerings"
TEN_YEARS = 10 * 366 * 24 * 3600


@attrs.frozen
class Calls:
    """Remote calls made by one delivery."""

    z_reads: int
    z_writes: int
    z_token: int
    s_reads: int
    s_writes: int
    group_lookups: int
    offering_lists: int

    @property
    def total(self) -> int:
        """Every remote call, token requests included."""
        return self.z_reads + self.z_writes + self.z_token + self.s_reads + self.s_writes


class Counter:
    """An :class:`EmulatedWorld` whose deliveries report the calls they caused."""

    def __init__(self, **world_options: Any) -> None:
        self.world = EmulatedWorld(**world_options)
        self.world.zentitle_emulator.token_lifetime = TEN_YEARS
        self.token_calls = 0

    def deliver(self, event: dict[str, Any], expect: str) -> Calls:
        """Deliver ``event``, check its outcome is ``expect``, and count its calls."""
        zentitle, stripe = self.world.zentitle_emulator, self.world.stripe_emulator
        zentitle.reset_requests()
        stripe.reset_requests()
        response = self.world.deliver(event)
        assert response.status == 200, response
        assert response.outcome.kind.value == expect, response
        z = [r for r in zentitle.requests if not r.path.endswith(TOKEN_PATH)]
        calls = Calls(
            z_reads=sum(r.method == "GET" for r in z),
            z_writes=sum(r.method != "GET" for r in z),
            z_token=zentitle.count("POST", f"/realms/{zentitle.tenant_id}{TOKEN_PATH}"),
            s_reads=stripe.count("GET"),
            s_writes=len(stripe.requests) - stripe.count("GET"),
            group_lookups=zentitle.count("GET", GROUP_LIST)
            - sum(r.path.startswith(f"{GROUP_LIST}/") for r in z if r.method == "GET"),
            offering_lists=zentitle.count("GET", OFFERINGS),
        )
        self.token_calls += calls.z_token
        return calls


def run(multiply_seats: int = 2) -> tuple[list[tuple[str, Calls]], int]:
    """Every scenario in order; returns ``(label, calls)`` rows and the token total."""
    counter = Counter(policy=LifecyclePolicy(refund="disable", dispute="disable"))
    world = counter.world
    skus = [f"SKU-{i}" for i in range(5)]
    for sku in skus:
        world.offering(sku, seats=multiply_seats)
    prices = [world.price(sku) for sku in skus]
    rows: list[tuple[str, Calls]] = []

    known = world.customer(email="known@example.com")
    _, first = world.subscribe(known, [(p, 1) for p in prices])
    rows.append(("cold start: unknown customer, k=5", counter.deliver(first, "provisioned")))

    subscriptions: dict[int, str] = {}
    for k in (1, 2, 5):
        sub, paid = world.subscribe(known, [(p, 1) for p in prices[:k]])
        subscriptions[k] = sub
        rows.append((f"new sub, known customer, k={k}", counter.deliver(paid, "provisioned")))
        rows.append((f"  duplicate delivery, k={k}", counter.deliver(paid, "duplicate")))

    for k in (1, 2):
        stranger = world.customer(email=f"new{k}@example.com")
        _, paid = world.subscribe(stranger, [(p, 1) for p in prices[:k]])
        rows.append((f"new sub, unknown customer, k={k}", counter.deliver(paid, "provisioned")))

    _, paid = world.subscribe(known, [(prices[0], 3), (prices[1], 1)])
    rows.append(("known customer, k=2, one line qty 3", counter.deliver(paid, "provisioned")))
    _, paid = world.subscribe(known, [(prices[0], 3), (prices[1], 3)])
    rows.append(("known customer, k=2, both lines qty 3", counter.deliver(paid, "provisioned")))

    for k in (1, 2, 5):
        renewal = world.renew(subscriptions[k])
        rows.append((f"renewal, k={k}", counter.deliver(renewal, "renewed")))
        rows.append((f"  duplicate delivery, k={k}", counter.deliver(renewal, "duplicate")))

    updated, _ = world.change_items(subscriptions[1], [(prices[0], 1), (prices[1], 3)])
    rows.append(("added product (extend), qty 3", counter.deliver(updated, "updated")))
    rows.append(("  duplicate delivery", counter.deliver(updated, "duplicate")))

    for k in (1, 2):
        sub, paid = world.subscribe(known, [(p, 1) for p in prices[:k]])
        counter.deliver(paid, "provisioned")
        invoice = paid["data"]["object"]["id"]
        partial = world.stripe_emulator.refund_invoice(invoice, amount=100)
        rows.append((f"partial refund, k={k}", counter.deliver(partial, "ignored")))
        refund = world.stripe_emulator.refund_invoice(invoice)
        rows.append((f"full refund (disable), k={k}", counter.deliver(refund, "revoked")))
        rows.append((f"  renewal while held, k={k}", counter.deliver(world.renew(sub), "ignored")))
    sub, paid = world.subscribe(known, [(prices[0], 1)])
    counter.deliver(paid, "provisioned")
    dispute = world.stripe_emulator.dispute_invoice(paid["data"]["object"]["id"])
    rows.append(("dispute (disable), k=1", counter.deliver(dispute, "revoked")))
    rows.append(("  duplicate delivery", counter.deliver(dispute, "duplicate")))

    rows += _status_moments(counter, prices, known)

    for k in (1, 2, 5):
        cancellation = world.cancel(subscriptions[k])
        rows.append((f"cancellation, k={k}", counter.deliver(cancellation, "revoked")))
        rows.append((f"  duplicate delivery, k={k}", counter.deliver(cancellation, "duplicate")))

    world.close()
    return rows, counter.token_calls


def _status_moments(counter: Counter, prices: list[str], known: str) -> list[tuple[str, Calls]]:
    """Trials, payment trouble and pause / resume (the default policy), known customer."""
    world = counter.world
    rows: list[tuple[str, Calls]] = []
    for k in (1, 2):
        sub, trial = world.subscribe(known, [(p, 1) for p in prices[:k]], trial_days=14)
        rows.append((f"trial invoice (grant), k={k}", counter.deliver(trial, "provisioned")))
        rows.append((f"  duplicate delivery, k={k}", counter.deliver(trial, "duplicate")))
        paid, updated = world.end_trial(sub, paid=True)
        rows.append((f"first paid after trial, k={k}", counter.deliver(paid, "renewed")))
        rows.append((f"  its updated (active), k={k}", counter.deliver(updated, "duplicate")))
        rows.append(
            (f"past_due (grace), k={k}", counter.deliver(world.fail_renewal(sub), "updated"))
        )
        unpaid = world.set_status(sub, "unpaid")
        rows.append((f"unpaid (disable), k={k}", counter.deliver(unpaid, "revoked")))
        rows.append((f"  duplicate delivery, k={k}", counter.deliver(unpaid, "duplicate")))
        paid, _ = world.pay_overdue(sub)
        rows.append((f"paid again (enable, cover), k={k}", counter.deliver(paid, "renewed")))
        paused, _ = world.pause(sub)
        rows.append((f"paused (disable), k={k}", counter.deliver(paused, "revoked")))
        world.advance(400 * 86400)  # paused past the paid period
        resumed, _, paid = world.resume(sub)
        rows.append((f"resumed (enable), k={k}", counter.deliver(resumed, "updated")))
        rows.append((f"  resumption invoice, k={k}", counter.deliver(paid, "renewed")))
    return rows


def main() -> int:
    rows, token_calls = run()
    print(f"{date.today().isoformat()}  Python {platform.python_version()}  in-process emulators")
    print(
        f"\n{'scenario':<40}{'Z2 read':>8}{'Z2 write':>9}{'Z2 token':>9}"
        f"{'Stripe read':>12}{'Stripe write':>13}{'group list':>11}{'offer list':>11}"
    )
    for label, c in rows:
        print(
            f"{label:<40}{c.z_reads:>8}{c.z_writes:>9}{c.z_token:>9}"
            f"{c.s_reads:>12}{c.s_writes:>13}{c.group_lookups:>11}{c.offering_lists:>11}"
        )
    print(f"\ntoken endpoint calls across all scenarios: {token_calls}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
