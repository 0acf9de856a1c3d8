"""A Stripe emulator, a Zentitle2 emulator and a Provisioner wired together in-process.

Tests (and users' own tests) state a story in a few lines:

```python
world = EmulatedWorld()
world.offering("PRO-1Y")
customer = world.customer()
subscription_id, paid = world.subscribe(customer, [(world.price("PRO-1Y"), 1)])
assert world.deliver(paid).status == 200
```

Both clients are the real ones (`ZentitleClient` over httpx, `StripeGateway` over
stripe-python) talking to the emulators through in-process transports, so every request
is real HTTP as far as the code under test can tell. The same world, served on loopback
([`served`][zentitle_stripe.testing.EmulatedWorld.served]), is what `zentitle-stripe demo`
plays against.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal, TypeVar

from ..provisioner import Provisioner
from ..responses import WebhookResponse
from ..storage import MemoryStorage, Storage
from ..stripe.gateway import StripeGateway
from ..zentitle.models import Entitlement, EntitlementGroup
from ._events import NEW_API_VERSION
from ._stripe_emulator import StripeEmulator
from ._zentitle_emulator import ZentitleEmulator

__all__ = ["EmulatedWorld"]

_T = TypeVar("_T")

Interval = Literal["month", "year"]
_INTERVALS: dict[str, tuple[str, int]] = {"year": ("year", 1), "month": ("month", 1)}


class EmulatedWorld:
    """Both emulators and a [`Provisioner`][zentitle_stripe.Provisioner] that talks to them.

    `provisioner_options` go to the `Provisioner` (`seat_policy`, `clock`, ...). The
    Stripe emulator's clock drives the Zentitle2 emulator's (see
    [`sync_clocks`][zentitle_stripe.testing.EmulatedWorld.sync_clocks]).
    """

    def __init__(
        self,
        *,
        storage: Storage | None = None,
        api_version: str = NEW_API_VERSION,
        **provisioner_options: Any,
    ) -> None:
        self.zentitle_emulator = ZentitleEmulator()
        self.stripe_emulator = StripeEmulator(api_version=api_version)
        self.storage = storage if storage is not None else MemoryStorage()
        self.zentitle = self.zentitle_emulator.client(sleep=lambda seconds: None)
        self.stripe = StripeGateway(
            self.stripe_emulator.api_key,
            api_base="http://stripe.emulator",
            max_network_retries=0,
            http_transport=self.stripe_emulator.transport(),
        )
        self.provisioner = Provisioner(
            webhook_secrets=[self.stripe_emulator.webhook_secret],
            storage=self.storage,
            zentitle=self.zentitle,
            stripe=self.stripe,
            zentitle_webhook_key=self.zentitle_emulator.public_key_modulus,
            **provisioner_options,
        )
        self._products: dict[str, str] = {}
        self.sync_clocks()

    def close(self) -> None:
        """Close the clients and storage, once each (through the provisioner)."""
        self.provisioner.close()

    # -- seeding ------------------------------------------------------------------------

    def offering(
        self,
        sku: str,
        *,
        seats: int = 1,
        interval: Interval = "year",
        grace_days: int | None = None,
        license_start_type: str = "entitlementCreation",
    ) -> str:
        """A Zentitle2 offering `sku` on a subscription plan of one `interval`, with an
        optional grace period and the plan's licence start (`activation` waits for one)."""
        emulator = self.zentitle_emulator
        product = self._products.get(sku) or emulator.add_product(f"Product {sku}")
        self._products[sku] = product
        plan = emulator.add_plan(
            product,
            duration=_INTERVALS[interval],
            grace_period=("day", grace_days) if grace_days else None,
            license_start_type=license_start_type,
        )
        return emulator.add_offering(sku=sku, product_id=product, plan_id=plan, seat_count=seats)

    def price(
        self,
        sku: str | None,
        *,
        interval: Interval = "year",
        on_product: bool = False,
        lookup_key: str | None = None,
        recurring: bool = True,
    ) -> str:
        """A Stripe Price whose metadata names `sku` (or its Product's, with `on_product`)."""
        metadata = {"offering_sku": sku} if sku is not None else {}
        product = self.stripe_emulator.create_product(
            f"Product {sku}", metadata=metadata if on_product else None
        )
        return self.stripe_emulator.create_price(
            product,
            metadata=None if on_product else metadata,
            lookup_key=lookup_key,
            interval=interval,
            recurring=recurring,
        )

    def customer(
        self, email: str | None = "buyer@example.com", name: str | None = "Ada Buyer", **kw: Any
    ) -> str:
        return self.stripe_emulator.create_customer(email=email, name=name, **kw)

    def subscribe(
        self, customer_id: str, items: Sequence[tuple[str, int]], *, trial_days: int | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start a subscription (on a trial of `trial_days`, its invoice paid at 0);
        returns its id and the first `invoice.paid` event."""
        subscription_id, event = self.stripe_emulator.create_subscription(
            customer_id, items, trial_days=trial_days
        )
        self.sync_clocks()
        return subscription_id, event

    def renew(self, subscription_id: str) -> dict[str, Any]:
        """Bill the next period; returns its `invoice.paid` event."""
        event = self.stripe_emulator.renew_subscription(subscription_id)
        self.sync_clocks()
        return event

    def change_items(
        self, subscription_id: str, items: Sequence[tuple[str, int]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Change the items; returns `customer.subscription.updated` and the proration
        `invoice.paid` (`subscription_update`)."""
        return self.stripe_emulator.change_items(subscription_id, items)

    def cancel(self, subscription_id: str) -> dict[str, Any]:
        return self.stripe_emulator.cancel_subscription(subscription_id)

    # Status stories: each returns the events Stripe sends, the clock moved as needed.

    def end_trial(self, subscription_id: str, *, paid: bool = True) -> list[dict[str, Any]]:
        """See [`StripeEmulator.end_trial`][zentitle_stripe.testing.StripeEmulator.end_trial]."""
        return self._synced(self.stripe_emulator.end_trial(subscription_id, paid=paid))

    def extend_trial(self, subscription_id: str, days: int) -> dict[str, Any]:
        """Move the trial's end by `days` (the update)."""
        return self._synced(self.stripe_emulator.extend_trial(subscription_id, days))

    def fail_renewal(self, subscription_id: str) -> dict[str, Any]:
        """The renewal's payment fails: `past_due` (the update)."""
        return self._synced(self.stripe_emulator.fail_renewal(subscription_id))

    def set_status(self, subscription_id: str, status: str) -> dict[str, Any]:
        """`unpaid`, `incomplete_expired`, ... (the update)."""
        return self._synced(self.stripe_emulator.set_status(subscription_id, status))

    def pay_overdue(self, subscription_id: str) -> list[dict[str, Any]]:
        """The overdue invoice is paid: `[invoice.paid, updated]`."""
        return self._synced(self.stripe_emulator.pay_overdue(subscription_id))

    def pause(self, subscription_id: str) -> list[dict[str, Any]]:
        """`[customer.subscription.paused, updated]`."""
        return self._synced(self.stripe_emulator.pause(subscription_id))

    def resume(self, subscription_id: str) -> list[dict[str, Any]]:
        """`[customer.subscription.resumed, updated, invoice.paid]`."""
        return self._synced(self.stripe_emulator.resume(subscription_id))

    def schedule_cancel(
        self, subscription_id: str, *, at_period_end: bool = True
    ) -> dict[str, Any]:
        """Set or undo `cancel_at_period_end` (the update)."""
        return self._synced(
            self.stripe_emulator.schedule_cancel(subscription_id, at_period_end=at_period_end)
        )

    def end_period(self, subscription_id: str) -> dict[str, Any]:
        """A subscription set to cancel reaches its period's end: the deletion."""
        return self._synced(self.stripe_emulator.end_period(subscription_id))

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self.stripe_emulator.now = self.stripe_emulator.now + int(seconds)
        self.sync_clocks()

    def _synced(self, events: _T) -> _T:
        self.sync_clocks()
        return events

    def sync_clocks(self) -> None:
        """Set the Zentitle2 emulator's clock to the Stripe emulator's."""
        self.zentitle_emulator.now = self.stripe_emulator.clock.now

    # -- serving ------------------------------------------------------------------------

    @contextlib.contextmanager
    def served(self, storage_dir: str) -> Iterator[dict[str, str]]:
        """Serve both emulators on loopback; yields the environment a user would set
        (see [`environ`][zentitle_stripe.testing.EmulatedWorld.environ]). Needs the
        `server` extra."""
        with self.zentitle_emulator.serve() as zentitle_url, self.stripe_emulator.serve() as url:
            yield self.environ(zentitle_url, url, storage_dir)

    def environ(self, zentitle_url: str, stripe_url: str, storage_dir: str) -> dict[str, str]:
        """The settings a user would put in the environment, pointing at emulators served
        at these URLs, with SQLite storage in `storage_dir`."""
        z, stripe = self.zentitle_emulator, self.stripe_emulator
        return {
            "STRIPE_API_KEY": stripe.api_key,
            "STRIPE_WEBHOOK_SECRET": stripe.webhook_secret,
            "STRIPE_API_BASE": stripe_url,
            "ZENTITLE_API_URL": zentitle_url,
            "ZENTITLE_TOKEN_URL": z.token_url_for(zentitle_url),
            "ZENTITLE_TENANT_ID": z.tenant_id,
            "ZENTITLE_CLIENT_ID": z.client_id,
            "ZENTITLE_CLIENT_SECRET": z.client_secret,
            "ZENTITLE_WEBHOOK_PUBLIC_KEY": z.public_key_modulus,
            "ZENTITLE_STRIPE_STORAGE": f"sqlite:///{storage_dir}/zentitle_stripe.db",
        }

    # -- delivery -----------------------------------------------------------------------

    def deliver(self, event: dict[str, Any]) -> WebhookResponse:
        """Sign `event` as Stripe would now and hand it to the provisioner."""
        body, header = self.stripe_emulator.sign(event, timestamp=int(time.time()))
        return self.provisioner.handle_event(body, header)

    # -- inspection -----------------------------------------------------------------------

    def groups(self, subscription_id: str) -> list[EntitlementGroup]:
        """Zentitle2 groups whose `orderRefId` is the subscription."""
        return self.zentitle_emulator.groups(order_ref_id=subscription_id)

    def entitlements(self, subscription_id: str) -> list[Entitlement]:
        return [
            entitlement
            for group in self.groups(subscription_id)
            for entitlement in self.zentitle_emulator.entitlements(group.id)
        ]

    def active_entitlements(self, subscription_id: str) -> list[Entitlement]:
        return [e for e in self.entitlements(subscription_id) if e.status == "active"]

    def activation_codes(self, subscription_id: str) -> str | None:
        """The subscription's `activation_codes` metadata in Stripe."""
        metadata = self.stripe_emulator.subscription(subscription_id).get("metadata") or {}
        value = metadata.get("activation_codes")
        return str(value) if value is not None else None
