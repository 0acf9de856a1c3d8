"""The lost-answer check shared by every revocation path (refunds, disputes, status moments)."""

from __future__ import annotations

from typing import Any

from tests.support import detail
from zentitle_stripe import OutcomeKind
from zentitle_stripe.hooks import LicenceOutcome
from zentitle_stripe.testing import EmulatedWorld


def assert_lost_disable_is_revoked_on_retry(
    world: EmulatedWorld, subscription_id: str, event: dict[str, Any], seen: list[LicenceOutcome]
) -> None:
    """`event` disables in Zentitle2 but its answers are lost: the delivery fails with the
    licence off and no hook run; the retry answers `revoked` and runs the hook once; a
    redelivery after that is `duplicate` and runs nothing."""
    world.zentitle_emulator.inject_fault("PATCH", r"/disable$", "lost_response", times=10)

    failed = world.deliver(event)

    assert failed.status >= 500, detail(failed)
    assert world.active_entitlements(subscription_id) == []
    assert seen == []
    world.zentitle_emulator.clear_faults()
    retried = world.deliver(event)
    assert retried.status == 200, detail(retried)
    assert retried.outcome.kind is OutcomeKind.REVOKED, detail(retried)
    assert [o.kind for o in seen] == [OutcomeKind.REVOKED]
    again = world.deliver(event)
    assert again.outcome.kind is OutcomeKind.DUPLICATE, detail(again)
    assert len(seen) == 1
