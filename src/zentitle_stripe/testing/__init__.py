"""Test helpers shipped with zentitle-stripe: use them in your own tests.

- signing: [`sign_stripe_payload`][zentitle_stripe.testing.sign_stripe_payload] makes a
  valid `Stripe-Signature` header.
- events: [`invoice_paid_event`][zentitle_stripe.testing.invoice_paid_event],
  [`subscription_deleted_event`][zentitle_stripe.testing.subscription_deleted_event],
  [`subscription_event`][zentitle_stripe.testing.subscription_event] (updated, paused,
  resumed),
  [`charge_refunded_event`][zentitle_stripe.testing.charge_refunded_event] and
  [`charge_dispute_created_event`][zentitle_stripe.testing.charge_dispute_created_event]
  build payloads in either Stripe API generation.
- storage: [`StorageContract`][zentitle_stripe.testing.StorageContract], the test suite
  every storage backend must pass.
- emulators: [`ZentitleEmulator`][zentitle_stripe.testing.ZentitleEmulator] and
  [`StripeEmulator`][zentitle_stripe.testing.StripeEmulator], in-memory APIs for offline
  tests and the demo, both on one [`FakeService`][zentitle_stripe.testing.FakeService]
  base: the same request recording (`requests`, `count`, `reset_requests`), faults
  (`inject_fault` with a [`FaultKind`][zentitle_stripe.testing.FaultKind], `fail_rate`,
  `clear_faults`), serving (`transport()`, `asgi_app`, `serve()`) and clock
  ([`FakeClock`][zentitle_stripe.testing.FakeClock] as `clock`, `advance`).
- world: [`EmulatedWorld`][zentitle_stripe.testing.EmulatedWorld] wires both emulators
  to a `Provisioner` in process, or serves them on loopback for the demo.
- contract: [`Contract`][zentitle_stripe.testing.Contract] holds the Zentitle2 emulator
  to Zentitle2's published 2025-10-10 contract; a divergence raises
  [`ContractViolation`][zentitle_stripe.testing.ContractViolation] and is recorded, so
  call [`take_contract_violations`][zentitle_stripe.testing.take_contract_violations]
  after each test (see `tests/conftest.py`).
"""

from __future__ import annotations

from ._charge_events import charge_dispute_created_event, charge_refunded_event
from ._contract import (
    Contract,
    ContractViolation,
    allow_contract_violations,
    contract_violations,
    take_contract_violations,
)
from ._events import (
    NEW_API_VERSION,
    OLD_API_VERSION,
    LineSpec,
    invoice_paid_event,
    make_event,
    one_time_invoice_paid_event,
    sign_stripe_payload,
    subscription_deleted_event,
    subscription_event,
)
from ._fake import (
    DEFAULT_RANDOM_FAULTS,
    FAULT_KINDS,
    FakeClock,
    FakeService,
    FaultKind,
    RecordedRequest,
)
from ._storage_contract import StorageContract
from ._stripe_emulator import StripeEmulator
from ._world import EmulatedWorld
from ._zentitle_emulator import OutgoingWebhook, ZentitleEmulator

__all__ = [
    "DEFAULT_RANDOM_FAULTS",
    "FAULT_KINDS",
    "NEW_API_VERSION",
    "OLD_API_VERSION",
    "Contract",
    "ContractViolation",
    "EmulatedWorld",
    "FakeClock",
    "FakeService",
    "FaultKind",
    "LineSpec",
    "OutgoingWebhook",
    "RecordedRequest",
    "StorageContract",
    "StripeEmulator",
    "ZentitleEmulator",
    "allow_contract_violations",
    "charge_dispute_created_event",
    "charge_refunded_event",
    "contract_violations",
    "invoice_paid_event",
    "make_event",
    "one_time_invoice_paid_event",
    "sign_stripe_payload",
    "subscription_deleted_event",
    "subscription_event",
    "take_contract_violations",
]
