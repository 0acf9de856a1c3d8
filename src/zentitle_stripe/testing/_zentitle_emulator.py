"""An in-memory Zentitle2 Management API (2025-10-10 subset) for offline tests and demos.

It behaves as the reference document describes the real service: OAuth2 client
credentials, the three mandatory headers, ``ApiError`` bodies, 201/204 codes, paging,
a non-unique ``orderRefId``, the renewal rule and RSA-signed webhooks. Every request it
serves and every answer and webhook it sends is held to Zentitle2's own contract
(`_contract.py`): a divergence raises `ContractViolation` and is recorded, so a test
fails loudly. Its answers use the contract's shapes exactly (group entitlements are the
8-key short model without expiry or seats; the offering list has no `productId`; a
created contact has no `customerId`). Where the real service is unknown it picks the
harsher reading (the create response does not expand ``entitlements``; an unknown SKU is
a 422; a gateway may answer 5xx after the work was done), so code that passes here does
not rely on luck. Use it through :meth:`ZentitleEmulator.transport` (in-process, supports every
fault), :attr:`ZentitleEmulator.asgi_app`, or :meth:`ZentitleEmulator.serve` (loopback).
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import re
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

import attrs
import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from zentitle_stripe.zentitle.client import ZentitleClient
from zentitle_stripe.zentitle.models import (
    Customer,
    Entitlement,
    EntitlementGroup,
    Interval,
    format_datetime,
    parse_datetime,
)

from ._contract import Contract

__all__ = ["FAULT_KINDS", "OutgoingWebhook", "RecordedRequest", "ZentitleEmulator"]

_AFTER_WORK_FAULTS = frozenset({"500_after", "502_after", "503_after", "504_after"})
FAULT_KINDS = frozenset(
    {"429", "500", "502", "503", "504", "timeout", "connect", "lost_response", "bad_body"}
    | _AFTER_WORK_FAULTS
)
"""What `ZentitleEmulator.inject_fault` can do to a request; `503_after` and its kin do
the work and then answer that status, as a gateway can after the backend acted."""
_TOKEN_PATH = "/protocol/openid-connect/token"  # noqa: S105 - a path, not a secret

_NETWORK_FAULTS = frozenset({"timeout", "connect", "lost_response"})
_SUPPORTED_API_VERSIONS = frozenset({"2025-10-10"})
_DEFAULT_PAGE_SIZE = 20
_MAX_PAGE_SIZE = 200
_ACTIVATION_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,48}[A-Z0-9]$")
_CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_SECONDS = {"week": 604800, "day": 86400, "hour": 3600, "minute": 60, "second": 1}

_NOT_JSON = object()
_key_lock = threading.Lock()
_key: rsa.RSAPrivateKey | None = None

_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _signing_key() -> rsa.RSAPrivateKey:
    """One 2048-bit key per process: generating one costs ~0.1 s, too much per test."""
    global _key
    with _key_lock:
        if _key is None:
            _key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _key


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _new_id(prefix: str) -> str:
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()


def _activation_code() -> str:
    return "-".join("".join(secrets.choice(_CODE_ALPHABET) for _ in range(4)) for _ in range(4))


def _add(moment: datetime, interval: tuple[str, int]) -> datetime:
    """``moment`` plus a plan interval, by the same calendar rules as the client."""
    later = Interval(type=interval[0], count=interval[1]).add_to(moment)
    assert later is not None, f"unknown interval {interval!r}"  # add_plan validates kinds
    return later


def _interval_json(interval: tuple[str, int] | None) -> dict[str, Any]:
    """A contract `Interval`; no interval is `{"type": "none"}` (the field is never null)."""
    return {"type": interval[0], "count": interval[1]} if interval else {"type": "none"}


def _compact(data: Mapping[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values, as the API omits nulls; datetimes become ISO text."""
    return {
        k: format_datetime(v) if isinstance(v, datetime) else v
        for k, v in data.items()
        if v is not None
    }


@attrs.frozen
class RecordedRequest:
    """One request the emulator received; ``headers`` are lower-case, without Authorization."""

    method: str
    path: str
    query: Mapping[str, str]
    json: Any
    headers: Mapping[str, str]
    fault: str | None = None


@attrs.frozen
class OutgoingWebhook:
    """A signed webhook delivery waiting in :attr:`ZentitleEmulator.outbox`."""

    uri: str
    event_code: str
    body: bytes
    headers: Mapping[str, str]


@attrs.define
class _Fault:
    method: str
    pattern: re.Pattern[str]
    kind: str
    remaining: int


@attrs.frozen
class _Outcome:
    fault: str | None
    status: int
    headers: Mapping[str, str]
    content: bytes


class _ApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        details: str | None = None,
        *,
        code: str | None = None,
        validation: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(error)
        self.status = status
        body: dict[str, Any] = {"error": error, "errorCode": code, "details": details}
        errors = [{"propertyName": p, "message": m, "code": "Invalid"} for p, m in validation]
        if errors:
            body["validationErrors"] = errors
        self.body = _compact(body)


def _invalid(prop: str, message: str) -> _ApiError:
    return _ApiError(422, "Validation failed", code="ValidationError", validation=[(prop, message)])


def _not_found(kind: str, ident: str) -> _ApiError:
    return _ApiError(404, "Not Found", f"{kind} {ident!r} was not found", code="NotFound")


class ZentitleEmulator:
    """A faithful in-memory Zentitle2 tenant; seed it with :meth:`add_offering` and friends.

    Its clock (:attr:`now`) stands still unless set or :meth:`advance`-d, so expiry and
    renewal maths are exact in tests. Thread-safe: one lock serialises all requests.
    """

    api_url = "https://emulator.api.zentitle.invalid"

    def __init__(
        self,
        tenant_id: str = "t_emulator",
        client_id: str = "emulator-client",
        client_secret: str = "emulator-secret",  # noqa: S107 - a fake credential
        api_version: str = "2025-10-10",
        token_lifetime: int = 300,
        *,
        check_contract: bool = True,
    ) -> None:
        if api_version not in _SUPPORTED_API_VERSIONS:
            raise ValueError(f"the emulator implements only {sorted(_SUPPORTED_API_VERSIONS)}")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_version = api_version
        self.token_lifetime = token_lifetime
        self.check_contract = check_contract
        """Hold every request, answer and webhook to Zentitle2's contract (on by default)."""
        self._contract = Contract.load()
        self.requests: list[RecordedRequest] = []
        self.outbox: list[OutgoingWebhook] = []
        self._now = datetime.now(timezone.utc)
        self._lock = threading.RLock()
        self._tokens: dict[str, datetime] = {}
        self._products: dict[str, dict[str, Any]] = {}
        self._plans: dict[str, dict[str, Any]] = {}
        self._offerings: dict[str, dict[str, Any]] = {}
        self._customers: dict[str, dict[str, Any]] = {}
        self._contacts: dict[str, dict[str, Any]] = {}
        self._groups: dict[str, dict[str, Any]] = {}
        self._entitlements: dict[str, dict[str, Any]] = {}
        self._webhooks: dict[str, dict[str, Any]] = {}
        self._faults: list[_Fault] = []
        self._fail_rate = 0.0
        self._fail_kinds: tuple[str, ...] = ()
        self._rng = random.Random(0)
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., tuple[int, Any]]]] = [
            (m, re.compile(f"^/api/v1/{p}$"), h)
            for m, p, h in (
                ("POST", "customers", self._create_customer),
                ("GET", "customers", self._list_customers),
                ("GET", "customers/contacts/search", self._search_contacts),
                ("GET", "customers/([^/]+)", self._get_customer),
                ("POST", "customers/([^/]+)/contacts", self._create_contact),
                ("GET", "customers/([^/]+)/contacts", self._list_contacts),
                ("GET", "offerings", self._list_offerings),
                ("POST", "entitlements/groups", self._create_group),
                ("GET", "entitlements/groups", self._list_groups),
                ("GET", "entitlements/groups/([^/]+)", self._get_group),
                ("GET", "entitlements/([^/]+)", self._get_entitlement),
                ("PATCH", "entitlements/([^/]+)", self._update_entitlement),
                ("PATCH", "entitlements/([^/]+)/(renew|disable|enable)", self._entitlement_action),
                ("GET", "account/key", self._account_key),
                ("POST", "account/webhooks", self._create_webhook),
                ("GET", "account/webhooks", self._list_webhooks),
            )
        ]

    def __repr__(self) -> str:
        return f"ZentitleEmulator(tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"

    # -- clock --------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The emulator's current time (aware UTC); it only moves when set or advanced."""
        return self._now

    @now.setter
    def now(self, value: datetime) -> None:
        if value.tzinfo is None:
            raise ValueError("emulator.now must be timezone-aware")
        self._now = value.astimezone(timezone.utc)

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward (tokens expire, entitlements expire and enter grace)."""
        self._now += delta

    # -- seeding ------------------------------------------------------------------------

    def add_product(self, name: str) -> str:
        """Create a product; returns its ``prod_`` id."""
        with self._lock:
            product_id = _new_id("prod_")
            self._products[product_id] = {
                "id": product_id,
                "name": name,
                "editionId": _new_id("edt_"),
            }
            return product_id

    def add_plan(
        self,
        product_id: str,
        *,
        license_type: str = "subscription",
        license_start_type: str = "entitlementCreation",
        duration: tuple[str, int] | None = ("year", 1),
        plan_type: str = "paid",
        grace_period: tuple[str, int] | None = None,
        name: str | None = None,
    ) -> str:
        """Create a plan; ``duration`` is the billing period, e.g. ``("month", 1)``."""
        with self._lock:
            if product_id not in self._products:
                raise ValueError(f"unknown product {product_id!r}")
            kinds = {"year", "month", *_SECONDS}
            for period in (duration, grace_period):
                if period is not None and (period[0] not in kinds or period[1] < 1):
                    raise ValueError(f"bad interval {period!r}: use e.g. ('month', 1)")
            plan_id = _new_id("plan_")
            self._plans[plan_id] = {
                "id": plan_id,
                "productId": product_id,
                "name": name or plan_id,
                "licenseType": license_type,
                "licenseStartType": license_start_type,
                "duration": duration,
                "grace": grace_period,
                "planType": plan_type,
            }
            return plan_id

    def add_offering(
        self,
        *,
        sku: str,
        product_id: str,
        plan_id: str,
        seat_count: int = 1,
        name: str | None = None,
    ) -> str:
        """Create an offering (the orderable item) with a unique ``sku``; returns its id."""
        with self._lock:
            if self._plans.get(plan_id, {}).get("productId") != product_id:
                raise ValueError(f"plan {plan_id!r} does not belong to product {product_id!r}")
            if any(o["sku"] == sku for o in self._offerings.values()):
                raise ValueError(f"an offering with SKU {sku!r} exists already")
            offering_id = _new_id("off_")
            self._offerings[offering_id] = {
                "id": offering_id,
                "sku": sku,
                "name": name or sku,
                "productId": product_id,
                "editionId": self._products[product_id]["editionId"],
                "planId": plan_id,
                "seatCount": seat_count,
            }
            return offering_id

    def add_customer(self, name: str, *, account_ref_id: str | None = None) -> str:
        """Create a customer directly, as if made in the UI; returns its ``cust_`` id."""
        with self._lock:
            return str(self._new_customer(name, account_ref_id)["id"])

    def add_webhook(self, uri: str, subscriptions: Iterable[str]) -> str:
        """Register a webhook listener directly; returns its ``wh_`` id."""
        with self._lock:
            webhook_id = _new_id("wh_")
            self._webhooks[webhook_id] = {
                "id": webhook_id,
                "uri": uri,
                "subscriptions": list(subscriptions),
            }
            return webhook_id

    # -- inspection ---------------------------------------------------------------------

    def customers(self) -> list[Customer]:
        """Every customer, oldest first."""
        with self._lock:
            return [Customer.from_json(self._customer_json(c)) for c in self._customers.values()]

    def groups(self, order_ref_id: str | None = None) -> list[EntitlementGroup]:
        """Every group (with entitlements), or those with this ``orderRefId``, oldest first."""
        with self._lock:
            return [
                EntitlementGroup.from_json(self._group_json(g, ["entitlements"]))
                for g in self._groups.values()
                if order_ref_id is None or g["orderRefId"] == order_ref_id
            ]

    def entitlements(self, group_id: str | None = None) -> list[Entitlement]:
        """Every entitlement, or those of one group, oldest first."""
        with self._lock:
            return [
                Entitlement.from_json(self._entitlement_json(e))
                for e in self._entitlements.values()
                if group_id is None or e["entitlementGroupId"] == group_id
            ]

    def count(self, method: str | None = None, path_prefix: str | None = None) -> int:
        """How many recorded requests match, for call-budget assertions."""
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (path_prefix is None or r.path.startswith(path_prefix))
        )

    def reset_requests(self) -> None:
        """Forget recorded requests (seeded data and tokens stay)."""
        with self._lock:
            self.requests.clear()

    # -- faults -------------------------------------------------------------------------

    def inject_fault(self, method: str, path_regex: str, kind: str, times: int = 1) -> None:
        """Make the next ``times`` requests matching ``method`` (or ``*``) and ``path_regex``
        (searched in the path) fail as ``kind``; see :data:`FAULT_KINDS`.

        ``timeout`` and ``connect`` fail before any work, ``lost_response`` does the work
        and then loses the answer; these three raise httpx errors through
        :meth:`transport`; over ASGI the app raises, so the server answers 500.
        Faults apply in the order they were injected.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {sorted(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(_Fault(method.upper(), re.compile(path_regex), kind, times))

    def clear_faults(self) -> None:
        """Drop every pending injected fault and stop random failures."""
        with self._lock:
            self._faults.clear()
            self._fail_rate = 0.0

    def fail_rate(
        self,
        rate: float,
        kinds: Iterable[str] = ("429", "502", "503", "504", "timeout", "connect"),
        seed: int = 0,
    ) -> None:
        """Fail a random ``rate`` share of requests with one of ``kinds`` (0 turns it off)."""
        chosen = tuple(kinds)
        if not set(chosen) <= FAULT_KINDS or not 0 <= rate <= 1:
            raise ValueError(f"rate must be in [0, 1] and kinds among {sorted(FAULT_KINDS)}")
        with self._lock:
            self._fail_rate, self._fail_kinds, self._rng = rate, chosen, random.Random(seed)

    def _take_fault(self, method: str, path: str) -> str | None:
        for fault in self._faults:
            if fault.method in ("*", method) and fault.pattern.search(path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault.kind
        if self._fail_rate and self._rng.random() < self._fail_rate:
            return self._rng.choice(self._fail_kinds)
        return None

    # -- webhooks -----------------------------------------------------------------------

    @property
    def public_key_modulus(self) -> str:
        """The signing key's modulus in base64url, as the UI shows it ("RSA Modulus")."""
        return _b64url_uint(_signing_key().public_key().public_numbers().n)

    @property
    def jwk(self) -> dict[str, str]:
        """The signing key as ``GET /api/v1/account/key`` returns it."""
        numbers = _signing_key().public_key().public_numbers()
        return {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}

    def sign(self, body: bytes) -> str:
        """The ``N-Signature`` value for ``body``: base64 RSA PKCS#1 v1.5 SHA-256."""
        signature = _signing_key().sign(body, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    def deliver_webhooks(self, client: httpx.Client | None = None) -> list[httpx.Response]:
        """POST every queued webhook to its uri (emptying :attr:`outbox`); returns responses."""
        with self._lock:
            pending, self.outbox = self.outbox, []
        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(httpx.Client(timeout=10.0))
            return [client.post(w.uri, content=w.body, headers=dict(w.headers)) for w in pending]

    def _emit(self, code: str, resource_id: str, payload: Mapping[str, Any]) -> None:
        envelope = {
            "eventId": _new_id("event_"),
            "eventDate": format_datetime(self._now),
            "eventCode": code,
            "resourceId": resource_id,
            "callAttempt": 1,
            "payload": _compact(payload),
        }
        body = json.dumps(envelope, separators=(",", ":")).encode()
        if self.check_contract:
            self._contract.check_webhook(body)
        for webhook in self._webhooks.values():
            if code in webhook["subscriptions"]:
                headers = {"Content-Type": "application/json", "N-Signature": self.sign(body)}
                self.outbox.append(OutgoingWebhook(webhook["uri"], code, body, headers))

    # -- the three ways in --------------------------------------------------------------

    @property
    def token_url(self) -> str:
        """The token URL to configure when using :meth:`transport`."""
        return f"{self.api_url}/realms/{self.tenant_id}/protocol/openid-connect/token"

    def transport(self) -> httpx.MockTransport:
        """An httpx transport that answers in-process; every fault kind works through it."""
        return httpx.MockTransport(self._handle)

    def client(self, base_url: str | None = None, **kwargs: Any) -> ZentitleClient:
        """A :class:`ZentitleClient` wired to this emulator (over ``base_url`` if given,
        e.g. from :meth:`serve`, else in-process); ``kwargs`` go to the client."""
        api_url = base_url or self.api_url
        if base_url is None:
            kwargs.setdefault("transport", self.transport())
        token_url = f"{api_url}/realms/{self.tenant_id}/protocol/openid-connect/token"
        return ZentitleClient(
            api_url, self.tenant_id, self.client_id, self.client_secret, token_url, **kwargs
        )

    def _handle(self, request: httpx.Request) -> httpx.Response:
        outcome = self._serve(
            request.method,
            request.url.path,
            request.url.query.decode("latin-1"),
            {k.lower(): v for k, v in request.headers.items()},
            request.read(),
        )
        if outcome.fault == "connect":
            raise httpx.ConnectError("emulated connection failure", request=request)
        if outcome.fault in ("timeout", "lost_response"):
            raise httpx.ReadTimeout("emulated read timeout", request=request)
        return httpx.Response(
            outcome.status, headers=dict(outcome.headers), content=outcome.content
        )

    @property
    def asgi_app(self) -> Callable[[_Scope, _Receive, _Send], Awaitable[None]]:
        """A plain ASGI 3 application (no framework needed) serving this emulator."""
        return self._asgi

    async def _asgi(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        outcome = self._serve(
            scope["method"],
            scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body,
        )
        if outcome.fault in _NETWORK_FAULTS:
            raise ConnectionAbortedError(f"emulated {outcome.fault} fault")
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in outcome.headers.items()]
        await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
        await send({"type": "http.response.body", "body": outcome.content})

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Run :attr:`asgi_app` with uvicorn on a free 127.0.0.1 port in a background
        thread; yields the base URL. Needs the ``server`` extra; importing this module
        does not."""
        from ..server import serve_in_thread

        with serve_in_thread(self.asgi_app, name="zentitle-emulator") as url:
            yield url

    # -- request handling ---------------------------------------------------------------

    def _serve(
        self, method: str, path: str, query_string: str, headers: Mapping[str, str], body: bytes
    ) -> _Outcome:
        """Record the request, apply any fault, else answer it (under the lock)."""
        with self._lock:
            query = dict(parse_qsl(query_string, keep_blank_values=True))
            try:
                payload: Any = json.loads(body) if body else None
            except ValueError:
                payload = _NOT_JSON
            fault = self._take_fault(method, path)
            recorded = {k: v for k, v in headers.items() if k != "authorization"}
            recorded_json = None if payload is _NOT_JSON else payload
            self.requests.append(
                RecordedRequest(method, path, query, recorded_json, recorded, fault)
            )
            operation = None
            if self.check_contract and not path.endswith(_TOKEN_PATH):
                operation = self._contract.check_request(method, path, query, body)
            if fault in ("timeout", "connect"):
                return _Outcome(fault, 0, {}, b"")
            if fault == "bad_body":
                return _Outcome(fault, 200, {"content-type": "text/html"}, b"<html>oops</html>")
            if fault is not None and fault.isdigit():
                return self._fault_outcome(fault)
            status, response_headers, content = self._dispatch(
                method, path, query, headers, body, payload
            )
            if operation is not None:
                self._contract.check_response(operation, status, content)
            if fault in _AFTER_WORK_FAULTS:
                return self._fault_outcome(fault)
            return _Outcome(fault, status, response_headers, content)

    def _fault_outcome(self, fault: str) -> _Outcome:
        """An emulated error answer; a gateway's 5xx carries no ApiError body (harsher)."""
        status = int(fault.split("_")[0])
        if status == 429:
            body = json.dumps({"error": "Too Many Requests", "errorCode": "Http429"}).encode()
            return _Outcome(fault, 429, self._json_headers({"retry-after": "1"}), body)
        if status in (502, 503, 504):
            page = f"<html><body>{status} Gateway error</body></html>".encode()
            return _Outcome(fault, status, {"content-type": "text/html"}, page)
        body = json.dumps({"error": "Emulated fault", "errorCode": f"Http{status}"}).encode()
        return _Outcome(fault, status, self._json_headers(), body)

    def _json_headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "n-api-version": self.api_version,
            **(extra or {}),
        }

    def _dispatch(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        payload: Any,
    ) -> tuple[int, dict[str, str], bytes]:
        if path.endswith("/protocol/openid-connect/token"):
            status, token = self._token(method, headers, body)
            return status, {"content-type": "application/json"}, json.dumps(token).encode()
        result: Any
        try:
            self._authorize(headers, query)
            handler, args = self._route(method, path)
            if payload is _NOT_JSON:
                raise _ApiError(400, "Bad Request", "body is not JSON", code="InvalidJson")
            status, result = handler(*args, query=query, body=payload)
        except _ApiError as exc:
            if exc.status == 401:
                return 401, {"www-authenticate": 'Bearer error="invalid_token"'}, b""
            status, result = exc.status, exc.body
        if result is None:
            return status, {"n-api-version": self.api_version}, b""
        return status, self._json_headers(), json.dumps(result).encode()

    def _token(
        self, method: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        if method != "POST":
            return 405, {"error": "invalid_request", "error_description": "use POST"}
        form = dict(parse_qsl(body.decode("latin-1")))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            with contextlib.suppress(ValueError):
                client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if client_id != self.client_id or client_secret != self.client_secret:
            return 401, {
                "error": "invalid_client",
                "error_description": "Invalid client credentials",
            }
        token = secrets.token_urlsafe(24)
        self._tokens[token] = self._now + timedelta(seconds=self.token_lifetime)
        return 200, {
            "access_token": token,
            "expires_in": self.token_lifetime,
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "profile email",
        }

    def _authorize(self, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        expiry = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= self._now:
            raise _ApiError(401, "Unauthorized")
        if headers.get("n-tenantid") != self.tenant_id:
            raise _ApiError(
                403,
                "Forbidden",
                f"N-TenantId header must be {self.tenant_id!r} for this token",
                code="InvalidTenant",
            )
        version = headers.get("n-api-version") or query.get("n-api-version")
        if version not in _SUPPORTED_API_VERSIONS:
            raise _ApiError(
                400,
                "Bad Request",
                f"unsupported API version {version!r}; send N-Api-Version: {self.api_version}",
                code="UnsupportedApiVersion",
            )

    def _route(
        self, method: str, path: str
    ) -> tuple[Callable[..., tuple[int, Any]], tuple[str, ...]]:
        allowed = False
        for route_method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match:
                if route_method == method:
                    return handler, match.groups()
                allowed = True
        if allowed:
            raise _ApiError(405, "Method Not Allowed", f"{method} is not allowed on {path}")
        raise _ApiError(404, "Not Found", f"no endpoint {path}", code="NotFound")

    @staticmethod
    def _page(items: list[Any], query: Mapping[str, str]) -> dict[str, Any]:
        def number(name: str, default: int, maximum: int | None) -> int:
            raw = query.get(name)
            if raw is None:
                return default
            if not raw.isdigit() or int(raw) < 1 or (maximum is not None and int(raw) > maximum):
                limit = f"1..{maximum}" if maximum else "at least 1"
                raise _ApiError(400, "Bad Request", f"{name} must be {limit}", code="InvalidPaging")
            return int(raw)

        page = number("pageNumber", 1, None)
        size = number("pageSize", _DEFAULT_PAGE_SIZE, _MAX_PAGE_SIZE)
        start = (page - 1) * size
        return {
            "items": items[start : start + size],
            "pageSize": size,
            "pageNumber": page,
            "elementsTotal": len(items),
        }

    @staticmethod
    def _object(body: Any) -> Mapping[str, Any]:
        if not isinstance(body, Mapping):
            raise _ApiError(400, "Bad Request", "body must be a JSON object", code="InvalidJson")
        return body

    # -- customers and contacts ---------------------------------------------------------

    def _new_customer(self, name: Any, account_ref_id: Any) -> dict[str, Any]:
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            raise _invalid("name", "Name is required and must be 1-255 characters")
        if account_ref_id is not None and (
            not isinstance(account_ref_id, str) or len(account_ref_id) > 50
        ):
            raise _invalid("accountRefId", "AccountRefId must be at most 50 characters")
        customer_id = _new_id("cust_")
        customer = {
            "id": customer_id,
            "name": name,
            "accountRefId": account_ref_id,
            "status": "active",
            "createdAt": self._now,
        }
        self._customers[customer_id] = customer
        return customer

    def _customer_json(self, customer: Mapping[str, Any]) -> dict[str, Any]:
        """`CustomerModel`."""
        return _compact(customer)

    @staticmethod
    def _customer_list_json(customer: Mapping[str, Any]) -> dict[str, Any]:
        """`CustomerListModel`: no `createdAt`."""
        return _compact({k: customer[k] for k in ("id", "name", "accountRefId", "status")})

    def _customer(self, customer_id: str) -> dict[str, Any]:
        customer = self._customers.get(customer_id)
        if customer is None:
            raise _not_found("Customer", customer_id)
        return customer

    def _create_customer(self, *, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        data = self._object(body)
        customer = self._new_customer(data.get("name"), data.get("accountRefId"))
        return 201, self._customer_json(customer)

    def _list_customers(self, *, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        customers = [self._customer_list_json(c) for c in self._customers.values()]
        return 200, self._page(customers, query)

    def _get_customer(
        self, customer_id: str, *, query: Mapping[str, str], body: Any
    ) -> tuple[int, Any]:
        return 200, self._customer_json(self._customer(customer_id))

    def _create_contact(
        self, customer_id: str, *, query: Mapping[str, str], body: Any
    ) -> tuple[int, Any]:
        self._customer(customer_id)
        data = self._object(body)
        email = data.get("email")
        if not isinstance(email, str) or "@" not in email or len(email) > 100:
            raise _invalid(
                "email", "Email is required, must be an address of at most 100 characters"
            )
        if any(
            c["customerId"] == customer_id and c["email"].lower() == email.lower()
            for c in self._contacts.values()
        ):
            raise _ApiError(
                409, "Conflict", f"contact {email!r} exists for this customer", code="Conflict"
            )
        contact_id = _new_id("cont_")
        contact = {
            "id": contact_id,
            "customerId": customer_id,
            "email": email,
            "firstName": data.get("firstName"),
            "lastName": data.get("lastName"),
            "createdAt": self._now,
        }
        self._contacts[contact_id] = contact
        return 201, self._contact_json(contact)

    @staticmethod
    def _contact_json(contact: Mapping[str, Any]) -> dict[str, Any]:
        """`CustomerContactModel`: no `customerId` (the contract's model has none)."""
        return _compact(
            {
                **{k: v for k, v in contact.items() if k != "customerId"},
                "status": "active",
                "isKeyContact": False,
            }
        )

    @staticmethod
    def _search_contact_json(contact: Mapping[str, Any]) -> dict[str, Any]:
        """`SearchCustomerContactModel`: the one contact shape that names its customer."""
        keys = ("id", "customerId", "firstName", "lastName", "email")
        return _compact({k: contact[k] for k in keys})

    def _list_contacts(
        self, customer_id: str, *, query: Mapping[str, str], body: Any
    ) -> tuple[int, Any]:
        self._customer(customer_id)
        found = [
            self._contact_json(c) for c in self._contacts.values() if c["customerId"] == customer_id
        ]
        return 200, self._page(found, query)

    def _search_contacts(self, *, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        email = query.get("email", "").lower()
        found = [
            self._search_contact_json(c)
            for c in self._contacts.values()
            if c["email"].lower() == email
        ]
        return 200, self._page(found, query)

    # -- catalogue ----------------------------------------------------------------------

    def _plan_json(self, plan: Mapping[str, Any]) -> dict[str, Any]:
        """`OfferingPlanModel`: no grace period (only an entitlement shows its grace)."""
        return _compact(
            {
                "id": plan["id"],
                "name": plan["name"],
                "licenseType": plan["licenseType"],
                "licenseStartType": plan["licenseStartType"],
                "licenseDuration": _interval_json(plan["duration"]),
                "planType": plan["planType"],
            }
        )

    def _offering_json(self, offering: Mapping[str, Any], expand: Iterable[str]) -> dict[str, Any]:
        """`OfferingListModel`: no `productId` (only inside the expanded edition)."""
        item: dict[str, Any] = {
            "id": offering["id"],
            "editionId": offering["editionId"],
            "planId": offering["planId"],
            "name": offering["name"],
            "sku": offering["sku"],
            "seatCount": offering["seatCount"],
            "hasMaintenance": False,
            "maintenanceDuration": {"type": "none"},
        }
        if "plan" in expand:
            item["plan"] = self._plan_json(self._plans[offering["planId"]])
        if "edition" in expand:
            item["edition"] = {
                "id": offering["editionId"],
                "name": "Standard",
                "productId": offering["productId"],
            }
        return item

    def _list_offerings(self, *, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        expand = query.get("expand", "").split(",")
        items = []
        for offering in self._offerings.values():
            if query.get("productId") not in (None, offering["productId"]):
                continue
            if query.get("planId") not in (None, offering["planId"]):
                continue
            items.append(self._offering_json(offering, expand))
        return 200, self._page(items, query)

    # -- groups and entitlements --------------------------------------------------------

    def _group_json(
        self, group: Mapping[str, Any], expand: Iterable[str], *, listed: bool = False
    ) -> dict[str, Any]:
        """`EntitlementGroupModel` (or, `listed`, `EntitlementGroupListModel`).

        Its entitlements are the contract's short model: no expiry, seats or dates, so
        whoever needs those must read each entitlement.
        """
        result = _compact({k: v for k, v in group.items() if k != "entitlementIds"})
        result["activationCodes"] = list(group["activationCodes"])
        if "entitlements" in expand:
            result["entitlements"] = [
                self._short_entitlement_json(self._entitlements[i]) for i in group["entitlementIds"]
            ]
        if "customer" in expand and group["customerId"]:
            customer = self._customers[group["customerId"]]
            keys = (
                ("id", "name", "accountRefId")
                if listed
                else ("id", "name", "accountRefId", "status")
            )
            result["customer"] = _compact({k: customer[k] for k in keys})
        return result

    def _short_entitlement_json(self, entitlement: Mapping[str, Any]) -> dict[str, Any]:
        """`EntitlementGroupEntitlementModel` / `EntitlementBasicModel`: the 8 keys."""
        offering = self._offerings[entitlement["offeringId"]]
        return {
            "id": entitlement["id"],
            "sku": entitlement["sku"],
            "offeringId": entitlement["offeringId"],
            "offeringName": offering["name"],
            "entitlementGroupId": entitlement["entitlementGroupId"],
            "productId": entitlement["productId"],
            "status": self._status(entitlement),
            "exported": False,
        }

    def _create_group(self, *, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        data = self._object(body)
        skus = data.get("skus")
        if not isinstance(skus, list) or not skus or not all(isinstance(s, str) for s in skus):
            raise _invalid("skus", "Skus must contain at least one SKU")
        by_sku = {o["sku"]: o for o in self._offerings.values()}
        unknown = [
            (f"skus[{i}]", f"Offering with SKU {s!r} was not found")
            for i, s in enumerate(skus)
            if s not in by_sku
        ]
        if unknown:
            raise _ApiError(422, "Validation failed", code="ValidationError", validation=unknown)
        customer_id = data.get("customerId")
        if customer_id is not None and customer_id not in self._customers:
            raise _invalid("customerId", f"Customer {customer_id!r} was not found")
        order_ref_id = data.get("orderRefId")
        if order_ref_id is not None and (
            not isinstance(order_ref_id, str) or len(order_ref_id) > 50
        ):
            raise _invalid("orderRefId", "OrderRefId must be at most 50 characters")
        code = data.get("activationCode")
        if code is None:
            code = _activation_code()
        elif not isinstance(code, str) or not _ACTIVATION_CODE.match(code):
            raise _invalid(
                "activationCode", "ActivationCode must match ^[A-Z0-9][A-Z0-9-]{0,48}[A-Z0-9]$"
            )
        if any(code in g["activationCodes"] for g in self._groups.values()):
            raise _ApiError(409, "Conflict", f"activation code {code!r} is in use", code="Conflict")

        group_id = _new_id("egr_")
        group: dict[str, Any] = {
            "id": group_id,
            "created": self._now,
            "customerId": customer_id,
            "orderRefId": order_ref_id,
            "activationCodes": [code],
            "entitlementIds": [],
        }
        for sku in skus:
            entitlement = self._new_entitlement(by_sku[sku], group_id)
            group["entitlementIds"].append(entitlement["id"])
        self._groups[group_id] = group
        self._emit(
            "entitlement.group.created",
            group_id,
            {
                "entitlementGroupId": group_id,
                "createdDate": self._now,
                "orderRefId": order_ref_id,
                "customerId": customer_id,
            },
        )
        for entitlement_id in group["entitlementIds"]:
            entitlement = self._entitlements[entitlement_id]
            self._emit(
                "entitlement.created",
                entitlement_id,
                {
                    "entitlementId": entitlement_id,
                    "entitlementGroupId": group_id,
                    "licenseType": entitlement["licenseType"],
                    "createdDate": self._now,
                },
            )
        return 201, self._group_json(group, ())

    def _new_entitlement(self, offering: Mapping[str, Any], group_id: str) -> dict[str, Any]:
        plan = self._plans[offering["planId"]]
        activation = expiry = None
        if plan["licenseStartType"] == "entitlementCreation":
            activation = self._now
            if plan["licenseType"] == "subscription" and plan["duration"]:
                expiry = _add(self._now, plan["duration"])
        entitlement_id = _new_id("ent_")
        entitlement = {
            "id": entitlement_id,
            "sku": offering["sku"],
            "offeringId": offering["id"],
            "productId": offering["productId"],
            "entitlementGroupId": group_id,
            "licenseType": plan["licenseType"],
            "licenseStartType": plan["licenseStartType"],
            "seatCount": offering["seatCount"],
            "activationDate": activation,
            "expiryDate": expiry,
            "disabledDate": None,
            "created": self._now,
        }
        self._entitlements[entitlement_id] = entitlement
        return entitlement

    def _grace_expiry(self, entitlement: Mapping[str, Any]) -> datetime | None:
        grace = self._plans[self._offerings[entitlement["offeringId"]]["planId"]]["grace"]
        expiry = entitlement["expiryDate"]
        return _add(expiry, grace) if expiry is not None and grace else None

    def _status(self, entitlement: Mapping[str, Any]) -> str:
        if entitlement["disabledDate"] is not None:
            return "disabled"
        if entitlement["activationDate"] is None:
            return "created"
        expiry = entitlement["expiryDate"]
        if expiry is not None and self._now >= expiry:
            grace = self._grace_expiry(entitlement)
            return "gracePeriod" if grace is not None and self._now < grace else "expired"
        return "active"

    def _entitlement_json(self, entitlement: Mapping[str, Any]) -> dict[str, Any]:
        """`EntitlementModel`: the one read that has status, expiry and grace together."""
        offering = self._offerings[entitlement["offeringId"]]
        plan = self._plans[offering["planId"]]
        duration = plan["duration"]
        return _compact(
            {
                **entitlement,
                "offeringName": offering["name"],
                "planName": plan["name"],
                "licenseDurationType": duration[0] if duration else "none",
                "licenseDurationCount": duration[1] if duration else None,
                "hasMaintenance": False,
                "maintenanceDuration": {"type": "none"},
                "gracePeriod": _interval_json(plan["grace"]),
                "status": self._status(entitlement),
                "gracePeriodExpiry": self._grace_expiry(entitlement),
                "seatsUsed": 0,
                "seatUtilizationRate": 0,
                "seatsAvailable": entitlement["seatCount"],
                "exported": False,
            }
        )

    def _group(self, group_id: str) -> dict[str, Any]:
        group = self._groups.get(group_id)
        if group is None:
            raise _not_found("Entitlement group", group_id)
        return group

    def _get_group(self, group_id: str, *, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        return 200, self._group_json(self._group(group_id), query.get("expand", "").split(","))

    def _list_groups(self, *, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        expand = query.get("expand", "").split(",")
        customer_id = query.get("customerId")
        items = [
            self._group_json(g, expand, listed=True)
            for g in self._groups.values()
            if customer_id is None or g["customerId"] == customer_id
        ]
        return 200, self._page(items, query)

    def _entitlement(self, entitlement_id: str) -> dict[str, Any]:
        entitlement = self._entitlements.get(entitlement_id)
        if entitlement is None:
            raise _not_found("Entitlement", entitlement_id)
        return entitlement

    def _get_entitlement(
        self, entitlement_id: str, *, query: Mapping[str, str], body: Any
    ) -> tuple[int, Any]:
        return 200, self._entitlement_json(self._entitlement(entitlement_id))

    def _emit_updated(self, entitlement: Mapping[str, Any]) -> None:
        self._emit(
            "entitlement.updated",
            entitlement["id"],
            {
                "entitlementId": entitlement["id"],
                "entitlementGroupId": entitlement["entitlementGroupId"],
                "expiryDate": entitlement["expiryDate"],
                "seatCount": entitlement["seatCount"],
                "disabled": entitlement["disabledDate"] is not None,
                "updatedDate": self._now,
            },
        )

    def _update_entitlement(
        self, entitlement_id: str, *, query: Mapping[str, str], body: Any
    ) -> tuple[int, Any]:
        entitlement = self._entitlement(entitlement_id)
        data = self._object(body)
        changes: dict[str, Any] = {}
        if "seatCount" in data:
            seats = data["seatCount"]
            if isinstance(seats, bool) or not isinstance(seats, int) or seats < 1:
                raise _invalid("seatCount", "SeatCount must be a positive integer")
            changes["seatCount"] = seats
        if "expiryDate" in data:
            expiry = parse_datetime(data["expiryDate"])
            if expiry is None:
                raise _invalid("expiryDate", "ExpiryDate must be an ISO-8601 date-time")
            changes["expiryDate"] = expiry
        entitlement.update(changes)
        self._emit_updated(entitlement)
        return 204, None

    def _entitlement_action(
        self, entitlement_id: str, action: str, *, query: Mapping[str, str], body: Any
    ) -> tuple[int, Any]:
        entitlement = self._entitlement(entitlement_id)
        if action == "renew":
            self._renew(entitlement)
        elif action == "disable":
            if entitlement["disabledDate"] is None:
                entitlement["disabledDate"] = self._now
            self._emit_updated(entitlement)
        else:
            entitlement["disabledDate"] = None
            self._emit_updated(entitlement)
        return 204, None

    def _renew(self, entitlement: dict[str, Any]) -> None:
        """Reference §6: from the old expiry while it (or its grace) runs, else from now."""
        plan = self._plans[self._offerings[entitlement["offeringId"]]["planId"]]
        if entitlement["licenseType"] != "subscription" or not plan["duration"]:
            raise _ApiError(409, "Conflict", "only subscriptions can be renewed", code="Conflict")
        if entitlement["disabledDate"] is not None or entitlement["activationDate"] is None:
            raise _ApiError(
                409,
                "Conflict",
                "only active, activated entitlements can be renewed",
                code="Conflict",
            )
        previous = entitlement["expiryDate"]
        grace = self._grace_expiry(entitlement)
        running = previous is not None and (
            previous > self._now or (grace is not None and grace > self._now)
        )
        entitlement["expiryDate"] = _add(previous if running else self._now, plan["duration"])
        self._emit(
            "entitlement.renewed",
            entitlement["id"],
            {
                "entitlementId": entitlement["id"],
                "renewedAt": self._now,
                "previousExpiryDate": previous,
                "newExpiryDate": entitlement["expiryDate"],
            },
        )

    # -- account ------------------------------------------------------------------------

    def _account_key(self, *, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        return 200, self.jwk

    def _create_webhook(self, *, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        data = self._object(body)
        uri, subscriptions = data.get("uri"), data.get("subscriptions")
        if (
            not isinstance(uri, str)
            or not uri.startswith(("http://", "https://"))
            or len(uri) > 2048
        ):
            raise _invalid("uri", "Uri must be an http(s) URL of at most 2048 characters")
        if not isinstance(subscriptions, list) or not all(
            isinstance(s, str) for s in subscriptions
        ):
            raise _invalid("subscriptions", "Subscriptions must be a list of event codes")
        webhook_id = self.add_webhook(uri, subscriptions)
        return 201, dict(self._webhooks[webhook_id])

    def _list_webhooks(self, *, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        return 200, self._page([dict(w) for w in self._webhooks.values()], query)
