"""What the Zentitle2 transport tells the log and OpenTelemetry: each retry (the status or
error that caused it, the attempt, the wait) and each token fetch (and why it was needed).
Never a token, a secret or a body."""

from __future__ import annotations

import logging

import httpx

from zentitle_stripe import telemetry

__all__ = ["attempt", "retrying", "token_fetched", "why_new_token"]

logger = logging.getLogger("zentitle_stripe.zentitle")

_REFUSED = "the API refused the cached one (401)"


def why_new_token(cached: str | None, rejected: str | None) -> str:
    """Why a token is fetched: none yet, the cached one was refused, or it expires."""
    if cached is None:
        return "first use"
    return _REFUSED if cached == rejected else "the cached one is about to expire"


def token_fetched(why: str, lifetime: float, refresh_after: float) -> None:
    """INFO, or WARNING when the API refused the token it replaces."""
    logger.log(
        logging.WARNING if why == _REFUSED else logging.INFO,
        "Zentitle2 access token fetched (%s): valid %g s, refreshed after %g s",
        why,
        lifetime,
        refresh_after,
        extra={"remote": "zentitle", "reason": why},
    )


def attempt(method: str, url: str, resend: int) -> telemetry.RemoteCall:
    """The telemetry of one attempt (after `resend` earlier ones)."""
    return telemetry.remote_call("zentitle", method, httpx.URL(url).path, resend=resend)


def retrying(
    method: str,
    url: str,
    response: httpx.Response | None,
    error: Exception | None,
    *,
    number: int,
    attempts: int,
    delay: float,
    retry_after: float | None,
) -> None:
    """A WARNING and a retry counted, before attempt `number` of `attempts`."""
    path = httpx.URL(url).path
    if response is not None:
        cause = str(response.status_code)
        what = f"answered {cause}"
    else:
        cause = type(error).__name__
        what = f"failed ({cause})"
    hint = " (its Retry-After)" if retry_after is not None else ""
    logger.warning(
        "Zentitle2 %s %s %s; attempt %d of %d in %.2f s%s",
        method,
        path,
        what,
        number,
        attempts,
        delay,
        hint,
        extra={"remote": "zentitle", "attempt": number, "wait_s": round(delay, 3)},
    )
    telemetry.remote_retried("zentitle", method, path, cause)
