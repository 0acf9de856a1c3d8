"""Markers in storage: creates that may still land, side effects already done.

Zentitle2 has no idempotency keys, and a create whose client gave up (its timeout, a lost
answer) may still complete a moment later. A redelivery arriving in between would look,
find nothing and create again: a second group or customer. So before creating an
entitlement group or a customer, a flow records when it tried:

- *create attempted*: `group-create:{subscription}` and
  `customer-create:{Stripe customer}` hold the unix time of the attempt, then `cleared`
  once the object is recorded (or the create certainly did not land);
- *side effect done*: `contact-done:{Stripe customer}` and
  `stripe-link-done:{Stripe customer}` hold `done`;
- *disable sent*: `suspend-disable:{subscription}` holds `disable-sent` while a status
  moment's disables are unconfirmed, then `done`, so the retry of one whose answer was
  lost answers `revoked` (see [`suspend`][zentitle_stripe.flows.status.suspend]).

A later attempt that looks (the group by `orderRefId`, the customer by `accountRefId`
and contact e-mail) and finds nothing while a create attempted less than the *uncertainty
window* ago (`ZENTITLE_STRIPE_CREATE_WINDOW`, 60 s) is pending does not create again: it
raises [`CreateInDoubt`][zentitle_stripe.flows.markers.CreateInDoubt], answered 503 with
`Retry-After` set to the time left in the window. Once the window has passed with
nothing found, it creates again and logs it. Markers live in the customer-link table
(`put_customer_link` / `get_customer_link`, which has no delete), so every backend keeps
them without a schema change; each one costs a storage write, never a remote call.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import attrs

from ..exceptions import TransientError

if TYPE_CHECKING:
    from .context import FlowContext

__all__ = [
    "CLEARED",
    "DEFAULT_CREATE_WINDOW",
    "DONE",
    "CreateInDoubt",
    "CreateMarker",
    "SideEffect",
    "group_marker",
]

DEFAULT_CREATE_WINDOW = 60.0
"""Seconds after a create attempt during which its object may still appear: well above
the Zentitle2 client's per-request timeout (10 s) and its retries of a create (none after
sending), with a margin for a slow backend."""
CLEARED = "cleared"
"""The value of a create marker whose object is recorded."""
DONE = "done"
"""The value of a side-effect marker whose work is confirmed."""

_logger = logging.getLogger("zentitle_stripe.flows")


class CreateInDoubt(TransientError):
    """A create attempted moments ago may still land: look again later, do not create."""


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="seconds")


@attrs.frozen
class CreateMarker:
    """What storage knows of one create: attempted at `attempted_at`, or none pending.

    Read it with [`read`][zentitle_stripe.flows.markers.CreateMarker.read] before
    looking; when the lookup finds nothing, call
    [`hold_off`][zentitle_stripe.flows.markers.CreateMarker.hold_off] (or only
    [`wait_for`][zentitle_stripe.flows.markers.CreateMarker.wait_for] when not about to
    create), then
    [`attempt`][zentitle_stripe.flows.markers.CreateMarker.attempt] right before the
    create, and [`confirm`][zentitle_stripe.flows.markers.CreateMarker.confirm] once the
    object (created or found) is recorded.
    """

    key: str
    what: str
    """The object, for messages: "the entitlement group of subscription sub_1"."""
    attempted_at: float | None = None
    known: bool = False
    """Whether storage holds this marker at all (a create was attempted, ever): if not,
    this storage never tried to create the object."""

    @classmethod
    def read(cls, ctx: FlowContext, key: str, what: str) -> CreateMarker:
        """The marker stored at `key`; a value that is not a time counts as an old attempt."""
        value = ctx.storage.get_customer_link(key)
        if value is None or value == CLEARED:
            return cls(key, what, known=value is not None)
        try:
            moment = float(value)
        except ValueError:
            moment = 0.0
        return cls(key, what, moment if math.isfinite(moment) else 0.0, known=True)

    @property
    def pending(self) -> bool:
        """Whether a create was attempted and its object not recorded since."""
        return self.attempted_at is not None

    def wait_for(self, ctx: FlowContext) -> None:
        """Raise [`CreateInDoubt`][zentitle_stripe.flows.markers.CreateInDoubt] while an
        attempted create may still land (less than `ctx.create_window` ago)."""
        if self.attempted_at is None:
            return
        window = ctx.create_window
        left = self.attempted_at + window - ctx.clock()
        if left > 0:
            raise CreateInDoubt(
                f"a create of {self.what} was attempted at {_iso(self.attempted_at)} and may "
                f"still land; looking again after {_iso(self.attempted_at + window)} rather "
                "than creating a second one",
                retry_after=min(left, window),
            )

    def hold_off(self, ctx: FlowContext) -> None:
        """Before creating, once the lookup found nothing: wait (see
        [`wait_for`][zentitle_stripe.flows.markers.CreateMarker.wait_for]) while an
        attempt may still land; after the window, log that it creates again."""
        self.wait_for(ctx)
        if self.attempted_at is None:
            return
        window = ctx.create_window
        _logger.warning(
            "a create of %s attempted at %s has not appeared in %g s; creating it again",
            self.what,
            _iso(self.attempted_at),
            window,
        )

    def attempt(self, ctx: FlowContext) -> CreateMarker:
        """Record the create as attempted now; call it right before the remote create."""
        now = ctx.clock()
        ctx.fence.check()
        ctx.storage.put_customer_link(self.key, repr(now))
        return attrs.evolve(self, attempted_at=now, known=True)

    def confirm(self, ctx: FlowContext) -> CreateMarker:
        """Mark the create confirmed (its object is recorded); a write only when pending."""
        if self.attempted_at is None:
            return self
        ctx.fence.check()
        ctx.storage.put_customer_link(self.key, CLEARED)
        return attrs.evolve(self, attempted_at=None)

    def withdraw(self, ctx: FlowContext) -> CreateMarker:
        """Clear the marker of a create that certainly did not land (refused, never sent)."""
        return self.confirm(ctx)


def group_marker(ctx: FlowContext, subscription_id: str) -> CreateMarker:
    """The create marker of a subscription's entitlement group."""
    return CreateMarker.read(
        ctx, f"group-create:{subscription_id}", f"the entitlement group of {subscription_id}"
    )


@attrs.frozen
class SideEffect:
    """Whether one side effect owed to a Stripe customer is confirmed done."""

    key: str
    done: bool

    @classmethod
    def read(cls, ctx: FlowContext, key: str) -> SideEffect:
        return cls(key, ctx.storage.get_customer_link(key) == DONE)

    def record(self, ctx: FlowContext) -> SideEffect:
        """Record it as done (a write only when it was not)."""
        if not self.done:
            ctx.fence.check()
            ctx.storage.put_customer_link(self.key, DONE)
        return attrs.evolve(self, done=True)
