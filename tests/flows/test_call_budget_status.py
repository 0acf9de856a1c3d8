"""Remote-call budgets of the status moments and trials (see ``benchmarks/bench_calls.py``
and ``docs/benchmarks.md``): exact, for a known customer whose Prices and offerings are
cached, k entitlements."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.flows.test_call_budget import Budget, Calls

NOTHING = Calls(0, 0, 0, 0)


@pytest.fixture
def warm() -> Iterator[Budget]:
    b = Budget()
    yield b
    b.world.close()


@pytest.mark.parametrize("k", [1, 2])
def test_a_trial_costs_one_subscription_read_and_one_expiry_write_per_entitlement(
    warm: Budget, k: int
) -> None:
    world = warm.world
    sub, trial = world.subscribe(warm.customer, [(p, 1) for p in warm.prices[:k]], trial_days=14)
    # a first payment (group lookup, create, codes) + the subscription read that tells a
    # trial + the group and each entitlement read, each expiry set
    assert warm.deliver(trial, "provisioned") == Calls(2 + k, 1 + k, 1, 1, group_lists=1)
    assert warm.deliver(trial, "duplicate") == NOTHING
    paid, _ = world.end_trial(sub, paid=True)
    assert warm.deliver(paid, "renewed") == Calls(1 + k, k, 1, 0)  # a plain renewal


@pytest.mark.parametrize("k", [1, 2])
def test_payment_trouble_and_pause_budgets(warm: Budget, k: int) -> None:
    world = warm.world
    sub, paid = warm.subscribe(k)
    warm.deliver(paid, "provisioned")
    # grace: the group and each entitlement (expiry moved), then the items' own reads
    assert warm.deliver(world.fail_renewal(sub), "updated") == Calls(2 + 2 * k, k, 1, 0)
    unpaid = world.set_status(sub, "unpaid")
    assert warm.deliver(unpaid, "revoked") == Calls(1, k, 1, 0)  # as a cancellation, + Stripe
    assert warm.deliver(unpaid, "duplicate") == NOTHING
    overdue, _ = world.pay_overdue(sub)
    # enable (one group read, k enables), then the renewal's reads, the grace's end set
    assert warm.deliver(overdue, "renewed") == Calls(2 + k, 2 * k, 1, 0)
    paused, _ = world.pause(sub)
    assert warm.deliver(paused, "revoked") == Calls(1, k, 1, 0)
    assert warm.deliver(paused, "duplicate") == NOTHING
    resumed, _, _ = world.resume(sub)
    assert warm.deliver(resumed, "updated") == Calls(2 + k, k, 1, 0)  # enable, then items
