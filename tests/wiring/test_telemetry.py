"""OpenTelemetry (the `otel` extra): a span per answered event and per remote attempt, the
three metrics, nothing secret in any attribute, and no cost or import without the extra."""

from __future__ import annotations

import builtins
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from zentitle_stripe import Provisioner, telemetry
from zentitle_stripe.exceptions import MissingExtraError
from zentitle_stripe.storage import MemoryStorage
from zentitle_stripe.testing import EmulatedWorld, sign_stripe_payload


class Otel:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        telemetry.enable(
            tracer_provider=tracer_provider,
            meter_provider=MeterProvider(metric_readers=[self.reader]),
        )

    def finished(self) -> Sequence[ReadableSpan]:
        return self.spans.get_finished_spans()

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, point) of every data point of the metric `name`."""
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            (dict(point.attributes or {}), point)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def otel() -> Iterator[Otel]:
    yield Otel()
    telemetry.reset()


@pytest.fixture
def world() -> Iterator[EmulatedWorld]:
    world = EmulatedWorld()
    yield world
    world.close()


def attributes_text(spans: Sequence[ReadableSpan]) -> str:
    return json.dumps([dict(span.attributes or {}) for span in spans] + [s.name for s in spans])


def test_an_event_is_a_span_with_its_remote_calls_as_children(
    otel: Otel, world: EmulatedWorld
) -> None:
    world.offering("PRO-1Y")
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 200

    spans = otel.finished()
    (event,) = [s for s in spans if s.kind is SpanKind.INTERNAL]
    assert event.name == "stripe invoice.paid"
    assert dict(event.attributes or {}) == {
        "zentitle_stripe.intake": "stripe webhook",
        "zentitle_stripe.event.source": "stripe",
        "zentitle_stripe.event.id": paid["id"],
        "zentitle_stripe.event.type": "invoice.paid",
        "zentitle_stripe.outcome": "provisioned",
        "http.response.status_code": 200,
    }
    remote = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert {s.attributes["zentitle_stripe.remote"] for s in remote if s.attributes} == {
        "zentitle",
        "stripe",
    }
    assert event.context is not None
    for span in remote:
        assert span.parent is not None
        assert span.parent.span_id == event.context.span_id
        assert span.attributes is not None
        method, route = span.attributes["http.request.method"], span.attributes["url.template"]
        assert span.name == f"{method!s} {route!s}"
        assert subscription_id not in span.name  # ids are templated away
        assert "http.response.status_code" in span.attributes
    names = {s.name for s in remote}
    assert "POST /api/v1/entitlements/groups" in names
    assert "POST /v1/subscriptions/{id}" in names  # the activation codes written back

    text = attributes_text(spans)
    emulators = (world.stripe_emulator, world.zentitle_emulator)
    for secret in (
        world.stripe_emulator.api_key,
        world.stripe_emulator.webhook_secret,
        world.zentitle_emulator.client_secret,
        "buyer@example.com",  # from the payload
    ):
        assert secret not in text, (secret, emulators)

    (count,) = otel.points("zentitle_stripe.events")
    assert count[0] == {
        "zentitle_stripe.event.source": "stripe",
        "zentitle_stripe.event.type": "invoice.paid",
        "zentitle_stripe.outcome": "provisioned",
        "http.response.status_code": 200,
    }
    assert count[1].value == 1
    durations = otel.points("zentitle_stripe.remote.duration")
    assert {a["zentitle_stripe.remote"] for a, _ in durations} == {"zentitle", "stripe"}
    assert sum(point.count for _, point in durations) == len(remote)


def test_a_refused_delivery_is_counted_and_spanned_without_a_type(otel: Otel) -> None:
    provisioner = Provisioner(webhook_secrets=["whsec_right"], storage=MemoryStorage())
    body, header = sign_stripe_payload({"id": "evt_1"}, "whsec_wrong")
    assert provisioner.handle_event(body, header).status == 400
    (span,) = otel.finished()
    assert span.name == "stripe webhook"
    assert span.attributes is not None
    assert span.attributes["zentitle_stripe.outcome"] == "failed"
    assert span.attributes["http.response.status_code"] == 400
    assert "zentitle_stripe.event.type" not in span.attributes
    assert "whsec_" not in attributes_text([span])
    ((attributes, point),) = otel.points("zentitle_stripe.events")
    assert attributes["zentitle_stripe.outcome"] == "failed"
    assert point.value == 1


def test_a_5xx_marks_the_event_span_as_an_error(otel: Otel, world: EmulatedWorld) -> None:
    world.offering("PRO-1Y")
    _, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    world.zentitle_emulator.inject_fault("POST", "/api/v1/entitlements/groups", "503")
    assert world.deliver(paid).status == 503
    (event,) = [s for s in otel.finished() if s.kind is SpanKind.INTERNAL]
    assert event.status.status_code is StatusCode.ERROR
    failed = [
        s
        for s in otel.finished()
        if s.kind is SpanKind.CLIENT
        and (s.attributes or {}).get("http.response.status_code") == 503
    ]
    assert failed
    assert failed[0].status.status_code is StatusCode.ERROR
    assert (failed[0].attributes or {})["error.type"] == "503"


def test_retries_are_spans_with_a_resend_count_and_counted(otel: Otel) -> None:
    from zentitle_stripe.testing import ZentitleEmulator

    emulator = ZentitleEmulator()
    client = emulator.client(sleep=lambda seconds: None)
    customer = client.create_customer(name="Acme", account_ref_id="cus_1")
    emulator.inject_fault("GET", "/api/v1/customers/", "503", times=2)
    assert client.get_customer(customer.id).id == customer.id
    gets = [s for s in otel.finished() if s.name == "GET /api/v1/customers/{id}"]
    assert [(s.attributes or {}).get("http.request.resend_count") for s in gets] == [None, 1, 2]
    assert [(s.attributes or {})["http.response.status_code"] for s in gets] == [503, 503, 200]
    ((attributes, point),) = otel.points("zentitle_stripe.remote.retries")
    assert attributes == {
        "zentitle_stripe.remote": "zentitle",
        "http.request.method": "GET",
        "url.template": "/api/v1/customers/{id}",
        "zentitle_stripe.retry.cause": "503",
    }
    assert point.value == 2


def test_stripe_retries_are_counted(otel: Otel, monkeypatch: pytest.MonkeyPatch) -> None:
    import stripe

    from zentitle_stripe.stripe_api import StripeGateway
    from zentitle_stripe.testing import StripeEmulator

    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.001)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.001)
    emulator = StripeEmulator()
    price_id = emulator.create_price(emulator.create_product("Pro"))
    emulator.inject_fault("GET", "/v1/prices/", "500", times=1)
    with StripeGateway(
        emulator.api_key, http_transport=emulator.transport(), max_network_retries=1
    ) as gateway:
        gateway.retrieve_price(price_id)
    gets = [s for s in otel.finished() if s.name == "GET /v1/prices/{id}"]
    assert [(s.attributes or {}).get("http.request.resend_count") for s in gets] == [None, 1]
    ((attributes, point),) = otel.points("zentitle_stripe.remote.retries")
    assert attributes["zentitle_stripe.remote"] == "stripe"
    assert attributes["zentitle_stripe.retry.cause"] == "500"
    assert point.value == 1


def test_disable_reports_nothing(otel: Otel, world: EmulatedWorld) -> None:
    telemetry.disable()
    assert not telemetry.enabled()
    world.offering("PRO-1Y")
    _, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 200
    assert otel.finished() == ()


def test_route_templates_keep_only_known_words() -> None:
    assert telemetry.route_template("/api/v1/entitlements/groups/egr_1/extend") == (
        "/api/v1/entitlements/groups/{id}/extend"
    )
    assert telemetry.route_template("/v1/invoices/in_1/lines?limit=100") == (
        "/v1/invoices/{id}/lines"
    )
    assert telemetry.route_template("/api/v1/customers/contacts/search") == (
        "/api/v1/customers/contacts/search"
    )


# -- without the extra -------------------------------------------------------------------


@pytest.fixture
def no_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if `opentelemetry` were not installed: importing it raises ImportError."""
    real_import = builtins.__import__

    def guarded(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", guarded)
    telemetry.reset()
    yield
    monkeypatch.undo()
    telemetry.reset()


@pytest.mark.usefixtures("no_opentelemetry")
def test_the_library_works_without_the_extra(world: EmulatedWorld) -> None:
    world.offering("PRO-1Y")
    subscription_id, paid = world.subscribe(world.customer(), [(world.price("PRO-1Y"), 1)])
    assert world.deliver(paid).status == 200
    assert len(world.active_entitlements(subscription_id)) == 1
    assert not telemetry.enabled()


@pytest.mark.usefixtures("no_opentelemetry")
def test_asking_for_it_without_the_extra_names_the_install() -> None:
    with pytest.raises(MissingExtraError) as info:
        telemetry.enable()
    assert "pip install 'zentitle-stripe[otel]'" in str(info.value)
    assert info.value.extra == "otel"


def test_importing_and_handling_an_event_imports_no_opentelemetry_until_needed() -> None:
    # The auto mode looks for OpenTelemetry at the first event, not at import.
    code = (
        "import sys, zentitle_stripe, zentitle_stripe.testing, zentitle_stripe.telemetry;"
        "print('opentelemetry' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


_AUTO_PROBE = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from zentitle_stripe import Provisioner, telemetry
from zentitle_stripe.storage import MemoryStorage
from zentitle_stripe.testing import make_event, sign_stripe_payload

provisioner = Provisioner(webhook_secrets=["whsec_auto"], storage=MemoryStorage())

def deliver(n):
    body = {"id": "cus_1", "object": "customer"}
    event = make_event("customer.updated", body, event_id=f"evt_{n}")
    assert provisioner.handle_event(*sign_stripe_payload(event, "whsec_auto")).status == 200

deliver(1)
before = telemetry.enabled()
spans = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
deliver(2)
print(before, telemetry.enabled(), [s.name for s in spans.get_finished_spans()])
"""


def test_auto_skips_its_work_until_a_global_provider_is_set_then_reports() -> None:
    # In a process of its own: a global provider can be set once per process.
    result = subprocess.run(
        [sys.executable, "-c", _AUTO_PROBE], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False True ['stripe customer.updated']"
