"""stripe-python's httpx client, on a given transport and bounded by the attempt's fence."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import httpx
import stripe

from .. import telemetry
from ..fencing import OutOfTime, budgeted_timeout, current_fence, read_within

__all__ = ["HTTPXClient"]

logger = logging.getLogger("zentitle_stripe.stripe")


class HTTPXClient(stripe.HTTPXClient):
    """stripe-python's httpx client, optionally on a given transport (in-process tests).

    Inside a processing attempt it honours the attempt's
    [`Fence`][zentitle_stripe.fencing.Fence] as the Zentitle2 client does: the leases are
    checked before each request, nothing is sent after the deadline, timeouts are cut to
    the time left and a body still arriving then is cut off. stripe-python's own retry
    sleeps (at most 5 s) are cut to the time left. Each of those retries is logged at
    WARNING with the status (or error) that caused it, the attempt and the wait.
    """

    def __init__(self, timeout: float, transport: httpx.BaseTransport | None) -> None:
        super().__init__(timeout=timeout, allow_sync_methods=True)
        # The last attempt of this thread's request, for the retry's log line.
        self._last = threading.local()
        if transport is not None:
            # stripe.HTTPXClient has no transport option; swap its sync client for one that
            # has, keeping the rest of its request/error handling.
            self._client.close()  # type: ignore[union-attr]
            self._client = httpx.Client(transport=transport)

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> Any:
        # stripe-python passes the encoded form as ``data=``, which httpx deprecates for
        # raw text; ``content=`` sends the same bytes without the warning.
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        if isinstance(kwargs.get("data"), (str, bytes)):
            kwargs["content"] = kwargs.pop("data")
        fence = current_fence()
        if fence is not None:
            fence.check()  # LeaseLost passes through stripe-python untouched
            if fence.remaining() <= 0:
                budget = f"{fence.budget:g} s"
                raise _not_retried(f"not sent: this event's {budget} time budget is used up")
            kwargs["timeout"] = budgeted_timeout(httpx.Timeout(self._timeout), fence)
        return args, kwargs

    def request_with_retries(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        post_data: Any = None,
        max_network_retries: int | None = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        self._last.attempts = (max_network_retries or 0) + 1  # for the retry's log line
        self._last.resend = -1
        return super().request_with_retries(
            method, url, headers, post_data, max_network_retries, _usage=_usage
        )

    def request(  # type: ignore[override]  # the signature of stripe.HTTPXClient's own
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        args, kwargs = self._get_request_args_kwargs(method, url, headers, post_data)
        assert self._client is not None
        fence = current_fence()
        verb, path = method.upper(), httpx.URL(url).path
        self._last.method, self._last.path = verb, path
        self._last.label = f"{verb} {path}"
        self._last.outcome = self._last.cause = None
        self._last.resend = resend = getattr(self._last, "resend", -1) + 1
        try:
            with telemetry.remote_call("stripe", verb, path, resend=resend) as call:
                request = self._client.build_request(*args, **kwargs)
                response = read_within(self._client.send(request, stream=True), fence)
                call.answered(response.status_code)
        except OutOfTime as exc:
            raise _not_retried(str(exc)) from exc
        except Exception as exc:  # what stripe-python's own request does
            self._last.outcome = f"failed ({type(exc).__name__})"
            self._last.cause = type(exc).__name__
            self._handle_request_error(exc)
        self._last.outcome = f"answered {response.status_code}"
        self._last.cause = str(response.status_code)
        return response.content, response.status_code, response.headers

    def _sleep_time_seconds(self, num_retries: int) -> float:
        """The wait before retry `num_retries` (stripe-python asks just before it)."""
        delay = float(super()._sleep_time_seconds(num_retries))
        fence = current_fence()
        delay = delay if fence is None else max(min(delay, fence.remaining()), 0.0)
        label = getattr(self._last, "label", "request")
        outcome = getattr(self._last, "outcome", None) or "failed"
        if hasattr(self._last, "path"):
            cause = self._last.cause or "error"
            telemetry.remote_retried("stripe", self._last.method, self._last.path, cause)
        logger.warning(
            "Stripe %s %s; attempt %d of %s in %.2f s (stripe-python's retry)",
            label,
            outcome,
            num_retries + 1,
            getattr(self._last, "attempts", "?"),
            delay,
            extra={"remote": "stripe", "attempt": num_retries + 1, "wait_s": round(delay, 3)},
        )
        return delay


def _not_retried(message: str) -> stripe.APIConnectionError:
    """A connection error stripe-python does not retry: the time budget is used up."""
    error: stripe.APIConnectionError = stripe.APIConnectionError(  # type: ignore[no-untyped-call]
        message, should_retry=False
    )
    return error
