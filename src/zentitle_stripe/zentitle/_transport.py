"""How every Zentitle2 call travels: OAuth2 tokens, bounded retries, paging, parsing.

Zentitle2 has no idempotency keys (reference §3), so a request that may change something
(`idempotent=False`: creates and renew) is repeated only when it certainly did not reach
the server: the connection was refused, or a 429 turned it away. A 502, 503 or 504 may
come from a gateway after the backend acted, and a timeout after sending says nothing, so
those surface as errors with `may_have_landed=True`. Everything else (GETs, PATCHes that
set values) is retried with exponential backoff and full jitter on network errors, 429,
502, 503 and 504, honouring `Retry-After`.

Inside a processing attempt (a current [`Fence`][zentitle_stripe.fencing.Fence]) every
attempt first checks the fence (the worker still holds its leases) and the time left:
nothing is sent and no `Retry-After` or backoff is slept past the attempt's deadline, each
request's timeouts are cut to the time left, and a body still arriving at the deadline
is cut off, so one event's calls end before its lease does.
"""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar, cast, overload

import attrs
import httpx

from zentitle_stripe.exceptions import ZentitleAPIError
from zentitle_stripe.fencing import Fence, OutOfTime, budgeted_timeout, current_fence, read_within

from . import _errors, _observe

PAGE_SIZE = 100
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Only a 429 certainly turned the request away before any work, so only then may a create
# repeat: a 503 can come from a gateway after the backend acted.
_UNPROCESSED_STATUSES = frozenset({429})
_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 8.0
_TOKEN_REFRESH_MARGIN = 60.0
# Never reached the server: always safe to repeat.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# May have been sent: only requests that are safe to repeat are repeated.
_NO_ANSWER = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

_ModelT = TypeVar("_ModelT")
_T = TypeVar("_T")
Parse = Callable[[Mapping[str, Any]], _ModelT]


def _json_body(method: str, path: str, response: httpx.Response) -> Any:
    """The JSON body of a successful answer (`Transport.json`)."""
    try:
        return response.json()
    except ValueError:
        # Not JSON at all: a proxy's page or a cut connection, worth a retry. JSON of the
        # wrong shape (see `parse`) is a contract change, which a retry will not fix.
        raise _errors.unexpected(method, path, response, "not JSON", transient=True) from None


@attrs.define(kw_only=True, eq=False, repr=False)
class Transport:
    """One `httpx.Client` with a token cache; thread-safe, shared by one client's calls.

    `sleep` and `clock` are injectable so retry and token-expiry tests run instantly.
    """

    _http: httpx.Client
    tenant_id: str
    client_id: str
    _client_secret: str
    token_url: str
    api_version: str
    max_retries: int
    clock: Callable[[], float]
    _sleep: Callable[[float], None]
    _random: random.Random = attrs.field(init=False, factory=random.Random)
    _token_lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _token: str | None = attrs.field(init=False, default=None)
    _token_refresh_at: float = attrs.field(init=False, default=0.0)

    def close(self) -> None:
        self._http.close()

    # -- tokens -------------------------------------------------------------------------

    def _access_token(self, *, rejected: str | None = None) -> str:
        """A valid token; `rejected` is one the API refused, so it must not be reused.

        Under the lock, so N threads needing a token cause one token request; a thread
        whose token was rejected reuses a newer one another thread already fetched.
        """
        with self._token_lock:
            token = self._token
            if token is not None and token != rejected and self.clock() < self._token_refresh_at:
                return token
            return self._fetch_token(_observe.why_new_token(token, rejected))

    def _fetch_token(self, why: str) -> str:
        """A new client-credentials token, cached until shortly before it expires."""
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        try:
            response = self._send("POST", self.token_url, idempotent=True, data=form)
        except ZentitleAPIError as exc:
            raise _errors.token_unreachable(self.token_url, exc) from None
        if response.status_code >= 400:
            raise _errors.token_refused(self.token_url, response)
        try:
            body = response.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in") or 300)
        except (ValueError, KeyError, TypeError, AttributeError):
            what = "sent an unexpected response body"
            raise _errors.token_unreadable(self.token_url, response, what) from None
        if not isinstance(token, str) or not token:
            raise _errors.token_unreadable(self.token_url, response, "sent no access_token")
        margin = min(_TOKEN_REFRESH_MARGIN, 0.2 * lifetime)
        self._token = token
        self._token_refresh_at = self.clock() + lifetime - margin
        _observe.token_fetched(why, lifetime, lifetime - margin)
        return token

    # -- sending ------------------------------------------------------------------------

    def _backoff(self, attempt: int, retry_after: float | None, fence: Fence | None) -> float:
        """The wait before another attempt; `-1` (no attempt) when it would pass the deadline."""
        if retry_after is not None:
            delay = retry_after
        else:
            delay = self._random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))
        return -1.0 if fence is not None and delay >= fence.remaining() else delay

    def _send(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One logical request with bounded retries; returns any response that is final.

        Raises only for network failures that are not retried (or ran out of attempts or
        time); HTTP error statuses are returned for the caller to interpret (the last one,
        when the time left does not cover the wait before another attempt).
        """
        label = f"{method} {httpx.URL(url).path}"
        retryable = _RETRY_STATUSES if idempotent else _UNPROCESSED_STATUSES
        fence = current_fence()
        send = functools.partial(
            self._attempt, method, url, label, fence, idempotent=idempotent, headers=headers
        )
        attempt = 0
        while True:
            response, error = send(resend=attempt, **kwargs)
            if response is not None and response.status_code not in retryable:
                return response
            hint = _errors.retry_after(response) if response is not None else None
            delay = self._backoff(attempt, hint, fence) if attempt < self.max_retries else -1
            if delay >= 0:
                attempts = self.max_retries + 1
                _observe.retrying(
                    method, url, response, error, number=attempt + 2, attempts=attempts,
                    delay=delay, retry_after=hint,
                )  # fmt: skip
                self._sleep(delay)
                attempt += 1
                continue
            if fence is not None and attempt < self.max_retries:
                raise _out_of_time(label, fence, response, error, hint) from error
            if response is not None:
                return response
            raise ZentitleAPIError(
                f"Zentitle2 {label} failed after {attempt + 1} attempts: {type(error).__name__}",
                transient=True,
            ) from error

    def _attempt(
        self,
        method: str,
        url: str,
        label: str,
        fence: Fence | None,
        *,
        idempotent: bool,
        resend: int = 0,
        **kwargs: Any,
    ) -> tuple[httpx.Response | None, httpx.TransportError | None]:
        """Send once (`resend` attempts before): the response, or the error to retry."""
        if fence is not None:
            # Still this worker's leases, renewed as the work proceeds; in storage before a
            # write that cannot be repeated safely.
            fence.check(strict=not idempotent)
            if fence.remaining() <= 0:
                raise ZentitleAPIError(
                    f"Zentitle2 {label} was not sent: this event's {fence.budget:g} s time "
                    "budget (kept below its lease, ZENTITLE_STRIPE_LEASE_SECONDS) is used "
                    "up; retry later",
                    transient=True,
                    retry_after=30,
                )
        try:
            with _observe.attempt(method, url, resend) as call:
                response = self._exchange(method, url, fence, **kwargs)
                call.answered(response.status_code)
            return response, None
        except _NOT_SENT as exc:
            return None, exc
        except _NO_ANSWER as exc:
            if not idempotent:
                cut = " (cut off at the event's time budget)" if isinstance(exc, OutOfTime) else ""
                raise ZentitleAPIError(
                    f"Zentitle2 {label} got no response ({type(exc).__name__}){cut}; it may "
                    "have been processed, so it is not repeated automatically",
                    transient=True,
                    may_have_landed=True,
                ) from exc
            return None, exc

    def _exchange(
        self, method: str, url: str, fence: Fence | None, **kwargs: Any
    ) -> httpx.Response:
        """One HTTP exchange, its timeouts and body read bounded by the fence's deadline."""
        timeout = budgeted_timeout(self._http.timeout, fence)
        request = self._http.build_request(method, url, timeout=timeout, **kwargs)
        return read_within(self._http.send(request, stream=True), fence)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """An authenticated API call; re-authenticates once after a 401; raises on error."""
        headers = {
            "N-TenantId": self.tenant_id,
            "N-Api-Version": self.api_version,
            "Accept": "application/json",
        }
        token = self._access_token()
        for first_try in (True, False):
            headers["Authorization"] = f"Bearer {token}"
            response = self._send(
                method, path, idempotent=idempotent, headers=headers, params=params, json=json
            )
            if response.status_code == 401 and first_try:
                token = self._access_token(rejected=token)
                continue
            break
        if response.status_code >= 400:
            raise _errors.api_error(method, path, response)
        return response

    # -- reading answers ----------------------------------------------------------------

    json = staticmethod(_json_body)

    def parse(
        self, method: str, path: str, response: httpx.Response, parse: Parse[_ModelT]
    ) -> _ModelT:
        """The model `parse` makes of the body; a body it refuses is an unexpected answer."""
        body = self.json(method, path, response)
        try:
            return parse(body)
        except (ValueError, TypeError, AttributeError) as exc:
            raise _errors.unexpected(method, path, response, str(exc)) from None

    def get(self, path: str, parse: Parse[_ModelT], **params: str) -> _ModelT:
        return self.parse("GET", path, self.request("GET", path, params=params), parse)

    def get_all(
        self,
        path: str,
        parse: Parse[_ModelT],
        params: Mapping[str, str] | None = None,
        *,
        max_pages: int | None = None,
        keep: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> list[_ModelT]:
        """Every item of a paged list (those `keep` accepts: a search parses only its
        matches), following `pageNumber` until `elementsTotal` (or `max_pages`: a
        bounded search); a short or empty page also ends it, so none can loop."""
        results: list[_ModelT] = []
        seen, page = 0, 1  # items read, the page to ask for
        while True:
            query: dict[str, str | int] = {**(params or {}), "pageNumber": page}
            query["pageSize"] = PAGE_SIZE
            response = self.request("GET", path, params=query)
            body = self.json("GET", path, response)
            items = body.get("items") if isinstance(body, Mapping) else None
            if not isinstance(items, list):
                raise _errors.unexpected("GET", path, response, "no 'items' list")
            seen += len(items)
            try:
                results.extend(parse(item) for item in items if keep is None or _kept(keep, item))
            except (ValueError, TypeError, AttributeError) as exc:
                raise _errors.unexpected("GET", path, response, str(exc)) from None
            total = body.get("elementsTotal")
            if len(items) < PAGE_SIZE or (isinstance(total, int) and seen >= total):
                return results
            if max_pages is not None and page >= max_pages:
                return results
            page += 1


def _kept(keep: Callable[[Mapping[str, Any]], bool], item: Any) -> bool:
    """`keep(item)`, for an item that is an object; anything else goes to the parser,
    which refuses it as it would without `keep`."""
    return not isinstance(item, Mapping) or keep(item)


def _out_of_time(
    label: str,
    fence: Fence,
    response: httpx.Response | None,
    error: Exception | None,
    hint: float | None,
) -> ZentitleAPIError:
    """The retries stopped early: the wait before another attempt would pass the deadline."""
    if response is not None:
        wait = f", asking to wait {hint:g} s" if hint is not None else ""
        what = f"answered {response.status_code}{wait}"
    else:
        what = f"failed ({type(error).__name__})"
    return ZentitleAPIError(
        f"Zentitle2 {label} {what}, and this event's {fence.budget:g} s time budget (kept "
        "below its lease, ZENTITLE_STRIPE_LEASE_SECONDS) leaves no time for another "
        "attempt; retry later",
        status=response.status_code if response is not None else None,
        transient=True,
        retry_after=hint,
    )


class _Composes(Protocol):
    _api: Transport


class OnTransport(Generic[_T]):
    """A client attribute that lives on its `Transport` under the same name.

    Reading and setting it on the client reach the transport, so changing, say, the
    client's `tenant_id` changes the requests it sends, as when the client held it.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, client: None, owner: type) -> OnTransport[_T]: ...
    @overload
    def __get__(self, client: _Composes, owner: type) -> _T: ...
    def __get__(self, client: _Composes | None, owner: type) -> OnTransport[_T] | _T:
        if client is None:
            return self
        return cast(_T, getattr(client._api, self._name))

    def __set__(self, client: _Composes, value: _T) -> None:
        setattr(client._api, self._name, value)
