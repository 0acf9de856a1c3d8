"""The Zentitle2 webhook ``Router``: event codes to handlers, and what dispatch answers."""

from __future__ import annotations

import json

import pytest

from zentitle_stripe import OutcomeKind, Provisioner
from zentitle_stripe.storage import MemoryStorage
from zentitle_stripe.zentitle_router import Router
from zentitle_stripe.zentitle_webhooks import ZentitleEvent, parse_zentitle_event


def event(code: str, event_id: str = "event_1") -> ZentitleEvent:
    body = {"eventId": event_id, "eventCode": code, "payload": {"entitlementGroupId": "egr_1"}}
    return parse_zentitle_event(json.dumps(body).encode())


def test_dispatch_calls_the_code_s_handlers_in_order_then_the_catch_all() -> None:
    router = Router()
    calls: list[str] = []

    @router.register("*")
    def audit(e: ZentitleEvent) -> None:
        calls.append(f"audit {e.event_code}")

    @router.register("entitlement.group.created")
    def first(e: ZentitleEvent) -> None:
        calls.append("first")

    def second(e: ZentitleEvent) -> None:
        calls.append("second")

    router.add("entitlement.group.created", second)
    outcome = router.dispatch(event("entitlement.group.created"))
    assert calls == ["first", "second", "audit entitlement.group.created"]
    assert outcome.kind is OutcomeKind.HANDLED
    assert outcome.reason == "entitlement.group.created handled by first, second, audit"


def test_an_unregistered_code_is_ignored_without_calling_anything() -> None:
    router = Router()
    calls: list[ZentitleEvent] = []
    router.add("entitlement.created", calls.append)
    outcome = router.dispatch(event("entitlement.renewed"))
    assert outcome.kind is OutcomeKind.IGNORED
    assert outcome.reason == "no handler registered for entitlement.renewed"
    assert calls == []


def test_register_returns_the_function_unchanged_and_errors_propagate() -> None:
    router = Router()

    def explode(e: ZentitleEvent) -> None:
        raise LookupError("mail server down")

    assert router.register("entitlement.created")(explode) is explode
    with pytest.raises(LookupError, match="mail server down"):
        router.dispatch(event("entitlement.created"))


def test_include_adds_another_router_s_handlers_after_its_own() -> None:
    own, other = Router(), Router()
    calls: list[str] = []
    own.add("entitlement.created", lambda e: calls.append("own"))
    other.add("entitlement.created", lambda e: calls.append("other"))
    other.add("entitlement.updated", lambda e: calls.append("other updated"))
    own.include(other)
    own.dispatch(event("entitlement.created"))
    own.dispatch(event("entitlement.updated"))
    assert calls == ["own", "other", "other updated"]
    assert len(other.handlers_for("entitlement.created")) == 1  # the other is unchanged


def test_on_zentitle_registers_on_the_provisioner_s_router() -> None:
    provisioner = Provisioner(webhook_secrets=["whsec_x"], storage=MemoryStorage())
    calls: list[ZentitleEvent] = []
    provisioner.on_zentitle("entitlement.created")(calls.append)
    assert provisioner.zentitle_router.handlers_for("entitlement.created") == [calls.append]
    provisioner.zentitle_router.dispatch(event("entitlement.created"))
    assert [e.event_id for e in calls] == ["event_1"]
