"""Hostile but correctly signed bodies and odd headers: always an answer, never a raise.

Issue 13, case 4: JSON nested 1,000+ deep (RecursionError), a lone surrogate in an id
(UnicodeEncodeError), `created` >= 2**63 on SQLite (OverflowError), a NUL in an event
id on PostgreSQL (503 on every retry), a header `t` of non-ASCII digits (ValueError).
Each is now a 400 naming the field and what is wrong, with nothing recorded; bad ids
inside `data.object` are read after recording, so they are a recorded failure (422)
that a replay answers the same way. The same holds for Zentitle2 webhooks.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import detail, make_world
from zentitle_stripe import Provisioner, WebhookResponse
from zentitle_stripe.events import StripeEvent
from zentitle_stripe.exceptions import InvalidPayloadError
from zentitle_stripe.responses import Outcome
from zentitle_stripe.signature import compute_signature
from zentitle_stripe.storage import EventStatus, SQLiteStorage, Storage
from zentitle_stripe.testing import EmulatedWorld, LineSpec, invoice_paid_event
from zentitle_stripe.zentitle_webhooks import EntitlementGroupCreated

SECRET = "whsec_hostile"


def sign(body: bytes, *, t: str | None = None, secret: str = SECRET) -> str:
    """A correct `Stripe-Signature` for `body`, with `t` spelled as given."""
    t = t if t is not None else str(int(time.time()))
    return f"t={t},v1={compute_signature(t, body, secret)}"


def envelope(**fields: Any) -> dict[str, Any]:
    event = invoice_paid_event([LineSpec("price_1", "PRO-1Y")], event_id="evt_ok")
    event.update(fields)
    return event


def encoded(document: Any) -> bytes:
    """JSON as Stripe writes it: ASCII, so lone surrogates travel as `\\ud800` escapes."""
    return json.dumps(document).encode()


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


class Recording:
    """A processor that records what it was given; acts on invoice.paid."""

    event_types = frozenset({"invoice.paid"})

    def __init__(self) -> None:
        self.seen: list[str] = []

    def process(self, event: StripeEvent, *, owner: str) -> Outcome:
        self.seen.append(event.id)
        return Outcome.ignored("recorded")


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SQLiteStorage]:
    storage = SQLiteStorage(str(tmp_path / "hostile.db"))
    yield storage
    storage.close()


@pytest.fixture
def processor() -> Recording:
    return Recording()


@pytest.fixture
def provisioner(sqlite: SQLiteStorage, processor: Recording) -> Provisioner:
    return Provisioner(webhook_secrets=[SECRET], storage=sqlite, processor=processor)


def assert_refused(
    response: WebhookResponse, storage: Storage, *, says: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A 400 saying `says`, nothing recorded, nothing at ERROR, no traceback."""
    assert response.status == 400, response.body
    assert says in detail(response)
    assert storage.list_events() == []
    assert errors_logged(caplog) == []
    assert b"Traceback" not in response.body


# -- the envelope of a Stripe event ------------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_json_nested_thousands_deep_is_refused(
    provisioner: Provisioner, sqlite: Storage, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    nested = "[" * depth + "]" * depth
    body = encoded(envelope()).replace(b'"metadata": {}', f'"metadata": {nested}'.encode(), 1)
    assert nested.encode() in body
    response = provisioner.handle_event(body, sign(body))
    assert_refused(response, sqlite, says="nests JSON more than 64 levels deep", caplog=caplog)


def test_json_nested_just_inside_the_limit_is_read(
    provisioner: Provisioner, processor: Recording
) -> None:
    body = encoded(envelope(deep=[[[[[[[[[[[]]]]]]]]]]]))
    assert provisioner.handle_event(body, sign(body)).status == 200
    assert processor.seen == ["evt_ok"]


@pytest.mark.parametrize(
    ("event_id", "problem"),
    [
        ("evt_\ud800", "contains a lone surrogate (\\ud800)"),
        ("evt_\udfff_x", "contains a lone surrogate (\\udfff)"),
        ("evt_\x00", "contains a NUL character"),
        ("evt_\x07", "contains the control or format character \\x07"),
        ("evt_" + "x" * 300, "has 304 characters, more than 255"),
    ],
    ids=["surrogate", "low-surrogate", "nul", "bell", "long"],
)
def test_an_unstorable_event_id_is_refused_by_name(
    provisioner: Provisioner,
    sqlite: Storage,
    event_id: str,
    problem: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = encoded(envelope(id=event_id))
    response = provisioner.handle_event(body, sign(body))
    assert_refused(response, sqlite, says=f"event id {event_id[:40]!a}", caplog=caplog)
    assert problem in detail(response)
    assert "Stripe ids are printable text of at most 255 characters" in detail(response)


def test_an_unstorable_event_type_is_refused_by_name(
    provisioner: Provisioner, sqlite: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    body = encoded(envelope(type="invoice.\ud83d"))
    response = provisioner.handle_event(body, sign(body))
    assert_refused(response, sqlite, says="event evt_ok: type", caplog=caplog)


@pytest.mark.parametrize("created", [2**63, 2**64 + 5, -(2**63) - 1, 10**40])
def test_created_beyond_64_bits_is_refused_on_sqlite(
    provisioner: Provisioner, sqlite: Storage, created: int, caplog: pytest.LogCaptureFixture
) -> None:
    body = encoded(envelope(created=created))
    response = provisioner.handle_event(body, sign(body))
    assert_refused(response, sqlite, says="event evt_ok: created", caplog=caplog)
    assert "out of range: it must fit in a signed 64-bit integer" in detail(response)


def test_created_at_the_64_bit_limit_is_recorded(provisioner: Provisioner, sqlite: Storage) -> None:
    body = encoded(envelope(created=2**63 - 1))
    assert provisioner.handle_event(body, sign(body)).status == 200
    record = sqlite.get_event("evt_ok")
    assert record is not None
    assert record.created == 2**63 - 1


@pytest.mark.parametrize(
    "t",
    [
        "\u0661\u0668\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660",  # Arabic-Indic
        "\u00b9\u2078\u2070\u2070\u2070\u2070\u2070\u2070\u2070\u2070",  # superscript
        "\uff11\uff18\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10",  # fullwidth
        "9" * 5000,  # over int()'s 4300-digit limit
    ],
    ids=["arabic-indic", "superscript", "fullwidth", "5000-digits"],
)
def test_a_header_t_of_other_digits_is_refused(
    provisioner: Provisioner,
    processor: Recording,
    sqlite: Storage,
    t: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = encoded(envelope())
    response = provisioner.handle_event(body, sign(body, t=t))
    assert_refused(response, sqlite, says="its t is not a Unix time in ASCII digits", caplog=caplog)
    assert processor.seen == []


def test_text_that_is_not_unicode_is_refused(
    provisioner: Provisioner, sqlite: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    text = json.dumps(envelope(), ensure_ascii=False).replace("evt_ok", "evt_\ud800")
    response = provisioner.handle_event(text, "t=1,v1=00")
    assert_refused(response, sqlite, says="cannot be encoded as UTF-8", caplog=caplog)


def test_a_nul_in_an_event_id_on_postgresql_is_a_400_not_a_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.support.postgres import find_server, fresh_schema

    server = find_server()
    from zentitle_stripe.storage.postgres import PostgresStorage

    with fresh_schema(server) as url:
        storage = PostgresStorage(url, timeout=5)
        try:
            provisioner = Provisioner(webhook_secrets=[SECRET], storage=storage)
            body = encoded(envelope(id="evt_\x00nul"))
            for _ in range(2):  # a retry gets the same answer: nothing to retry for
                response = provisioner.handle_event(body, sign(body))
                assert_refused(response, storage, says="contains a NUL character", caplog=caplog)
            good = encoded(envelope(id="evt_fine"))
            assert provisioner.handle_event(good, sign(good)).status == 200
        finally:
            storage.close()


# -- ids inside data.object: read after recording -------------------------------------


@pytest.fixture
def world_options(tmp_path: Path) -> dict[str, Any]:
    return {"storage": SQLiteStorage(str(tmp_path / "world.db"))}


def _set_subscription(obj: dict[str, Any], value: str) -> None:
    parent = obj.get("parent") or {}
    details = parent.get("subscription_details")
    if details:
        details["subscription"] = value
    else:
        obj["subscription"] = value


@pytest.mark.world(generations=True)
@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("id", "in_\x00", "the event's invoice object's id 'in_\\x00' contains a NUL"),
        ("customer", "cus_\ud800", "the customer id 'cus_\\ud800' contains a lone surrogate"),
        ("subscription", "sub_" + "9" * 300, "the subscription id 'sub_999"),
    ],
    ids=["invoice-nul", "customer-surrogate", "subscription-long"],
)
def test_an_unusable_id_in_the_invoice_is_a_recorded_failure(
    world: EmulatedWorld,
    field: str,
    value: str,
    says: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    buyer = world.customer()
    subscription_id, paid = world.subscribe(buyer, [(world.price("PRO-1Y"), 1)])
    obj = paid["data"]["object"]
    if field == "subscription":
        _set_subscription(obj, value)
    else:
        obj[field] = value

    response = world.deliver(paid)
    assert response.status == 422, response.body
    assert says in detail(response)
    assert "nothing was done for it" in detail(response)
    record = world.storage.get_event(paid["id"])
    assert record is not None
    assert record.status is EventStatus.FAILED
    assert record.detail == detail(response)

    replayed = world.provisioner.replay(paid["id"])
    assert (replayed.status, detail(replayed)) == (422, detail(response))
    assert world.groups(subscription_id) == []
    assert world.zentitle_emulator.customers() == []
    assert errors_logged(caplog) == []


@pytest.mark.world
def test_an_unusable_subscription_id_in_a_deletion_is_a_recorded_failure(
    world: EmulatedWorld, caplog: pytest.LogCaptureFixture
) -> None:
    buyer = world.customer()
    subscription_id, paid = world.subscribe(buyer, [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 200
    deleted = world.cancel(subscription_id)
    deleted["data"]["object"]["id"] = "sub_\x00"
    response = world.deliver(deleted)
    assert response.status == 422
    assert "the event's subscription object's id 'sub_\\x00' contains a NUL" in detail(response)
    assert len(world.active_entitlements(subscription_id)) == 1  # nothing was changed
    assert errors_logged(caplog) == []


@pytest.mark.world
def test_a_quantity_beyond_32_bits_is_a_recorded_failure(world: EmulatedWorld) -> None:
    buyer = world.customer()
    subscription_id, paid = world.subscribe(buyer, [(world.price("PRO-1Y"), 1)])
    paid["data"]["object"]["lines"]["data"][0]["quantity"] = 2**40
    response = world.deliver(paid)
    assert response.status == 422
    assert f"quantity {2**40} is out of range" in detail(response)
    assert world.groups(subscription_id) == []


@pytest.mark.world
def test_unstorable_text_reads_as_missing(world: EmulatedWorld) -> None:
    """A buyer's name or e-mail with a NUL is not sent anywhere: the customer's own
    (from Stripe's API) is used, as when the payload carries none."""
    buyer = world.customer(name="Ada Buyer")
    subscription_id, paid = world.subscribe(buyer, [(world.price("PRO-1Y"), 1)])
    paid["data"]["object"]["customer_name"] = "Eve\x00"
    paid["data"]["object"]["customer_email"] = "eve\ud800@example.com"
    assert world.deliver(paid).status == 200
    assert len(world.groups(subscription_id)) == 1
    assert [c.name for c in world.zentitle_emulator.customers()] == ["Ada Buyer"]


def test_a_processor_reading_bad_data_gets_a_clear_422(
    sqlite: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    class Strict(Recording):
        def process(self, event: StripeEvent, *, owner: str) -> Outcome:
            raise InvalidPayloadError("the invoice's widget id is a NUL")

    provisioner = Provisioner(webhook_secrets=[SECRET], storage=sqlite, processor=Strict())
    body = encoded(envelope())
    response = provisioner.handle_event(body, sign(body))
    assert response.status == 422
    assert "the invoice's widget id is a NUL" in detail(response)
    record = sqlite.get_event("evt_ok")
    assert record is not None
    assert record.status is EventStatus.FAILED
    assert errors_logged(caplog) == []


# -- Zentitle2 webhooks -------------------------------------------------------------------


@pytest.fixture
def zworld(sqlite: SQLiteStorage) -> Iterator[EmulatedWorld]:
    world = make_world(storage=sqlite)
    yield world
    world.close()


def zentitle_body(**fields: Any) -> dict[str, Any]:
    body = {
        "eventId": "zev_1",
        "eventCode": "entitlement.group.created",
        "eventDate": "2026-01-01T00:00:00Z",
        "resourceId": "grp_1",
        "callAttempt": 1,
        "payload": {"entitlementGroupId": "grp_1", "orderRefId": "sub_1"},
    }
    body.update(fields)
    return body


def deliver_zentitle(world: EmulatedWorld, body: bytes) -> WebhookResponse:
    return world.provisioner.handle_zentitle_event(body, world.zentitle_emulator.sign(body))


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"eventId": "zev_\ud800"}, "eventId 'zev_\\ud800' contains a lone surrogate"),
        ({"eventId": "zev_\x00"}, "eventId 'zev_\\x00' contains a NUL"),
        ({"eventId": "z" * 256}, "has 256 characters, more than 255"),
        ({"eventCode": "entitlement.\x00"}, "eventCode 'entitlement.\\x00' contains a NUL"),
        ({"payload": {"deep": json.loads("[" * 500 + "]" * 500)}}, "more than 64 levels"),
    ],
    ids=["id-surrogate", "id-nul", "id-long", "code-nul", "deep"],
)
def test_an_unusable_zentitle_envelope_is_refused_by_name(
    zworld: EmulatedWorld,
    sqlite: Storage,
    fields: dict[str, Any],
    says: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = deliver_zentitle(zworld, encoded(zentitle_body(**fields)))
    assert_refused(response, sqlite, says=says, caplog=caplog)


def test_zentitle_json_nested_thousands_deep_is_refused(
    zworld: EmulatedWorld, sqlite: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    body = b'{"eventId": "zev_1", "eventCode": "x", "payload": {"a": ' + b"[" * 100_000
    body += b"]" * 100_000 + b"}}"
    assert_refused(deliver_zentitle(zworld, body), sqlite, says="levels deep", caplog=caplog)


def test_odd_zentitle_fields_read_as_missing(zworld: EmulatedWorld, sqlite: Storage) -> None:
    seen: list[EntitlementGroupCreated] = []
    zworld.provisioner.on_zentitle("entitlement.group.created")(seen.append)
    body = zentitle_body(
        eventDate="0001-01-01T00:00:00+01:00",  # before year 1 in UTC: OverflowError
        resourceId="grp_\x00",
        callAttempt=2**70,
        payload={"entitlementGroupId": "grp_\ud800", "orderRefId": "sub_\x00"},
    )
    response = deliver_zentitle(zworld, encoded(body))
    assert response.status == 200
    (event,) = seen
    assert (event.event_date, event.resource_id, event.call_attempt) == (None, None, 1)
    assert (event.entitlement_group_id, event.order_ref_id) == (None, None)
    record = sqlite.get_event("zev_1", "zentitle")
    assert record is not None
    assert record.created is None


@pytest.mark.parametrize(
    "header", ["\u0661\u0662\u0663=", "AAAA\ud800", "\x00" * 10], ids=["digits", "surrogate", "nul"]
)
def test_an_odd_n_signature_is_refused(
    zworld: EmulatedWorld, sqlite: Storage, header: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = zworld.provisioner.handle_zentitle_event(encoded(zentitle_body()), header)
    assert_refused(response, sqlite, says="N-Signature", caplog=caplog)


def test_zentitle_text_that_is_not_unicode_is_refused(
    zworld: EmulatedWorld, sqlite: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    response = zworld.provisioner.handle_zentitle_event('{"eventId": "\ud800"}', "AAAA")
    assert_refused(response, sqlite, says="cannot be encoded as UTF-8", caplog=caplog)


def test_a_nul_in_a_zentitle_event_id_on_postgresql_is_a_400(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.support.postgres import find_server, fresh_schema

    server = find_server()
    from zentitle_stripe.storage.postgres import PostgresStorage

    with fresh_schema(server) as url:
        storage = PostgresStorage(url, timeout=5)
        world = make_world(storage=storage)
        try:
            response = deliver_zentitle(world, encoded(zentitle_body(eventId="zev_\x00")))
            assert_refused(response, storage, says="contains a NUL", caplog=caplog)
        finally:
            world.close()
