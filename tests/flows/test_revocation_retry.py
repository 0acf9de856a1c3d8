"""A revocation whose first attempt disabled the licence but lost the answer: the retry
finishes it as `revoked` (not `duplicate`), so the `revoked` outcome hooks run once."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.revocations import assert_lost_disable_is_revoked_on_retry
from zentitle_stripe.hooks import LicenceOutcome
from zentitle_stripe.policy import LifecyclePolicy
from zentitle_stripe.testing import EmulatedWorld

pytestmark = pytest.mark.world(
    offerings={"PRO-1Y": {"seats": 1}},
    generations=True,
    policy=LifecyclePolicy(refund="disable", dispute="disable"),
)


@pytest.mark.parametrize("kind", ["refund", "dispute"])
def test_a_disable_whose_answer_was_lost_is_revoked_on_the_retry(
    world: EmulatedWorld, kind: str
) -> None:
    seen: list[LicenceOutcome] = []
    world.provisioner.on_outcome("revoked", name="revoked_hook")(seen.append)
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 200
    invoice_id = str(paid["data"]["object"]["id"])
    emulator = world.stripe_emulator
    event: dict[str, Any] = (
        emulator.refund_invoice(invoice_id)
        if kind == "refund"
        else emulator.dispute_invoice(invoice_id)
    )
    assert_lost_disable_is_revoked_on_retry(world, subscription_id, event, seen)
