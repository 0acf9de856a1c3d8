"""OpenTelemetry spans and metrics, with the `otel` extra (`opentelemetry-api`).

What is measured, with no payload, secret, token or signature in any attribute:

- a span per answered delivery (`stripe invoice.paid`, `zentitle entitlement.group.created`,
  or `stripe webhook` for one refused before it was read) with the event's source, id and
  type, its outcome and HTTP status; ERROR status for 5xx;
- a CLIENT span per remote attempt (`GET /api/v1/customers/{id}`) with the method, the
  route template (ids replaced by `{id}`), the status or error type and
  `http.request.resend_count` for a retry, a child of the event's span;
- the metrics `zentitle_stripe.events` (counter: source, type, outcome, status),
  `zentitle_stripe.remote.duration` (histogram, seconds: remote, method, route, status)
  and `zentitle_stripe.remote.retries` (counter: remote, method, route, what caused it).

By default (`auto`) it reports to the global tracer and meter providers when
`opentelemetry-api` can be imported, so an app that sets up the SDK (or runs under
`opentelemetry-instrument`) sees the spans; while neither global provider is set (the API
installed, as FastAPI brings it, but no SDK) it skips its work at the cost of two
attribute reads, and starts reporting as soon as one is set. Nothing is imported until
the first event or remote call, and without the extra every hook is one check of a
module global. [`enable`][zentitle_stripe.telemetry.enable]
asks for it explicitly (with your own providers), raising
[`MissingExtraError`][zentitle_stripe.exceptions.MissingExtraError] without the extra;
[`disable`][zentitle_stripe.telemetry.disable] turns it off.
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ._version import __version__
from .exceptions import MissingExtraError

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

__all__ = ["disable", "enable", "enabled", "reset", "route_template"]

_F = TypeVar("_F", bound=Callable[..., Any])

# Path segments kept as they are in a route template; any other segment is an id. A
# closed list keeps the templates (span names, metric attributes) few whatever ids hold.
_ROUTE_WORDS = frozenset(
    {
        # Zentitle2's Management API and its token endpoint
        "api",
        "v1",
        "customers",
        "contacts",
        "search",
        "offerings",
        "entitlements",
        "groups",
        "extend",
        "renew",
        "disable",
        "enable",
        "account",
        "key",
        "realms",
        "protocol",
        "openid-connect",
        "token",
        "connect",
        # Stripe's API
        "prices",
        "products",
        "invoices",
        "lines",
        "subscriptions",
        "webhook_endpoints",
        "events",
        "charges",
        "refunds",
        "disputes",
    }
)


def route_template(path: str) -> str:
    """`/api/v1/customers/cust_1/contacts` -> `/api/v1/customers/{id}/contacts`."""
    segments = path.split("?", 1)[0].split("/")
    return "/".join(s if not s or s in _ROUTE_WORDS else "{id}" for s in segments)


class _Otel:
    """The tracer, the meter's instruments and the span classes of one configuration."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
        *,
        auto: bool = False,
    ) -> None:
        from opentelemetry import metrics, trace

        self.trace = trace
        # `auto`: while neither global provider is set, nothing listens. The API keeps
        # them in module globals (`None` until `set_*_provider`); reading those costs
        # nothing, where `get_*_provider()` reads the environment on each call. An API
        # without them (a future version) counts as set: report, as before.
        from opentelemetry.metrics import _internal as metrics_internal

        trace.get_tracer_provider(), metrics.get_meter_provider()  # load OTEL_PYTHON_*_PROVIDER
        known = hasattr(trace, "_TRACER_PROVIDER") and hasattr(metrics_internal, "_METER_PROVIDER")
        self._globals = (trace, metrics_internal) if auto and known else None
        self.tracer = trace.get_tracer("zentitle_stripe", __version__, tracer_provider)
        meter = metrics.get_meter("zentitle_stripe", __version__, meter_provider)
        self.events = meter.create_counter(
            "zentitle_stripe.events", unit="{event}", description="Answered webhook deliveries"
        )
        self.duration = meter.create_histogram(
            "zentitle_stripe.remote.duration",
            unit="s",
            description="Duration of one attempt of a Stripe or Zentitle2 API call",
        )
        self.retries = meter.create_counter(
            "zentitle_stripe.remote.retries",
            unit="{retry}",
            description="Stripe and Zentitle2 API calls repeated after a failed attempt",
        )

    def listened(self) -> bool:
        """False while `auto` finds no global provider set: the API's no-op objects would
        cost 10-15 µs per event for nothing."""
        modules = self._globals
        return (
            modules is None
            or modules[0]._TRACER_PROVIDER is not None
            or modules[1]._METER_PROVIDER is not None
        )


class _Unresolved:
    """`auto`, not yet looked at: resolved at the first event or remote call."""


_AUTO = _Unresolved()
_state: _Otel | _Unresolved | None = _AUTO


def _resolve() -> _Otel | None:
    global _state
    if isinstance(_state, _Unresolved):
        try:
            _state = _Otel(None, None, auto=True)
        except ImportError:
            _state = None
    return _state


def _otel() -> _Otel | None:
    state = _state
    otel = _resolve() if isinstance(state, _Unresolved) else state
    return otel if otel is not None and otel.listened() else None


def enable(
    *, tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> None:
    """Report spans and metrics to these providers (default: the global ones).

    Raises [`MissingExtraError`][zentitle_stripe.exceptions.MissingExtraError] (`pip
    install 'zentitle-stripe[otel]'`) when `opentelemetry-api` is not installed.
    """
    global _state
    try:
        _state = _Otel(tracer_provider, meter_provider)
    except ImportError as exc:
        raise MissingExtraError("zentitle_stripe.telemetry", "otel") from exc


def disable() -> None:
    """Report nothing, even with the extra installed."""
    global _state
    _state = None


def reset() -> None:
    """Back to the default (`auto`): decided again at the next event or remote call."""
    global _state
    _state = _AUTO


def enabled() -> bool:
    """Whether spans and metrics are reported now (resolving `auto`: with no global
    provider set, nothing is)."""
    return _otel() is not None


# -- events ------------------------------------------------------------------------------

# The event span of the delivery being handled in this context, if any.
_event_span: contextvars.ContextVar[Span | None] = contextvars.ContextVar(
    "zentitle_stripe_event_span", default=None
)


def traced_event(intake: str) -> Callable[[_F], _F]:
    """Run the decorated intake (`"stripe webhook"`, `"zentitle webhook"`, `"replay"`,
    `"queued"`) in an event span, named after the event once it is answered."""

    def decorate(function: _F) -> _F:
        @functools.wraps(function)
        def traced(*args: Any, **kwargs: Any) -> Any:
            otel = _otel()
            if otel is None:
                return function(*args, **kwargs)
            attributes = {"zentitle_stripe.intake": intake}
            with otel.tracer.start_as_current_span(intake, attributes=attributes) as span:
                token = _event_span.set(span)
                try:
                    return function(*args, **kwargs)
                finally:
                    _event_span.reset(token)

        return traced  # type: ignore[return-value]

    return decorate


def traced_methods(cls: type, **intakes: str) -> None:
    """Wrap each named method of `cls` in [`traced_event`][zentitle_stripe.telemetry.traced_event]
    (`method="intake"`), for a class whose body should not grow."""
    for name, intake in intakes.items():
        setattr(cls, name, traced_event(intake)(getattr(cls, name)))


def event_answered(
    source: str, event_id: str | None, event_type: str | None, outcome: str, status: int
) -> None:
    """Count an answered delivery and describe it on its event span (called by the one
    log line each answer has, [`log_answer`][zentitle_stripe.ledger.log_answer])."""
    otel = _otel()
    if otel is None:
        return
    attributes: dict[str, str | int] = {
        "zentitle_stripe.event.source": source,
        "zentitle_stripe.outcome": outcome,
        "http.response.status_code": status,
    }
    if event_type:
        attributes["zentitle_stripe.event.type"] = event_type
    otel.events.add(1, attributes)
    span = _event_span.get()
    if span is None or not span.is_recording():
        return
    if event_id:
        span.set_attribute("zentitle_stripe.event.id", event_id)
    span.set_attributes(attributes)
    if event_type:
        span.update_name(f"{source} {event_type}")
    if status >= 500:
        span.set_status(otel.trace.StatusCode.ERROR, f"{status} {outcome}")


# -- remote calls ------------------------------------------------------------------------


class _NoCall:
    """The remote call of a disabled telemetry: nothing, at the cost of a method call."""

    def __enter__(self) -> _NoCall:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def answered(self, status: int) -> None:
        return None


_NO_CALL = _NoCall()


class _Call:
    """One attempt of a remote call: a CLIENT span and its duration."""

    def __init__(self, otel: _Otel, remote: str, method: str, path: str, resend: int) -> None:
        self._otel = otel
        route = route_template(path)
        self._attributes: dict[str, str | int] = {
            "zentitle_stripe.remote": remote,
            "http.request.method": method,
            "url.template": route,
        }
        span_attributes = dict(self._attributes)
        if resend:
            span_attributes["http.request.resend_count"] = resend
        self._span = otel.tracer.start_span(
            f"{method} {route}", kind=otel.trace.SpanKind.CLIENT, attributes=span_attributes
        )
        self._scope = otel.trace.use_span(
            self._span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )
        self._status: int | None = None
        self._started = 0.0

    def __enter__(self) -> _Call:
        self._scope.__enter__()
        self._started = time.perf_counter()
        return self

    def answered(self, status: int) -> None:
        """The HTTP status of this attempt."""
        self._status = status

    def __exit__(self, kind: type[BaseException] | None, error: object, tb: object) -> None:
        elapsed = time.perf_counter() - self._started
        attributes = dict(self._attributes)
        if self._status is not None:
            attributes["http.response.status_code"] = self._status
            self._span.set_attribute("http.response.status_code", self._status)
        if kind is not None or (self._status is not None and self._status >= 400):
            what = kind.__name__ if kind is not None else str(self._status)
            attributes["error.type"] = what
            self._span.set_attribute("error.type", what)
            self._span.set_status(self._otel.trace.StatusCode.ERROR, what)
        self._otel.duration.record(elapsed, attributes)
        self._scope.__exit__(None, None, None)
        self._span.end()


RemoteCall = _Call | _NoCall
"""What [`remote_call`][zentitle_stripe.telemetry.remote_call] returns."""


def remote_call(remote: str, method: str, path: str, *, resend: int = 0) -> RemoteCall:
    """A context for one attempt (`resend` earlier attempts) of a call to `remote`
    (`"zentitle"` or `"stripe"`); call `.answered(status)` once the status is known.

    The span is current while the attempt runs, so an HTTP library's own
    instrumentation (httpx's) nests under it.
    """
    otel = _otel()
    if otel is None:
        return _NO_CALL
    return _Call(otel, remote, method, path, resend)


def remote_retried(remote: str, method: str, path: str, cause: str) -> None:
    """Count a retry of a remote call; `cause` is the status or error type before it."""
    otel = _otel()
    if otel is None:
        return
    otel.retries.add(
        1,
        {
            "zentitle_stripe.remote": remote,
            "http.request.method": method,
            "url.template": route_template(path),
            "zentitle_stripe.retry.cause": cause,
        },
    )
