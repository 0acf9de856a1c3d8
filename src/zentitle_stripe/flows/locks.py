"""The named lock in storage that serialises the remote calls of one subscription.

Locks hold across threads and processes sharing the storage: a payment and a
cancellation of one subscription (or two customer creations for one Stripe customer)
never interleave their calls to Stripe and Zentitle2.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..exceptions import TransientError
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
    """
    deadline = time.monotonic() + lock_wait
    delay = 0.01
    while not storage.acquire_lock(name, owner=owner, lease_seconds=lease_seconds, now=clock()):
        if time.monotonic() >= deadline:
            raise TransientError(
                f"another event holds the lock on {name}; retry later", retry_after=5
            )
        sleep(delay)
        delay = min(delay * 2, 0.25)
    try:
        yield
    finally:
        storage.release_lock(name, owner=owner)
