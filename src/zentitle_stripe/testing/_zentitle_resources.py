"""The Zentitle2 emulator's tenant state, protocol and route handlers, one class a resource.

[`ZentitleEmulator`][zentitle_stripe.testing.ZentitleEmulator] is assembled from these:
`_Tenant` holds the state and speaks the protocol (OAuth2 tokens, the three mandatory
headers, `ApiError` bodies, paging, signed webhooks); each `_...Routes` class answers
one resource in the contract's shapes exactly.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl

import attrs
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from typing_extensions import override

from zentitle_stripe.zentitle.models import Interval, format_datetime, parse_datetime

from ._contract import Contract
from ._fake import FakeClock, FakeService, Incoming, Reply

__all__ = ["OutgoingWebhook"]

TOKEN_PATH = "/protocol/openid-connect/token"  # noqa: S105 - a path, not a secret
SUPPORTED_API_VERSIONS = frozenset({"2025-10-10"})
SECONDS = {"week": 604800, "day": 86400, "hour": 3600, "minute": 60, "second": 1}
_DEFAULT_PAGE_SIZE = 20
_MAX_PAGE_SIZE = 200
_ACTIVATION_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,48}[A-Z0-9]$")
_CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

_NOT_JSON = object()
_key_lock = threading.Lock()
_key: rsa.RSAPrivateKey | None = None

_Json = dict[str, Any]
_Query = Mapping[str, str]
_Result = tuple[int, Any]
Handler = Callable[..., _Result]
ExtendAnswer = Literal[204, 200, 201]
"""The answers of the group `extend`, whose status the reference leaves unknown."""


def _signing_key() -> rsa.RSAPrivateKey:
    """One 2048-bit key per process: generating one costs ~0.1 s, too much per test."""
    global _key
    with _key_lock:
        if _key is None:
            _key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _key


def b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_id(prefix: str) -> str:
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()


def _activation_code() -> str:
    return "-".join("".join(secrets.choice(_CODE_ALPHABET) for _ in range(4)) for _ in range(4))


def _add(moment: datetime, interval: tuple[str, int]) -> datetime:
    """`moment` plus a plan interval, by the same calendar rules as the client."""
    later = Interval(type=interval[0], count=interval[1]).add_to(moment)
    assert later is not None, f"unknown interval {interval!r}"  # add_plan validates kinds
    return later


def _interval_json(interval: tuple[str, int] | None) -> _Json:
    """A contract `Interval`; no interval is `{"type": "none"}` (the field is never null)."""
    return {"type": interval[0], "count": interval[1]} if interval else {"type": "none"}


def _compact(data: Mapping[str, Any]) -> _Json:
    """Drop `None` values, as the API omits nulls; datetimes become ISO text."""
    return {
        k: format_datetime(v) if isinstance(v, datetime) else v
        for k, v in data.items()
        if v is not None
    }


@attrs.frozen
class OutgoingWebhook:
    """A signed webhook delivery waiting in the emulator's `outbox`."""

    uri: str
    event_code: str
    body: bytes
    headers: Mapping[str, str]


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
        body: _Json = {"error": error, "errorCode": code, "details": details}
        errors = [{"propertyName": p, "message": m, "code": "Invalid"} for p, m in validation]
        if errors:
            body["validationErrors"] = errors
        self.body = _compact(body)


def _invalid(prop: str, message: str) -> _ApiError:
    return _ApiError(422, "Validation failed", code="ValidationError", validation=[(prop, message)])


def _conflict(details: str) -> _ApiError:
    return _ApiError(409, "Conflict", details, code="Conflict")


def _found(store: Mapping[str, _Json], kind: str, ident: str) -> _Json:
    """The stored object, or the API's 404."""
    found = store.get(ident)
    if found is None:
        raise _ApiError(404, "Not Found", f"{kind} {ident!r} was not found", code="NotFound")
    return found


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise _ApiError(400, "Bad Request", "body must be a JSON object", code="InvalidJson")
    return body


def _page(items: list[Any], query: _Query) -> _Json:
    """One page of a list, as `pageNumber` and `pageSize` ask (1..200, default 20)."""

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


class _Tenant(FakeService[str]):
    """A tenant's state and the protocol around every route: tokens, headers, errors."""

    _thread_name: ClassVar[str] = "zentitle-emulator"
    api_url = "https://emulator.api.zentitle.invalid"

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        api_version: str,
        token_lifetime: int,
        *,
        check_contract: bool,
    ) -> None:
        super().__init__(clock=FakeClock(), contract=Contract.load(), check_contract=check_contract)
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_version = api_version
        self.token_lifetime = token_lifetime
        self.outbox: list[OutgoingWebhook] = []
        self._tokens: dict[str, datetime] = {}
        self._products: dict[str, _Json] = {}
        self._plans: dict[str, _Json] = {}
        self._offerings: dict[str, _Json] = {}
        self._customers: dict[str, _Json] = {}
        self._contacts: dict[str, _Json] = {}
        self._groups: dict[str, _Json] = {}
        self._entitlements: dict[str, _Json] = {}
        self._webhooks: dict[str, _Json] = {}
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.extend_answer: ExtendAnswer = 204
        """How the extra `extend` operation answers: 204 and no body (the harsher reading
        of an unknown status, the default), or 200 / 201 with the group."""
        # Indexes, so a request costs the same with 10 or 10,000 objects stored (a storm
        # benchmark seeds thousands); objects are never deleted and these keys never change.
        self._offering_by_sku: dict[str, str] = {}
        self._contacts_by_email: dict[str, list[str]] = {}
        """Contact ids by case-folded (`str.lower`) e-mail, oldest first."""
        self._contacts_by_customer: dict[str, list[str]] = {}
        self._groups_by_customer: dict[str | None, list[str]] = {}
        self._activation_codes: set[str] = set()

    @property
    def now(self) -> datetime:
        """The emulator's current time (aware UTC); it only moves when set or advanced."""
        return self.clock.now

    @now.setter
    def now(self, value: datetime) -> None:
        self.clock.now = value

    def _store(self, store: dict[str, _Json], prefix: str, **fields: Any) -> _Json:
        """Add an object with a fresh `prefix` id to `store`; returns it."""
        item = {"id": new_id(prefix), **fields}
        store[item["id"]] = item
        return item

    # -- webhooks -----------------------------------------------------------------------

    @property
    def public_key_modulus(self) -> str:
        """The signing key's modulus in base64url, as the UI shows it ("RSA Modulus")."""
        return b64url_uint(_signing_key().public_key().public_numbers().n)

    @property
    def jwk(self) -> dict[str, str]:
        """The signing key as `GET /api/v1/account/key` returns it."""
        numbers = _signing_key().public_key().public_numbers()
        return {"kty": "RSA", "n": b64url_uint(numbers.n), "e": b64url_uint(numbers.e)}

    def sign(self, body: bytes) -> str:
        """The `N-Signature` value for `body`: base64 RSA PKCS#1 v1.5 SHA-256."""
        signature = _signing_key().sign(body, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    def _emit(self, code: str, resource_id: str, payload: Mapping[str, Any]) -> None:
        envelope = {
            "eventId": new_id("event_"),
            "eventDate": format_datetime(self.now),
            "eventCode": code,
            "resourceId": resource_id,
            "callAttempt": 1,
            "payload": _compact(payload),
        }
        body = json.dumps(envelope, separators=(",", ":")).encode()
        self._check_webhook(body)
        for webhook in self._webhooks.values():
            if code in webhook["subscriptions"]:
                headers = {"Content-Type": "application/json", "N-Signature": self.sign(body)}
                self.outbox.append(OutgoingWebhook(webhook["uri"], code, body, headers))

    # -- the protocol -------------------------------------------------------------------

    @override
    def _contracted(self, request: Incoming) -> bool:
        return not request.path.endswith(TOKEN_PATH)

    @override
    def _error_reply(self, status: int) -> Reply:
        """An emulated error answer; a gateway's 5xx carries no ApiError body (harsher)."""
        if status == 429:
            body = json.dumps({"error": "Too Many Requests", "errorCode": "Http429"}).encode()
            return Reply(429, self._json_headers({"retry-after": "1"}), body)
        if status in (502, 503, 504):
            page = f"<html><body>{status} Gateway error</body></html>".encode()
            return Reply(status, {"content-type": "text/html"}, page)
        body = json.dumps({"error": "Emulated fault", "errorCode": f"Http{status}"}).encode()
        return Reply(status, self._json_headers(), body)

    def _json_headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "n-api-version": self.api_version,
            **(extra or {}),
        }

    @override
    def _answer(self, request: Incoming) -> Reply:
        if request.path.endswith(TOKEN_PATH):
            status, token = self._token(request)
            return Reply(status, {"content-type": "application/json"}, json.dumps(token).encode())
        try:
            payload: Any = json.loads(request.body) if request.body else None
        except ValueError:
            payload = _NOT_JSON
        result: Any
        try:
            self._authorize(request.headers, request.query)
            handler, args = self._route(request.method, request.path)
            if payload is _NOT_JSON:
                raise _ApiError(400, "Bad Request", "body is not JSON", code="InvalidJson")
            status, result = handler(*args, query=request.query, body=payload)
        except _ApiError as exc:
            if exc.status == 401:
                return Reply(401, {"www-authenticate": 'Bearer error="invalid_token"'}, b"")
            status, result = exc.status, exc.body
        if result is None:
            return Reply(status, {"n-api-version": self.api_version}, b"")
        return Reply(status, self._json_headers(), json.dumps(result).encode())

    def _token(self, request: Incoming) -> tuple[int, _Json]:
        if request.method != "POST":
            return 405, {"error": "invalid_request", "error_description": "use POST"}
        form = dict(parse_qsl(request.body.decode("latin-1")))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
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
        self._tokens[token] = self.now + timedelta(seconds=self.token_lifetime)
        return 200, {
            "access_token": token,
            "expires_in": self.token_lifetime,
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "profile email",
        }

    def _authorize(self, headers: Mapping[str, str], query: _Query) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        expiry = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= self.now:
            raise _ApiError(401, "Unauthorized")
        if headers.get("n-tenantid") != self.tenant_id:
            raise _ApiError(
                403,
                "Forbidden",
                f"N-TenantId header must be {self.tenant_id!r} for this token",
                code="InvalidTenant",
            )
        version = headers.get("n-api-version") or query.get("n-api-version")
        if version not in SUPPORTED_API_VERSIONS:
            raise _ApiError(
                400,
                "Bad Request",
                f"unsupported API version {version!r}; send N-Api-Version: {self.api_version}",
                code="UnsupportedApiVersion",
            )

    def _route(self, method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
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


class _CustomerRoutes(_Tenant):
    """`/customers` and their contacts."""

    def _new_customer(self, name: Any, account_ref_id: Any) -> _Json:
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            raise _invalid("name", "Name is required and must be 1-255 characters")
        if account_ref_id is not None and (
            not isinstance(account_ref_id, str) or len(account_ref_id) > 50
        ):
            raise _invalid("accountRefId", "AccountRefId must be at most 50 characters")
        return self._store(
            self._customers,
            "cust_",
            name=name,
            accountRefId=account_ref_id,
            status="active",
            createdAt=self.now,
        )

    def _customer_json(self, customer: Mapping[str, Any]) -> _Json:
        """`CustomerModel`."""
        return _compact(customer)

    @staticmethod
    def _customer_list_json(customer: Mapping[str, Any]) -> _Json:
        """`CustomerListModel`: no `createdAt`."""
        return _compact({k: customer[k] for k in ("id", "name", "accountRefId", "status")})

    def _create_customer(self, *, query: _Query, body: Any) -> _Result:
        data = _object(body)
        customer = self._new_customer(data.get("name"), data.get("accountRefId"))
        return 201, self._customer_json(customer)

    def _list_customers(self, *, query: _Query, body: Any) -> _Result:
        page = _page(list(self._customers.values()), query)  # render only the page
        page["items"] = [self._customer_list_json(c) for c in page["items"]]
        return 200, page

    def _get_customer(self, customer_id: str, *, query: _Query, body: Any) -> _Result:
        return 200, self._customer_json(_found(self._customers, "Customer", customer_id))

    def _create_contact(self, customer_id: str, *, query: _Query, body: Any) -> _Result:
        _found(self._customers, "Customer", customer_id)
        data = _object(body)
        email = data.get("email")
        if not isinstance(email, str) or "@" not in email or len(email) > 100:
            raise _invalid(
                "email", "Email is required, must be an address of at most 100 characters"
            )
        own = self._contacts_by_customer.setdefault(customer_id, [])
        if any(self._contacts[c]["email"].lower() == email.lower() for c in own):
            raise _conflict(f"contact {email!r} exists for this customer")
        contact = self._store(self._contacts, "cont_", customerId=customer_id, email=email)
        own.append(contact["id"])
        self._contacts_by_email.setdefault(email.lower(), []).append(contact["id"])
        contact.update(firstName=data.get("firstName"), lastName=data.get("lastName"))
        contact["createdAt"] = self.now
        return 201, self._contact_json(contact)

    @staticmethod
    def _contact_json(contact: Mapping[str, Any]) -> _Json:
        """`CustomerContactModel`: no `customerId` (the contract's model has none)."""
        return _compact(
            {
                **{k: v for k, v in contact.items() if k != "customerId"},
                "status": "active",
                "isKeyContact": False,
            }
        )

    @staticmethod
    def _search_contact_json(contact: Mapping[str, Any]) -> _Json:
        """`SearchCustomerContactModel`: the one contact shape that names its customer."""
        keys = ("id", "customerId", "firstName", "lastName", "email")
        return _compact({k: contact[k] for k in keys})

    def _list_contacts(self, customer_id: str, *, query: _Query, body: Any) -> _Result:
        _found(self._customers, "Customer", customer_id)
        own = self._contacts_by_customer.get(customer_id, [])
        found = [self._contact_json(self._contacts[c]) for c in own]
        return 200, _page(found, query)

    def _search_contacts(self, *, query: _Query, body: Any) -> _Result:
        email = query.get("email", "").lower()
        same = self._contacts_by_email.get(email, [])
        found = [self._search_contact_json(self._contacts[c]) for c in same]
        return 200, _page(found, query)


class _OfferingRoutes(_Tenant):
    """`/offerings`, with their plans and editions."""

    def _plan_json(self, plan: Mapping[str, Any]) -> _Json:
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

    def _offering_json(self, offering: Mapping[str, Any], expand: Iterable[str]) -> _Json:
        """`OfferingListModel`: no `productId` (only inside the expanded edition)."""
        item: _Json = {
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

    def _list_offerings(self, *, query: _Query, body: Any) -> _Result:
        expand = query.get("expand", "").split(",")
        items = []
        for offering in self._offerings.values():
            if query.get("productId") not in (None, offering["productId"]):
                continue
            if query.get("planId") not in (None, offering["planId"]):
                continue
            items.append(self._offering_json(offering, expand))
        return 200, _page(items, query)


class _EntitlementRoutes(_Tenant):
    """`/entitlements/{id}`: reads, updates, renew, disable and enable."""

    def _plan_of(self, entitlement: Mapping[str, Any]) -> _Json:
        return self._plans[self._offerings[entitlement["offeringId"]]["planId"]]

    def _new_entitlement(self, offering: Mapping[str, Any], group_id: str) -> _Json:
        plan = self._plans[offering["planId"]]
        activation = expiry = None
        if plan["licenseStartType"] == "entitlementCreation":
            activation = self.now
            if plan["licenseType"] == "subscription" and plan["duration"]:
                expiry = _add(self.now, plan["duration"])
        return self._store(
            self._entitlements,
            "ent_",
            sku=offering["sku"],
            offeringId=offering["id"],
            productId=offering["productId"],
            entitlementGroupId=group_id,
            licenseType=plan["licenseType"],
            licenseStartType=plan["licenseStartType"],
            seatCount=offering["seatCount"],
            activationDate=activation,
            expiryDate=expiry,
            disabledDate=None,
            created=self.now,
        )

    def _grace_expiry(self, entitlement: Mapping[str, Any]) -> datetime | None:
        grace = self._plan_of(entitlement)["grace"]
        expiry = entitlement["expiryDate"]
        return _add(expiry, grace) if expiry is not None and grace else None

    def _status(self, entitlement: Mapping[str, Any]) -> str:
        if entitlement["disabledDate"] is not None:
            return "disabled"
        if entitlement["activationDate"] is None:
            return "created"
        expiry = entitlement["expiryDate"]
        if expiry is not None and self.now >= expiry:
            grace = self._grace_expiry(entitlement)
            return "gracePeriod" if grace is not None and self.now < grace else "expired"
        return "active"

    def _short_entitlement_json(self, entitlement: Mapping[str, Any]) -> _Json:
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

    def _entitlement_json(self, entitlement: Mapping[str, Any]) -> _Json:
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

    def _get_entitlement(self, entitlement_id: str, *, query: _Query, body: Any) -> _Result:
        entitlement = _found(self._entitlements, "Entitlement", entitlement_id)
        return 200, self._entitlement_json(entitlement)

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
                "updatedDate": self.now,
            },
        )

    def _update_entitlement(self, entitlement_id: str, *, query: _Query, body: Any) -> _Result:
        entitlement = _found(self._entitlements, "Entitlement", entitlement_id)
        data = _object(body)
        changes: _Json = {}
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
        self, entitlement_id: str, action: str, *, query: _Query, body: Any
    ) -> _Result:
        entitlement = _found(self._entitlements, "Entitlement", entitlement_id)
        if action == "renew":
            self._renew(entitlement)
        elif action == "disable":
            if entitlement["disabledDate"] is None:
                entitlement["disabledDate"] = self.now
            self._emit_updated(entitlement)
        else:
            entitlement["disabledDate"] = None
            self._emit_updated(entitlement)
        return 204, None

    def _renew(self, entitlement: _Json) -> None:
        """Reference §6: from the old expiry while it (or its grace) runs, else from now."""
        plan = self._plan_of(entitlement)
        if entitlement["licenseType"] != "subscription" or not plan["duration"]:
            raise _conflict("only subscriptions can be renewed")
        if entitlement["disabledDate"] is not None or entitlement["activationDate"] is None:
            raise _conflict("only active, activated entitlements can be renewed")
        previous = entitlement["expiryDate"]
        grace = self._grace_expiry(entitlement)
        running = previous is not None and (
            previous > self.now or (grace is not None and grace > self.now)
        )
        entitlement["expiryDate"] = _add(previous if running else self.now, plan["duration"])
        self._emit(
            "entitlement.renewed",
            entitlement["id"],
            {
                "entitlementId": entitlement["id"],
                "renewedAt": self.now,
                "previousExpiryDate": previous,
                "newExpiryDate": entitlement["expiryDate"],
            },
        )


class _GroupRoutes(_EntitlementRoutes):
    """`/entitlements/groups`: a group and one entitlement per SKU, made together."""

    def _group_json(
        self, group: Mapping[str, Any], expand: Iterable[str], *, listed: bool = False
    ) -> _Json:
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

    def _offerings_for(self, skus: Any) -> list[_Json]:
        """The offerings of a request's `skus`, in order; an unknown SKU is a 422."""
        if not isinstance(skus, list) or not skus or not all(isinstance(s, str) for s in skus):
            raise _invalid("skus", "Skus must contain at least one SKU")
        by_sku = self._offering_by_sku
        unknown = [
            (f"skus[{i}]", f"Offering with SKU {s!r} was not found")
            for i, s in enumerate(skus)
            if s not in by_sku
        ]
        if unknown:
            raise _ApiError(422, "Validation failed", code="ValidationError", validation=unknown)
        return [self._offerings[by_sku[s]] for s in skus]

    def _group_request(self, data: Mapping[str, Any]) -> tuple[list[_Json], Any, Any, str]:
        """Validate a create: `(offerings, customerId, orderRefId, activation code)`."""
        offerings = self._offerings_for(data.get("skus"))
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
        if code in self._activation_codes:
            raise _conflict(f"activation code {code!r} is in use")
        return offerings, customer_id, order_ref_id, code

    def _create_group(self, *, query: _Query, body: Any) -> _Result:
        offerings, customer_id, order_ref_id, code = self._group_request(_object(body))
        group_id = new_id("egr_")
        group: _Json = {
            "id": group_id,
            "created": self.now,
            "customerId": customer_id,
            "orderRefId": order_ref_id,
            "activationCodes": [code],
            "entitlementIds": [self._new_entitlement(o, group_id)["id"] for o in offerings],
        }
        self._groups[group_id] = group
        self._groups_by_customer.setdefault(customer_id, []).append(group_id)
        self._activation_codes.add(code)
        self._emit(
            "entitlement.group.created",
            group_id,
            {
                "entitlementGroupId": group_id,
                "createdDate": self.now,
                "orderRefId": order_ref_id,
                "customerId": customer_id,
            },
        )
        self._emit_created(group_id, group["entitlementIds"])
        return 201, self._group_json(group, ())

    def _emit_created(self, group_id: str, entitlement_ids: Iterable[str]) -> None:
        for entitlement_id in entitlement_ids:
            self._emit(
                "entitlement.created",
                entitlement_id,
                {
                    "entitlementId": entitlement_id,
                    "entitlementGroupId": group_id,
                    "licenseType": self._entitlements[entitlement_id]["licenseType"],
                    "createdDate": self.now,
                },
            )

    def _extend_group(self, group_id: str, *, query: _Query, body: Any) -> _Result:
        """`POST .../groups/{id}/extend` (an extra operation, reference §5.4 only).

        One new entitlement per SKU, made as a create makes them (the offering's seats,
        the plan's term from now), every time: nothing stops a repeat from adding the
        same SKU again. The answer is `extend_answer`: 204 with no body (the harsher
        reading, default) or 200/201 with the group, its entitlements not expanded.
        """
        group = _found(self._groups, "Entitlement group", group_id)
        offerings = self._offerings_for(_object(body).get("skus"))
        added = [self._new_entitlement(o, group_id)["id"] for o in offerings]
        group["entitlementIds"].extend(added)
        self._emit_created(group_id, added)
        self._emit(
            "entitlement.group.updated",
            group_id,
            {"entitlementGroupId": group_id, "updatedDate": self.now},
        )
        if self.extend_answer == 204:
            return 204, None
        return self.extend_answer, self._group_json(group, ())

    def _get_group(self, group_id: str, *, query: _Query, body: Any) -> _Result:
        group = _found(self._groups, "Entitlement group", group_id)
        return 200, self._group_json(group, query.get("expand", "").split(","))

    def _list_groups(self, *, query: _Query, body: Any) -> _Result:
        expand = query.get("expand", "").split(",")
        customer_id = query.get("customerId")
        matching = (
            list(self._groups.values())
            if customer_id is None
            else [self._groups[i] for i in self._groups_by_customer.get(customer_id, [])]
        )
        # Page first, then render only the page: the emulator's own cost stays that of
        # one page, so benchmarks measure the client, not the emulator.
        page = _page(matching, query)
        page["items"] = [self._group_json(g, expand, listed=True) for g in page["items"]]
        return 200, page


class _AccountRoutes(_Tenant):
    """`/account`: the webhook signing key and webhook registrations."""

    def _new_webhook(self, uri: str, subscriptions: Iterable[str]) -> _Json:
        return self._store(self._webhooks, "wh_", uri=uri, subscriptions=list(subscriptions))

    def _account_key(self, *, query: _Query, body: Any) -> _Result:
        return 200, self.jwk

    def _create_webhook(self, *, query: _Query, body: Any) -> _Result:
        data = _object(body)
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
        return 201, dict(self._new_webhook(uri, subscriptions))

    def _list_webhooks(self, *, query: _Query, body: Any) -> _Result:
        return 200, _page([dict(w) for w in self._webhooks.values()], query)
