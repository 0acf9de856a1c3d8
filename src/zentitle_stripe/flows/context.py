"""What every flow works with: the two APIs, storage and the settings, in one object.

The flows are functions of a [`FlowContext`][zentitle_stripe.flows.context.FlowContext].
[`Provisioning`][zentitle_stripe.flows.Provisioning] is one, so a client swapped on it
(a test double, a wrapper) is the one every flow calls. The few reads that more than one
flow needs live here too, and the two things every state write goes through: the
attempt's [`fence`][zentitle_stripe.flows.context.FlowContext.fence] and
[`save`][zentitle_stripe.flows.context.FlowContext.save].
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .._untrusted import finite_number
from ..config import SeatPolicy
from ..exceptions import TransientError
from ..fencing import Fence, current_fence
from ..hooks import observe_group, observe_state
from ..policy import DEFAULT_POLICY, LifecyclePolicy
from ..storage import Storage, SubscriptionState
from .locks import storage_lock
from .markers import DEFAULT_CREATE_WINDOW

if TYPE_CHECKING:
    from ..stripe.api import StripeAPI
    from ..zentitle import ZentitleAPI
    from ..zentitle.models import EntitlementGroup

__all__ = ["FlowContext", "day", "logger"]

logger = logging.getLogger("zentitle_stripe.flows")
"""The one logger of every flow, so log records keep the name they always had."""


def day(timestamp: int) -> str:
    """A unix time as its UTC date (`2026-12-03`), as outcomes name a period's end."""
    return datetime.fromtimestamp(timestamp, timezone.utc).date().isoformat()


_UNFENCED = Fence(owner="unfenced", lease_seconds=math.inf, clock=time.time, started=0.0)
"""What a flow run outside the ledger checks: it holds nothing and has all the time."""


BOUNDED_GROUP_PAGES = 1
"""Pages of a customer's groups (100 each) a lookup reads when storage knows of no create
for the subscription: Zentitle2 cannot filter groups by `orderRefId` (the contract's
`GET /api/v1/entitlements/groups` takes only `customerId`), so one page bounds the cost
and still finds a group another installation created for a customer with few groups."""


class FlowContext:
    """The clients, storage and settings of the provisioning flows.

    `lookup_key_fallback` lets a Price's `lookup_key` stand in for a missing
    `offering_sku`; `seat_policy` says whether a line quantity of N means N times the
    offering's seats; `lease_seconds` and `lock_wait` size the locks. `clock` (the locks'
    leases, the renewal's expiry prediction) and `sleep` can be replaced in tests.
    `create_window` is how long a create that may still land is waited for before it is
    tried again (see [`markers`][zentitle_stripe.flows.markers]). `policy` is the
    [`LifecyclePolicy`][zentitle_stripe.policy.LifecyclePolicy] (trials, payment trouble,
    pause, refunds and disputes).
    """

    def __init__(
        self,
        *,
        zentitle: ZentitleAPI,
        stripe: StripeAPI,
        storage: Storage,
        lookup_key_fallback: bool = False,
        seat_policy: SeatPolicy = "multiply",
        lease_seconds: float = 120.0,
        lock_wait: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        create_window: float = DEFAULT_CREATE_WINDOW,
        policy: LifecyclePolicy = DEFAULT_POLICY,
    ) -> None:
        self.zentitle = zentitle
        self.stripe = stripe
        self.storage = storage
        self.lookup_key_fallback = lookup_key_fallback
        self.seat_policy = seat_policy
        self.lease_seconds = lease_seconds
        self.lock_wait = lock_wait
        self.clock = clock
        self.sleep = sleep
        self.create_window = finite_number(create_window, "create_window", positive=True)
        self.policy = policy

    def lock(self, name: str, owner: str) -> AbstractContextManager[None]:
        """Hold the storage lock `name`; see
        [`storage_lock`][zentitle_stripe.flows.locks.storage_lock]."""
        return storage_lock(
            self.storage,
            name,
            owner,
            lease_seconds=self.lease_seconds,
            lock_wait=self.lock_wait,
            clock=self.clock,
            sleep=self.sleep,
        )

    @property
    def fence(self) -> Fence:
        """The [`Fence`][zentitle_stripe.fencing.Fence] of the attempt being processed.

        `ctx.fence.check()` right before a write makes sure the attempt still holds its
        claim and locks (the clients check it before every remote call themselves).
        Outside the ledger (a flow called directly) it holds nothing and never fails.
        """
        return current_fence() or _UNFENCED

    def save(self, state: SubscriptionState) -> SubscriptionState:
        """Store `state` while the attempt still holds its leases; returns it as stored.

        The write is compare-and-set on `state.version`: keep the returned state for the
        next write (`state = ctx.save(state)`). A stale write raises
        [`StateConflict`][zentitle_stripe.exceptions.StateConflict], a lost lease
        [`LeaseLost`][zentitle_stripe.exceptions.LeaseLost]; neither writes anything.
        """
        self.fence.check()
        self.storage.put_subscription(state)
        observe_state(state)  # what an outcome hook is told (see `hooks`)
        return state.stored()

    def subscription_state(self, subscription_id: str) -> SubscriptionState:
        """What storage knows of a subscription; a fresh state for one never seen."""
        state = self.storage.get_subscription(subscription_id) or SubscriptionState(subscription_id)
        observe_state(state)
        return state

    def find_group(
        self, subscription_id: str, customer_id: str | None, *, bounded: bool = False
    ) -> EntitlementGroup | None:
        """The group an earlier, interrupted attempt created, if any (oldest wins).

        `bounded` looks at the first page of the customer's groups only: for a
        subscription of which storage knows no create (see `first_payment`), so the cost
        does not grow with the customer's groups.
        """
        pages = BOUNDED_GROUP_PAGES if bounded else None
        groups = self.zentitle.find_entitlement_groups(
            subscription_id, customer_id=customer_id, max_pages=pages
        )
        if len(groups) > 1:
            logger.warning(
                "subscription %s has %d entitlement groups in Zentitle2; using the oldest",
                subscription_id,
                len(groups),
            )
        epoch = datetime.min.replace(tzinfo=timezone.utc)
        group = min(groups, key=lambda g: (g.created or epoch, g.id), default=None)
        if group is not None and not group.activation_codes:
            # A list entry may omit its codes (the contract allows it): read the group.
            group = self.zentitle.get_entitlement_group(group.id)
        observe_group(group)
        return group

    def group_with_entitlements(self, group_id: str) -> EntitlementGroup:
        """Read a group; no entitlements yet means Zentitle2 is still creating them."""
        group = self.zentitle.get_entitlement_group(group_id)
        if not group.entitlements:
            raise TransientError(
                f"entitlement group {group_id} lists no entitlements yet (Zentitle2 may still "
                "be creating them); retry later",
                retry_after=10,
            )
        observe_group(group)
        return group
