"""A renewal whose renew landed after its client gave up: the delivery that confirms it
(after the create window) answers `renewed`, not `duplicate`, so the `renewed` outcome
hooks run once for it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import detail
from tests.support.slow import FakeClock
from zentitle_stripe import OutcomeKind
from zentitle_stripe.flows.markers import DEFAULT_CREATE_WINDOW
from zentitle_stripe.hooks import LicenceOutcome
from zentitle_stripe.testing import EmulatedWorld

pytestmark = pytest.mark.world(offerings={"PRO-1Y": {}}, generations=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world_options(clock: FakeClock) -> dict[str, Any]:
    return {"clock": clock}


def test_a_renew_that_landed_late_is_renewed_when_confirmed(
    world: EmulatedWorld, clock: FakeClock
) -> None:
    """A lost answer read back at once is covered already (`lost_response`); a renew
    that lands only after the client gave up (`late`) is confirmed by a later delivery."""
    seen: list[LicenceOutcome] = []
    world.provisioner.on_outcome("renewed", name="renewed_hook")(seen.append)
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 200
    (entitlement,) = world.entitlements(subscription_id)
    before = world.zentitle.get_entitlement(entitlement.id).expiry_date
    assert before is not None
    renewal = world.renew(subscription_id)
    emulator = world.zentitle_emulator
    emulator.inject_fault("PATCH", r"/renew$", "late")

    failed = world.deliver(renewal)

    assert failed.status == 503, detail(failed)
    emulator.complete_late()
    clock.advance(DEFAULT_CREATE_WINDOW + 1)
    confirmed = world.deliver(renewal)
    assert confirmed.outcome.kind is OutcomeKind.RENEWED, detail(confirmed)
    after = world.zentitle.get_entitlement(entitlement.id).expiry_date
    assert after == before.replace(year=before.year + 1)  # renewed once
    assert [o.kind for o in seen] == [OutcomeKind.RENEWED]
    assert world.deliver(renewal).outcome.kind is OutcomeKind.DUPLICATE
    assert len(seen) == 1
