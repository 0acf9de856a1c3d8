"""The lifecycle policy: what each moment of a Stripe subscription does in Zentitle2.

One typed, frozen settings object with safe defaults. The flows read it; `connect`
subscribes the webhook endpoint to exactly
[`events()`][zentitle_stripe.policy.LifecyclePolicy.events] and `doctor` flags an endpoint
that misses one. The table of what happens on which event
is in `docs/lifecycle.md`.

```python
from datetime import timedelta
from zentitle_stripe import LifecyclePolicy

policy = LifecyclePolicy(trial="wait", past_due_grace=timedelta(days=3), refund="disable")
```
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

import attrs

__all__ = [
    "CORE_EVENTS",
    "DEFAULT_POLICY",
    "ChargeAction",
    "LifecyclePolicy",
    "PauseAction",
    "TrialPolicy",
]

TrialPolicy = Literal["grant", "wait"]
"""`grant`: a licence during the trial, expiring at `trial_end`, extended by the first paid
invoice. `wait`: nothing until the first paid invoice."""
PauseAction = Literal["disable", "ignore"]
"""What `customer.subscription.paused` does (`resumed` undoes a `disable`)."""
ChargeAction = Literal["disable", "ignore"]
"""What a full refund of a subscription invoice, or a dispute, does (`ignore` is logged)."""

CORE_EVENTS: tuple[str, ...] = (
    "invoice.paid",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)
"""Events every policy needs: payments, changes (items, status, trial end) and deletion."""


def _grace(instance: object, attribute: attrs.Attribute[timedelta], value: timedelta) -> None:
    if not isinstance(value, timedelta) or value < timedelta(0):  # type: ignore[redundant-expr]
        raise ValueError(
            f"{attribute.name} must be a timedelta of zero or more (got {value!r}); "
            "timedelta(0) disables as soon as a renewal fails"
        )


def _one_of(*allowed: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in allowed:
            raise ValueError(
                f"{attribute.name} must be one of {', '.join(map(repr, allowed))} (got {value!r})"
            )

    return check


@attrs.frozen
class LifecyclePolicy:
    """What the lifecycle moments beyond pay / renew / cancel do.

    - `trial`: see [`TrialPolicy`][zentitle_stripe.policy.TrialPolicy] (default `grant`).
      A trial that ends without payment disables either way.
    - `past_due_grace`: how long after a failed renewal a `past_due` subscription keeps
      its licence (default 7 days); `unpaid` and `incomplete_expired` disable at once, and
      a later paid invoice re-enables and covers the period.
    - `pause`: `customer.subscription.paused` disables and `resumed` enables (default), or
      both are ignored.
    - `refund` / `dispute`: a full refund of a subscription invoice (`charge.refunded`) or
      a dispute (`charge.dispute.created`) disables the subscription's licence, or is
      only logged (default `ignore`).

    `cancel_at_period_end` is not a setting: nothing changes until the period ends, the
    deletion disables, and un-cancelling before the end keeps the licence.
    """

    trial: TrialPolicy = attrs.field(default="grant", validator=_one_of("grant", "wait"))
    past_due_grace: timedelta = attrs.field(default=timedelta(days=7), validator=_grace)
    pause: PauseAction = attrs.field(default="disable", validator=_one_of("disable", "ignore"))
    refund: ChargeAction = attrs.field(default="ignore", validator=_one_of("disable", "ignore"))
    dispute: ChargeAction = attrs.field(default="ignore", validator=_one_of("disable", "ignore"))

    def events(self) -> tuple[str, ...]:
        """The Stripe event types this policy acts on, so the endpoint must send them."""
        wanted = list(CORE_EVENTS)
        if self.pause == "disable":
            wanted += ["customer.subscription.paused", "customer.subscription.resumed"]
        if self.refund == "disable":
            wanted.append("charge.refunded")
        if self.dispute == "disable":
            wanted.append("charge.dispute.created")
        return tuple(wanted)


DEFAULT_POLICY = LifecyclePolicy()
"""The defaults: trials granted, 7 days of `past_due` grace, pause disables, refunds and
disputes logged only."""
