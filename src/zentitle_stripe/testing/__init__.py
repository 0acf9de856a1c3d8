"""Test helpers shipped with zentitle-stripe: use them in your own tests.

- signing: :func:`sign_stripe_payload` makes a valid ``Stripe-Signature`` header.
- events: :func:`invoice_paid_event`, :func:`subscription_deleted_event` build payloads in
  either Stripe API generation.
- storage: :class:`StorageContract`, the test suite every storage backend must pass.
- emulators: :class:`ZentitleEmulator` and :class:`StripeEmulator`, in-memory APIs for
  offline tests and the demo; :class:`EmulatedWorld` wires both to a ``Provisioner``.
- contract: :class:`Contract` holds the Zentitle2 emulator to Zentitle2's published
  2025-10-10 contract; a divergence raises :class:`ContractViolation` and is recorded, so
  call :func:`take_contract_violations` after each test (see ``tests/conftest.py``).
"""

from __future__ import annotations

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
)
from ._storage_contract import StorageContract
from ._stripe_emulator import FaultKind, StripeEmulator
from ._world import EmulatedWorld
from ._zentitle_emulator import OutgoingWebhook, ZentitleEmulator

__all__ = [
    "NEW_API_VERSION",
    "OLD_API_VERSION",
    "Contract",
    "ContractViolation",
    "EmulatedWorld",
    "FaultKind",
    "LineSpec",
    "OutgoingWebhook",
    "StorageContract",
    "StripeEmulator",
    "ZentitleEmulator",
    "allow_contract_violations",
    "contract_violations",
    "invoice_paid_event",
    "make_event",
    "one_time_invoice_paid_event",
    "sign_stripe_payload",
    "subscription_deleted_event",
    "take_contract_violations",
]
