"""What the tests share: building an emulated world, reading a core response, where the
repository's files are.

Import from here (`from tests.support import make_world`), never from `conftest`: pytest
owns conftest modules, and importing one by name loads it twice. The `world` fixture in
`tests/conftest.py` is built with `make_world`; the
PostgreSQL and stress helpers live in `tests.support.postgres` and `tests.support.stress`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from zentitle_stripe import OutcomeKind, WebhookResponse
from zentitle_stripe.demo import DemoStory
from zentitle_stripe.testing import NEW_API_VERSION, OLD_API_VERSION, EmulatedWorld

__all__ = [
    "DEFAULT_OFFERINGS",
    "EXAMPLES",
    "GENERATIONS",
    "ROOT",
    "ExampleEnv",
    "detail",
    "kind",
    "make_world",
    "subscribe_two",
]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"

#: Both Stripe payload generations, with the ids tests are named by.
GENERATIONS = {"acacia": OLD_API_VERSION, "endive": NEW_API_VERSION}

#: The two offerings most tests buy: one subscription, two products.
DEFAULT_OFFERINGS: Mapping[str, Mapping[str, Any]] = {"PRO-1Y": {}, "ADDON-1Y": {}}

#: The story seeded and served by `served_example_env`, and a loader importing a file
#: as a fresh module.
ExampleEnv = tuple[DemoStory, Callable[[Path], ModuleType]]


def make_world(
    *,
    offerings: Mapping[str, Mapping[str, Any]] = DEFAULT_OFFERINGS,
    webhooks: Mapping[str, Sequence[str]] | None = None,
    **options: Any,
) -> EmulatedWorld:
    """Both emulators and a provisioner (`options` go to `EmulatedWorld`), with
    `offerings` (SKU -> offering options) to buy and Zentitle2 `webhooks` (uri -> event
    codes) registered."""
    world = EmulatedWorld(**options)
    for sku, offering in offerings.items():
        world.offering(sku, **offering)
    for uri, codes in (webhooks or {}).items():
        world.zentitle_emulator.add_webhook(uri, list(codes))
    return world


def subscribe_two(world: EmulatedWorld, **customer: Any) -> tuple[str, dict[str, Any]]:
    """A new customer (`customer` are its fields) buys PRO-1Y and ADDON-1Y in one
    subscription; returns its id and the first `invoice.paid` event, not yet delivered."""
    buyer = world.customer(**customer)
    return world.subscribe(buyer, [(world.price("PRO-1Y"), 1), (world.price("ADDON-1Y"), 1)])


def detail(response: WebhookResponse) -> str:
    """The human-readable `detail` of a core response's JSON body."""
    value: str = json.loads(response.body)["detail"]
    return value


def kind(response: WebhookResponse) -> OutcomeKind:
    return response.outcome.kind
