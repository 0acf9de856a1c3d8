"""A status moment (`unpaid`, a pause, a trial ending unpaid) whose first attempt disabled
the licence but lost the answer: the retry finishes it as `revoked` (not `duplicate`), so
the `revoked` outcome hooks run once; a later redelivery stays `duplicate`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import detail
from tests.support.revocations import assert_lost_disable_is_revoked_on_retry
from zentitle_stripe import OutcomeKind
from zentitle_stripe.hooks import LicenceOutcome
from zentitle_stripe.testing import EmulatedWorld

pytestmark = pytest.mark.world(offerings={"PRO-1Y": {"seats": 1}}, generations=True)


def _moment(world: EmulatedWorld, moment: str) -> tuple[str, dict[str, Any]]:
    """A provisioned subscription and the event that suspends it."""
    customer, price = world.customer(), world.price("PRO-1Y")
    if moment == "trial_unpaid":
        subscription_id, trial_paid = world.subscribe(customer, [(price, 1)], trial_days=14)
        assert world.deliver(trial_paid).status == 200
        (past_due,) = world.end_trial(subscription_id, paid=False)
        return subscription_id, past_due
    subscription_id, paid = world.subscribe(customer, [(price, 1)])
    assert world.deliver(paid).status == 200
    if moment == "paused":
        return subscription_id, world.pause(subscription_id)[0]
    world.fail_renewal(subscription_id)  # its update lost: the next one says it all
    return subscription_id, world.set_status(subscription_id, "unpaid")


@pytest.mark.parametrize("moment", ["unpaid", "paused", "trial_unpaid"])
def test_a_disable_whose_answer_was_lost_is_revoked_on_the_retry(
    world: EmulatedWorld, moment: str
) -> None:
    seen: list[LicenceOutcome] = []
    world.provisioner.on_outcome("revoked", name="revoked_hook")(seen.append)
    subscription_id, event = _moment(world, moment)
    assert_lost_disable_is_revoked_on_retry(world, subscription_id, event, seen)


def test_another_event_for_a_confirmed_suspension_is_duplicate(world: EmulatedWorld) -> None:
    seen: list[LicenceOutcome] = []
    world.provisioner.on_outcome("revoked", name="revoked_hook")(seen.append)
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 200
    paused, paused_update = world.pause(subscription_id)
    assert world.deliver(paused).outcome.kind is OutcomeKind.REVOKED
    # the update is a second event for the same, confirmed, suspension: no second hook
    response = world.deliver(paused_update)
    assert response.outcome.kind is OutcomeKind.DUPLICATE, detail(response)
    assert [o.kind for o in seen] == [OutcomeKind.REVOKED]
