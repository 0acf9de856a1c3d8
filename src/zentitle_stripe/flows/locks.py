"""The named lock in storage that serialises the remote calls of one subscription.

Locks hold across threads and processes sharing the storage: a payment and a
cancellation of one subscription (or two customer creations for one Stripe customer)
never interleave their calls to Stripe and Zentitle2. A lock taken while an attempt runs
under a [`Fence`][zentitle_stripe.fencing.Fence] joins its leases: renewed as the work
proceeds and checked before every write, so a holder that stalled past the lease stops
instead of writing beside the worker that took the lock over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..exceptions import TransientError
from ..fencing import current_fence
from ..storage import Storage

__all__ = ["storage_lock"]


@contextmanager
def storage_lock(
    storage: Storage,
    name: str,
    owner: str,
    *,
    lease_seconds: float,
    lock_wait: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> Iterator[None]:
    """Hold the lock `name` for `owner`, waiting up to `lock_wait` seconds for it.

    The lease (`lease_seconds`, measured by `clock`) frees a lock whose holder died;
    a lock still busy after the wait raises a `TransientError`, so the event is retried.
    The wait ends after `lock_wait` seconds of real time or of `sleep` (whichever comes
    first), so a test's instant `sleep` does not spin for the whole wait.
    """
    deadline = time.monotonic() + lock_wait
    delay, slept = 0.01, 0.0
    while True:
        now = clock()
        if storage.acquire_lock(name, owner=owner, lease_seconds=lease_seconds, now=now):
            break
        if time.monotonic() >= deadline or slept >= lock_wait:
            raise TransientError(
                f"another event holds the lock on {name}; retry later", retry_after=5
            )
        sleep(delay)
        slept += delay
        delay = min(delay * 2, 0.25)
    fence = current_fence()
    if fence is not None:
        fence.hold_lock(storage, name, expires=now + lease_seconds)
    try:
        yield
    finally:
        if fence is not None:
            fence.drop_lock(name)
        storage.release_lock(name, owner=owner)
