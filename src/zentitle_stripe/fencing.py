"""Fencing: an attempt writes only while it holds its leases, and its remote calls end in time.

An event is claimed for a lease, and the flows take storage locks for leases too. A worker
that stalls past a lease (Zentitle2 answering `429 Retry-After: 30` again and again, a
response trickling in) must not go on writing once another worker has taken over. So one
[`Fence`][zentitle_stripe.fencing.Fence] per processing attempt:

- knows every lease the attempt holds (the claim, each lock), renews each one in storage
  once less than half of it is left, and raises
  [`LeaseLost`][zentitle_stripe.exceptions.LeaseLost] when storage says another worker
  holds it now; [`check`][zentitle_stripe.fencing.Fence.check] runs before every remote
  call (by the clients) and every state write (by the flows);
- bounds the attempt's remote calls by a deadline, three quarters of the lease after the
  claim (`BUDGET_SHARE`), which the clients honour across retries: no `Retry-After` or
  backoff is slept past it, no request is sent after it, each request's timeouts are cut
  to the time left and a body still arriving at the deadline is cut off
  ([`read_within`][zentitle_stripe.fencing.read_within]).

Every lease is taken after the claim and lasts `lease_seconds`, so each outlives the
deadline by at least the remaining quarter: the storage writes after the last remote
call still happen under the leases. The ledger makes the fence current for the attempt (a
context variable), so the flows and clients find it without any signature changing; code
run outside the ledger (operations commands) has none and is unbounded, as before.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import httpx

from .exceptions import LeaseLost

if TYPE_CHECKING:
    from .storage import Storage

__all__ = [
    "BUDGET_SHARE",
    "Fence",
    "OutOfTime",
    "budgeted_timeout",
    "check_fence",
    "current_fence",
    "read_within",
]

BUDGET_SHARE = 0.75
"""The share of the lease that one attempt's remote calls may use, from the claim on; the
rest is the margin for the storage writes that follow the last call."""

_current: contextvars.ContextVar[Fence | None] = contextvars.ContextVar(
    "zentitle_stripe_fence", default=None
)

_Key = tuple[str, str, str]
"""`("event", source, event_id)` or `("lock", name, "")`."""


class OutOfTime(httpx.ReadTimeout):
    """A response body still arriving when the attempt's time budget ran out."""


class Fence:
    """The leases one processing attempt holds, and the deadline of its remote calls.

    `started` is when the claim was taken (by `clock`, the storage clock); the remote
    calls must end `budget` seconds later (default: `BUDGET_SHARE` of `lease_seconds`).
    Used from the one thread that runs the attempt.
    """

    def __init__(
        self,
        *,
        owner: str,
        lease_seconds: float,
        clock: Callable[[], float],
        started: float,
        budget: float | None = None,
    ) -> None:
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.budget = lease_seconds * BUDGET_SHARE if budget is None else budget
        self.deadline = started + self.budget
        self._held: dict[_Key, tuple[Storage, float]] = {}

    def __repr__(self) -> str:
        held = ", ".join(name for _, name, _ in self._held)
        return f"Fence(owner={self.owner!r}, holds=[{held}], budget={self.budget:g})"

    # -- what it holds ------------------------------------------------------------------

    def hold_claim(self, storage: Storage, event_id: str, source: str, *, expires: float) -> None:
        """Register the event's claim, leased until `expires`."""
        self._held["event", source, event_id] = (storage, expires)

    def hold_lock(self, storage: Storage, name: str, *, expires: float) -> None:
        """Register a storage lock the attempt took, leased until `expires`."""
        self._held["lock", name, ""] = (storage, expires)

    def drop_lock(self, name: str) -> None:
        """Forget a lock the attempt released."""
        self._held.pop(("lock", name, ""), None)

    def holds(self, name: str) -> bool:
        """Whether the attempt holds the lock `name` (for tests and logs)."""
        return ("lock", name, "") in self._held

    # -- checks ---------------------------------------------------------------------------

    def remaining(self) -> float:
        """Seconds left for remote calls (negative once the deadline passed)."""
        return self.deadline - self.clock()

    def check(self, *, strict: bool = False) -> None:
        """Make sure every lease is still this attempt's, renewing those half used up.

        A lease with more than half of it left needs no storage call: no one may take it
        before it expires. `strict` renews every lease in storage all the same: right
        before a write that cannot be repeated safely (a create, a renew), so a process
        paused between a local check and the write cannot send it after another worker
        took over. Raises [`LeaseLost`][zentitle_stripe.exceptions.LeaseLost] when
        storage says another worker took one over (or it could not be renewed and has
        expired), so the caller writes nothing more.
        """
        now = self.clock()
        for key, (storage, expires) in list(self._held.items()):
            if not strict and expires - now > self.lease_seconds / 2:
                continue
            if _cannot_extend(storage, key):
                if expires > now:
                    continue  # an older backend: still ours until it expires
                raise _lost(key, self.lease_seconds)
            if not self._extend(storage, key, now):
                raise _lost(key, self.lease_seconds)
            self._held[key] = (storage, now + self.lease_seconds)

    def _extend(self, storage: Storage, key: _Key, now: float) -> bool:
        kind, name, event_id = key
        if kind == "event":
            return storage.extend_claim(
                event_id, name, owner=self.owner, lease_seconds=self.lease_seconds, now=now
            )
        return storage.extend_lock(
            name, owner=self.owner, lease_seconds=self.lease_seconds, now=now
        )

    @contextmanager
    def active(self) -> Iterator[Fence]:
        """Make this the current fence (the one clients and flows check) for the block."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)


def _cannot_extend(storage: Storage, key: _Key) -> bool:
    """A backend written before leases could be renewed (no `extend_*` method)."""
    method = "extend_claim" if key[0] == "event" else "extend_lock"
    return not callable(getattr(storage, method, None))


def _lost(key: _Key, lease_seconds: float) -> LeaseLost:
    kind, name, event_id = key
    what = f"its claim on {name} event {event_id}" if kind == "event" else f"the lock {name}"
    return LeaseLost(
        f"this worker no longer holds {what}: it took longer than the {lease_seconds:g} s "
        "lease (ZENTITLE_STRIPE_LEASE_SECONDS) and another worker took over, so it "
        "stopped before writing anything more; the other worker finishes the work",
        retry_after=30,
    )


def current_fence() -> Fence | None:
    """The fence of the attempt running in this context, if any."""
    return _current.get()


def check_fence() -> None:
    """[`Fence.check`][zentitle_stripe.fencing.Fence.check] the current fence, if any."""
    fence = _current.get()
    if fence is not None:
        fence.check()


def read_within(response: httpx.Response, fence: Fence | None) -> httpx.Response:
    """`response` (sent with `stream=True`) with its body read before the fence's deadline.

    httpx's read timeout bounds each read, not the body: one that trickles a byte per
    second never times out. The chunks are read one by one and the deadline checked
    between them; once it has passed, [`OutOfTime`][zentitle_stripe.fencing.OutOfTime]
    (an `httpx.ReadTimeout`) is raised and the response closed.
    """
    if fence is None or response.is_stream_consumed:
        try:
            response.read()
        finally:
            response.close()
        return response
    chunks: list[bytes] = []
    try:
        for chunk in response.iter_raw():
            chunks.append(chunk)
            if fence.remaining() <= 0:
                raise OutOfTime(
                    f"the answer was still arriving when this event's {fence.budget:g} s "
                    "time budget ran out",
                    request=response.request,
                )
    finally:
        response.close()
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        content=b"".join(chunks),  # still encoded: the new response decodes it once
        request=response.request,
        extensions=response.extensions,
    )


def budgeted_timeout(timeout: httpx.Timeout, fence: Fence | None) -> httpx.Timeout:
    """`timeout` with each part cut to the time the fence has left (at least 1 ms)."""
    if fence is None:
        return timeout
    left = max(fence.remaining(), 0.001)

    def cut(value: float | None) -> float:
        return left if value is None else min(value, left)

    return httpx.Timeout(
        connect=cut(timeout.connect),
        read=cut(timeout.read),
        write=cut(timeout.write),
        pool=cut(timeout.pool),
    )
