"""What both emulators share: one fake-service base and its clock.

[`FakeService`][zentitle_stripe.testing.FakeService] records every request, injects
faults, serves in process (an httpx transport), as a plain ASGI 3 app or on loopback,
keeps a [`FakeClock`][zentitle_stripe.testing.FakeClock], and holds each request, answer
and outgoing webhook to a [`Contract`][zentitle_stripe.testing.Contract] when it has one.
An emulator only says how it answers a request (`_answer`) and an injected error
(`_error_reply`), so faults (kept by the machinery in `_faults`) behave the same on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import parse_qsl

import attrs
import httpx

from ._asgi import serve_asgi
from ._contract import Contract
from ._faults import (
    AFTER_WORK,
    DEFAULT_RANDOM_FAULTS,
    FAULT_KINDS,
    NO_WORK,
    Fault,
    FaultKind,
    Faults,
    LateWork,
)

__all__ = [
    "DEFAULT_RANDOM_FAULTS",
    "FAULT_KINDS",
    "FakeClock",
    "FakeService",
    "FaultKind",
    "Incoming",
    "RecordedRequest",
    "Reply",
]

_Kind = TypeVar("_Kind", bound=str)
_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
AsgiApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


class FakeClock:
    """An aware UTC clock that stands still unless set or advanced, so time maths is exact."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = datetime.now(timezone.utc)
        if now is not None:
            self.now = now

    @property
    def now(self) -> datetime:
        """The current time (aware UTC)."""
        return self._now

    @now.setter
    def now(self, value: datetime) -> None:
        if value.tzinfo is None:
            raise ValueError("emulator.now must be timezone-aware")
        self._now = value.astimezone(timezone.utc)

    def advance(self, delta: timedelta) -> None:
        """Move the clock by `delta`."""
        self._now += delta


def _upper(method: str) -> str:
    return method.upper()


@attrs.frozen
class Incoming:
    """One request as the emulator sees it, whichever way it came in."""

    method: str = attrs.field(converter=_upper)
    path: str
    query_string: str
    headers: Mapping[str, str]
    """Lower-case names."""
    body: bytes
    query: Mapping[str, str] = attrs.field(init=False)

    @query.default
    def _parse_query(self) -> Mapping[str, str]:
        return dict(parse_qsl(self.query_string, keep_blank_values=True))


@attrs.frozen
class RecordedRequest:
    """One request the emulator received; `headers` are lower-case, without Authorization."""

    method: str
    path: str
    query: Mapping[str, str]
    json: Any
    """The JSON body, or `None` when there is none or it is not JSON."""
    headers: Mapping[str, str]
    fault: str | None = None
    params: Mapping[str, Any] = attrs.field(factory=dict)
    """The parameters as the service decodes them (Stripe: query and form body, nested)."""


@attrs.frozen
class Reply:
    """An emulator's answer, with the fault that shaped it."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    fault: str | None = None
    delay: float = 0.0
    """A held answer waits this long when served (the Stripe emulator's `timeout`)."""


class _Served:
    latency: float = 0.0
    """Real seconds every request served over HTTP waits before it is answered, as a
    remote service far away would: for benchmarks (the in-process transport ignores it)."""


async def _lagged(service: FakeService[Any], scope: _Scope, receive: _Receive, send: _Send) -> None:
    """The service's ASGI app, each HTTP request waiting `service.latency` real seconds."""
    if scope["type"] == "http" and service.latency > 0:
        await asyncio.sleep(service.latency)
    await service._asgi(scope, receive, send)


class FakeService(_Served, Generic[_Kind]):
    """Recording, faults, serving, a clock and a contract check for an emulated API.

    Thread-safe: one lock serialises every request. Subclasses implement `_answer` and
    `_error_reply` and set `_bad_body`; `_held_faults` names the kinds that do the work
    and hold the answer instead of losing it.
    """

    _thread_name: ClassVar[str] = "fake-service"
    _bad_body: ClassVar[Reply] = Reply(200, {"content-type": "text/html"}, b"<html>oops</html>")
    _held_faults: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        *,
        clock: FakeClock | None = None,
        contract: Contract | None = None,
        check_contract: bool = True,
    ) -> None:
        self.clock = clock if clock is not None else FakeClock()
        """The service's time; `advance` moves it."""
        self.check_contract = check_contract and contract is not None
        """Hold every request, answer and webhook to the contract (on when there is one)."""
        self.requests: list[RecordedRequest] = []
        self.serving_seconds = 0.0
        """Seconds spent answering in process (through
        [`transport`][zentitle_stripe.testing.FakeService.transport], faults' delays
        included): the emulator's own cost, which a benchmark subtracts from its wall
        time to get the library's (a real service's time is its latency)."""
        self._contract = contract
        self._lock = threading.RLock()
        self._faults = Faults()

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward (tokens, entitlements and periods follow it)."""
        self.clock.advance(delta)

    # -- recording ----------------------------------------------------------------------

    def count(self, method: str | None = None, path_prefix: str | None = None) -> int:
        """How many recorded requests match `method` and start with `path_prefix`."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (path_prefix is None or r.path.startswith(path_prefix))
            )

    def reset_requests(self) -> None:
        """Forget recorded requests (not the state)."""
        with self._lock:
            self.requests.clear()

    # -- faults -------------------------------------------------------------------------

    def inject_fault(
        self, method: str, path_regex: str, kind: _Kind, times: int = 1, *, delay: float = 2.0
    ) -> None:
        """Make the next `times` requests matching `method` (or `*`) and `path_regex`
        (searched in the path) fail as `kind` (see
        [`FaultKind`][zentitle_stripe.testing.FaultKind]); faults apply in the order
        they were injected.

        Through [`transport`][zentitle_stripe.testing.FakeService.transport] `connect`
        raises `httpx.ConnectError` and `timeout`/`lost_response`/`late`
        `httpx.ReadTimeout`; served, the app raises, so the server answers 500. A held
        answer (the Stripe emulator's `timeout`) waits `delay` seconds when served; `late`
        work lands once the clock is `delay` seconds past the request (or at
        [`complete_late`][zentitle_stripe.testing.FakeService.complete_late]).
        """
        with self._lock:
            self._faults.inject(method, path_regex, kind, times, delay)

    def fail_rate(
        self,
        rate: float,
        kinds: Iterable[_Kind] | None = None,
        seed: int = 0,
        *,
        delay: float = 2.0,
    ) -> None:
        """Fail a random `rate` share of requests with one of `kinds` (0 turns it off).

        `kinds` defaults to
        [`DEFAULT_RANDOM_FAULTS`][zentitle_stripe.testing.DEFAULT_RANDOM_FAULTS];
        `delay` is each random fault's, as in `inject_fault`.
        """
        with self._lock:
            self._faults.set_rate(rate, kinds, seed, delay)

    def clear_faults(self) -> None:
        """Drop every pending injected fault and stop random failures; work held by a
        `late` fault still lands."""
        with self._lock:
            self._faults.clear()

    @property
    def late_pending(self) -> int:
        """How many requests' work a `late` fault holds, not landed yet."""
        with self._lock:
            return len(self._faults.late)

    def complete_late(self) -> list[Reply]:
        """Land the work of every request a `late` fault held, oldest first, now.

        Returns the answers their clients never got (each held to the contract, as the
        request was when it arrived). Work that is due lands by itself before the next
        request is served, so a test that never calls this still sees it once its
        clock has moved on.
        """
        with self._lock:
            return [self._land(work) for work in self._faults.landing(None)]

    def _land(self, work: LateWork) -> Reply:
        reply = self._answer(work.request)
        if work.operation is not None and self._contract is not None:
            self._contract.check_response(work.operation, reply.status, reply.content)
        return attrs.evolve(reply, fault="late")

    # -- the three ways in --------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """An httpx transport that answers in process; every fault kind works through it."""
        return httpx.MockTransport(self._handle_httpx)

    @property
    def asgi_app(self) -> AsgiApp:
        """A plain ASGI 3 application (no framework needed) serving this emulator."""
        return functools.partial(_lagged, self)

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Run [`asgi_app`][zentitle_stripe.testing.FakeService.asgi_app] with uvicorn on a
        free 127.0.0.1 port in a background thread; yields the base URL. Needs the
        `server` extra; importing this module does not."""
        from ..server import serve_in_thread

        with serve_in_thread(self.asgi_app, name=self._thread_name) as url:
            yield url

    def _handle_httpx(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            return self._answer_httpx(request)
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self.serving_seconds += elapsed

    def _answer_httpx(self, request: httpx.Request) -> httpx.Response:
        incoming = Incoming(
            request.method,
            request.url.path,
            request.url.query.decode("latin-1"),
            {k.lower(): v for k, v in request.headers.items()},
            request.read(),
        )
        fault = self._take_fault(incoming)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)  # on its way to the backend, outside the lock
        reply = self._serve(incoming, fault)
        if reply.fault == "connect":
            raise httpx.ConnectError("emulated connection failure", request=request)
        if reply.fault in ("timeout", "lost_response", "late"):
            raise httpx.ReadTimeout("emulated read timeout", request=request)
        return httpx.Response(reply.status, headers=dict(reply.headers), content=reply.content)

    async def _asgi(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        await serve_asgi(self, scope, receive, send)

    # -- one request --------------------------------------------------------------------

    def _take_fault(self, request: Incoming) -> Fault | None:
        """The fault that shapes this request's answer, if any (taken as it is sent)."""
        with self._lock:
            return self._faults.take(request.method, request.path)

    def _serve(self, request: Incoming, fault: Fault | None) -> Reply:
        """Record the request, check it, apply `fault`, else answer it (under the lock); a
        `slow` request has waited already and is answered as usual."""
        with self._lock:
            for work in self._faults.landing(self.clock.now):
                self._land(work)
            kind = fault.kind if fault is not None else None
            self.requests.append(self._record(request, kind))
            operation = self._check_request(request)
            if fault is not None and kind == "late":
                self._faults.hold(request, operation, fault, self.clock.now)
                return Reply(0, {}, b"", fault=kind)
            if kind in NO_WORK and kind not in self._held_faults:
                return Reply(0, {}, b"", fault=kind)
            if kind == "bad_body":
                return attrs.evolve(self._bad_body, fault=kind)
            if kind is not None and kind.isdigit():
                return attrs.evolve(self._error_reply(int(kind)), fault=kind)
            reply = self._answer(request)
            if operation is not None and self._contract is not None:
                self._contract.check_response(operation, reply.status, reply.content)
            if kind in AFTER_WORK:
                return attrs.evolve(self._error_reply(int(kind[:3])), fault=kind)
            delay = fault.delay if fault is not None and kind in self._held_faults else 0.0
            return attrs.evolve(reply, fault=kind, delay=delay)

    def _record(self, request: Incoming, fault: str | None) -> RecordedRequest:
        try:
            payload = json.loads(request.body) if request.body else None
        except ValueError:
            payload = None
        headers = {k: v for k, v in request.headers.items() if k != "authorization"}
        return RecordedRequest(
            request.method,
            request.path,
            request.query,
            payload,
            headers,
            fault,
            self._params(request),
        )

    def _params(self, request: Incoming) -> Mapping[str, Any]:
        """The request's parameters as the service decodes them (the query by default)."""
        return request.query

    def _check_request(self, request: Incoming) -> Any:
        """Hold a request to the contract; returns what checks its answer (or `None`)."""
        if not self.check_contract or self._contract is None or not self._contracted(request):
            return None
        return self._contract.check_request(
            request.method, request.path, request.query, request.body
        )

    def _check_webhook(self, body: bytes) -> None:
        """Hold an outgoing webhook body to the contract."""
        if self.check_contract and self._contract is not None:
            self._contract.check_webhook(body)

    def _contracted(self, request: Incoming) -> bool:
        """Whether the contract covers this request (all of them unless overridden)."""
        return True

    def _answer(self, request: Incoming) -> Reply:
        """The service's answer to a request no fault stopped."""
        raise NotImplementedError

    def _error_reply(self, status: int) -> Reply:
        """The service's answer for an injected error status."""
        raise NotImplementedError
