"""A trial on an offering whose term starts at activation: the entitlement has no expiry
yet, so the trial's end cannot be set on it, and the outcome says so instead of
claiming that the trial licence expires at the trial's end."""

from __future__ import annotations

import pytest

from tests.support import detail
from zentitle_stripe import OutcomeKind
from zentitle_stripe.testing import EmulatedWorld

pytestmark = pytest.mark.world(
    offerings={"LATER-1Y": {"license_start_type": "activation"}}, generations=True
)


def test_a_trial_of_an_entitlement_not_activated_says_its_end_is_not_set(
    world: EmulatedWorld,
) -> None:
    subscription_id, trial_paid = world.subscribe(
        world.customer(), [(world.price("LATER-1Y"), 1)], trial_days=14
    )
    response = world.deliver(trial_paid)
    assert response.outcome.kind is OutcomeKind.PROVISIONED, detail(response)
    (entitlement,) = world.entitlements(subscription_id)
    assert world.zentitle.get_entitlement(entitlement.id).expiry_date is None
    assert "the trial licence expires" not in response.outcome.reason
    assert "1 entitlement(s) have no expiry to set" in response.outcome.reason
