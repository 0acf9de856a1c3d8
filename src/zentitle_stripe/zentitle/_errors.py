"""Zentitle2's failed answers as
[`ZentitleAPIError`][zentitle_stripe.exceptions.ZentitleAPIError]s.

One place decides, for every failed call, the message (naming the setting to check, never a
secret), `transient` (trying later may succeed) and `may_have_landed` (the server may have
done the work, so the caller looks before acting again).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from zentitle_stripe.exceptions import ZentitleAPIError

CREDENTIALS_HINT = "check ZENTITLE_CLIENT_ID, ZENTITLE_CLIENT_SECRET and ZENTITLE_TOKEN_URL"
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0


def retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds, capped at 30; `None` when absent or an HTTP date."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare enough that the regular backoff will do
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _api_error_message(body: Any) -> tuple[str | None, str | None, str | None, tuple[str, ...]]:
    """`(reason, errorCode, details, validation messages)` from an `ApiError` body."""
    if not isinstance(body, Mapping):
        return None, None, None, ()
    messages: list[str] = []
    raw = body.get("validationErrors")
    for item in raw if isinstance(raw, list) else ():
        if isinstance(item, Mapping) and item.get("message"):
            prop = item.get("propertyName")
            messages.append(f"{prop}: {item['message']}" if prop else str(item["message"]))
    error = body.get("error")
    code = body.get("errorCode")
    details = body.get("details")
    details_s = str(details) if details else None
    reason = details_s or "; ".join(messages) or (str(error) if error else None)
    return reason, (str(code) if code else None), details_s, tuple(messages)


def api_error(method: str, path: str, response: httpx.Response) -> ZentitleAPIError:
    """The error for an API answer of 400 or more; a 5xx or 408 may have done the work."""
    reason, code, details, messages = _api_error_message(_json_or_none(response))
    status = response.status_code
    text = f"Zentitle2 {method} {path} failed with {status}"
    if reason:
        text += f": {reason}"
    elif status == 401:
        text += f": the access token was refused; {CREDENTIALS_HINT}"
    elif status == 403:
        text += ": forbidden; check ZENTITLE_TENANT_ID and the API client's roles"
    return ZentitleAPIError(
        text,
        status=status,
        transient=status in TRANSIENT_STATUSES,
        retry_after=retry_after(response),
        error_code=code,
        details=details,
        validation_errors=messages,
        may_have_landed=status >= 500 or status == 408,
    )


def unexpected(
    method: str, path: str, response: httpx.Response, why: str, *, transient: bool = False
) -> ZentitleAPIError:
    """A body the contract does not allow; after a 2xx the work was done all the same."""
    snippet = response.text[:80]
    return ZentitleAPIError(
        f"Zentitle2 {method} {path} returned an unexpected response body ({why}): {snippet!r}",
        status=response.status_code,
        transient=transient,
        may_have_landed=response.is_success,
    )


def token_unreachable(token_url: str, exc: ZentitleAPIError) -> ZentitleAPIError:
    """The token request failed on the network: `exc` again, naming the settings."""
    return ZentitleAPIError(
        f"could not get a Zentitle2 access token from {token_url}: "
        f"{exc.message}; {CREDENTIALS_HINT}",
        status=exc.status,
        transient=exc.transient,
        retry_after=exc.retry_after,
        error_code=exc.error_code,
    )


def token_refused(token_url: str, response: httpx.Response) -> ZentitleAPIError:
    """The token endpoint answered 400 or more, with its OAuth2 `error` if it sent one."""
    body = _json_or_none(response)
    error = body.get("error") if isinstance(body, Mapping) else None
    reason = f" ({error})" if error else ""
    return ZentitleAPIError(
        f"Zentitle2 token endpoint {token_url} answered {response.status_code}"
        f"{reason}; {CREDENTIALS_HINT}",
        status=response.status_code,
        transient=response.status_code in TRANSIENT_STATUSES,
        error_code=str(error) if error else None,
    )


def token_unreadable(token_url: str, response: httpx.Response, what: str) -> ZentitleAPIError:
    """A 2xx from the token endpoint without a usable token (`what` says what is wrong)."""
    return ZentitleAPIError(
        f"Zentitle2 token endpoint {token_url} {what}; {CREDENTIALS_HINT}",
        status=response.status_code,
    )
