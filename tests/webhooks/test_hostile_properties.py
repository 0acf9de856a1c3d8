"""Whatever the body and header, `handle_event` and `handle_zentitle_event` answer.

Arbitrary bytes and header strings, and correctly signed JSON-ish bodies built from
hostile strings (NUL, lone surrogates, control characters, very long) and integers
(beyond 64 bits), shaped like Stripe and Zentitle2 events so they reach the flows:
every delivery gets a `WebhookResponse` with a known status and a JSON body that
carries no traceback, against real flows, the emulators and SQLite storage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import make_world
from zentitle_stripe import WebhookResponse
from zentitle_stripe.signature import compute_signature
from zentitle_stripe.storage import SQLiteStorage
from zentitle_stripe.testing import EmulatedWorld

STATUSES = {200, 400, 404, 409, 413, 422, 500, 503}

hostile_text = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=12),
    st.sampled_from(
        ["\x00", "\ud800", "a\udfffb", "\x07", "\u202e", "\u0661\u0662", "x" * 300, "", " "]
    ),
    st.sampled_from(["in_1", "sub_1", "cus_1", "price_1", "evt_1", "invoice.paid"]),
)
hostile_int = st.one_of(
    st.integers(min_value=-(2**31), max_value=2**31),
    st.sampled_from([2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**40, 0, -1]),
)
fresh_ids = st.uuids().map(lambda u: f"id_{u.hex}")
"""Unique ids, so most events are new and reach the flows instead of being duplicates."""
scalars = st.one_of(st.none(), st.booleans(), hostile_int, hostile_text, st.floats())
keys = st.one_of(
    hostile_text,
    st.sampled_from(
        [
            "id",
            "object",
            "customer",
            "subscription",
            "parent",
            "subscription_details",
            "lines",
            "data",
            "quantity",
            "period",
            "end",
            "price",
            "metadata",
            "billing_reason",
            "customer_email",
            "customer_name",
        ]
    ),
)
json_ish = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)
invoice_like = st.builds(
    lambda rest, ids: {**rest, **ids},
    st.dictionaries(keys, json_ish, max_size=8),
    st.fixed_dictionaries(
        {"id": fresh_ids | hostile_text},
        optional={"customer": fresh_ids | hostile_text, "subscription": fresh_ids | hostile_text},
    ),
)
"""A `data.object` with an id (and often a customer and subscription), so the flows
read it rather than stop at a missing id."""
stripe_events = st.fixed_dictionaries(
    {
        "id": fresh_ids | hostile_text,
        "object": st.sampled_from(["event", "event", "event", "v2.core.event"]),
        "type": st.sampled_from(["invoice.paid", "customer.subscription.deleted"]) | hostile_text,
        "created": hostile_int | scalars,
        "api_version": hostile_text | st.none(),
        "data": st.fixed_dictionaries({"object": invoice_like}),
    }
)
zentitle_events = st.fixed_dictionaries(
    {
        "eventId": fresh_ids | hostile_text,
        "eventCode": st.sampled_from(["entitlement.group.created", "entitlement.updated"])
        | hostile_text,
        "eventDate": hostile_text | st.sampled_from(["0001-01-01T00:00:00+01:00"]),
        "resourceId": hostile_text,
        "callAttempt": hostile_int,
        "payload": st.dictionaries(keys, json_ish, max_size=6),
    }
)
headers = st.text(st.characters(codec=None, exclude_categories=()), max_size=80) | st.none()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedWorld]:
    storage = SQLiteStorage(str(tmp_path_factory.mktemp("hostile") / "z.db"))
    world = make_world(storage=storage)
    world.provisioner.on_zentitle("*")(lambda event: None)
    yield world
    world.close()


def answered(response: WebhookResponse) -> None:
    assert isinstance(response, WebhookResponse)
    assert response.status in STATUSES, response.body
    body = json.loads(response.body)
    assert set(body) == {"event_id", "type", "outcome", "detail"}
    assert "Traceback" not in response.body.decode()


def stripe_sign(body: bytes, secret: str) -> str:
    t = str(int(time.time()))
    return f"t={t},v1={compute_signature(t, body, secret)}"


_settings = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(body=st.binary(max_size=400), header=headers)
def test_any_bytes_and_any_header_get_an_answer(
    world: EmulatedWorld, body: bytes, header: str | None
) -> None:
    answered(world.provisioner.handle_event(body, header))
    answered(world.provisioner.handle_zentitle_event(body, header))


@_settings
@given(body=st.text(st.characters(codec=None, exclude_categories=()), max_size=200))
def test_any_text_body_gets_an_answer(world: EmulatedWorld, body: str) -> None:
    answered(world.provisioner.handle_event(body, "t=1,v1=00"))
    answered(world.provisioner.handle_zentitle_event(body, "AAAA"))


@_settings
@given(event=stripe_events, raw=json_ish)
def test_signed_hostile_stripe_bodies_get_an_answer(
    world: EmulatedWorld, event: dict[str, Any], raw: Any
) -> None:
    secret = world.stripe_emulator.webhook_secret
    for document in (event, raw):
        body = json.dumps(document).encode()
        answered(world.provisioner.handle_event(body, stripe_sign(body, secret)))


@_settings
@given(event=zentitle_events, raw=json_ish)
def test_signed_hostile_zentitle_bodies_get_an_answer(
    world: EmulatedWorld, event: dict[str, Any], raw: Any
) -> None:
    for document in (event, raw):
        body = json.dumps(document).encode()
        answered(world.provisioner.handle_zentitle_event(body, world.zentitle_emulator.sign(body)))
