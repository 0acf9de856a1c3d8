"""Worker mode: events recorded as `queued` by `handle_event`, processed here.

With `ZENTITLE_STRIPE_MODE=queue` (`processing="queue"`) the webhook endpoint verifies,
records and answers 200 at once, so a renewal storm or a slow Zentitle2 never makes
Stripe wait or retry. [`Worker`][zentitle_stripe.worker.Worker] claims the oldest due
event ([`QueueStorage.claim_queued`][zentitle_stripe.storage.QueueStorage]: `FOR UPDATE
SKIP LOCKED` on PostgreSQL, so workers on any host sharing the database never take the
same event; `BEGIN IMMEDIATE` on SQLite, one host) and processes it with the same flows,
lease, fencing and attempt history as a synchronous delivery. A failure a retry can fix
(503-class) is queued again with exponential backoff; any other stays `failed`, for
`replay`. A Zentitle2 429 sets a shared `not_before` in storage that every worker waits
for before its next event, so the fleet slows down together instead of hammering.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .exceptions import RemoteAPIError
from .ledger import new_owner
from .provisioner import Provisioner, process_queued
from .responses import WebhookResponse
from .storage import EventRecord, QueueStorage

__all__ = ["ZENTITLE_THROTTLE", "Worker"]

logger = logging.getLogger("zentitle_stripe")

ZENTITLE_THROTTLE = "zs:throttle:zentitle"
"""The name of the shared rate limit on calls to Zentitle2."""


class Worker:
    """Drains the queue of one storage, one event at a time, until stopped.

    `max_attempts` bounds the retries of a transient failure; the n-th retry waits
    `backoff * 2**(n-1)` seconds (at most `max_backoff`, at least the server's
    `Retry-After`). `clock` and `sleep` are injectable for tests.
    """

    def __init__(
        self,
        provisioner: Provisioner,
        *,
        batch: int = 100,
        idle_seconds: float = 1.0,
        max_attempts: int = 10,
        backoff: float = 5.0,
        max_backoff: float = 3600.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        storage = provisioner.storage
        if not isinstance(storage, QueueStorage):
            raise TypeError(f"{type(storage).__name__} has no queue (QueueStorage)")
        self.provisioner = provisioner
        self.queue: QueueStorage = storage
        self.batch = batch
        self.idle_seconds = idle_seconds
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.clock = clock or provisioner.clock
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait
        self.processed = 0
        self.retried = 0

    def stop(self) -> None:
        """Stop after the current event (a signal handler may call it)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        """Process events until [`stop`][zentitle_stripe.worker.Worker.stop]."""
        while not self.stopping:
            if self.run_once() == 0:
                self._sleep(self.idle_seconds)

    def run_once(self) -> int:
        """Process up to `batch` due events, then the outcome hooks that are due (a
        failed one after its backoff, at most `max_attempts` times); how many events
        were processed."""
        done = 0
        while done < self.batch and not self.stopping:
            if not self._respect_throttle():
                break
            record = self.queue.claim_queued(
                owner=new_owner(), lease_seconds=self.provisioner.lease_seconds, now=self.clock()
            )
            if record is None:
                break
            self.process(record)
            done += 1
        if not self.stopping:
            self.provisioner.run_due_hooks(max_attempts=self.max_attempts, limit=self.batch)
        return done

    def process(self, record: EventRecord) -> WebhookResponse:
        """Process one claimed event and queue it again if a retry can fix its failure."""
        response, exc = process_queued(self.provisioner, record, started=time.perf_counter())
        self.processed += 1
        if (exc is not None and response.status >= 500) or response.status == 409:
            self._retry(record, response, exc)
        return response

    def _retry(self, record: EventRecord, response: WebhookResponse, exc: Exception | None) -> None:
        now = self.clock()
        hint = _retry_after(response)
        if _is_429(exc):
            self.queue.throttle(ZENTITLE_THROTTLE, until=now + (hint or 1.0))
        if record.attempts >= self.max_attempts:
            logger.error(
                "event %s failed %d times; left failed, for replay",
                record.event_id,
                record.attempts,
            )
            return
        delay = min(self.max_backoff, self.backoff * 2 ** (record.attempts - 1))
        delay = max(delay, hint or 0.0)
        if self.queue.requeue_event(record.event_id, record.source, not_before=now + delay):
            self.retried += 1

    def _respect_throttle(self) -> bool:
        """Wait out the shared rate limit; whether to go on (not stopped meanwhile)."""
        wait = self.queue.throttled_until(ZENTITLE_THROTTLE) - self.clock()
        if wait > 0:
            self._sleep(min(wait, 30.0))
        return not self._stopping.is_set()


def _retry_after(response: WebhookResponse) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _is_429(exc: BaseException | None) -> bool:
    """Whether `exc` or its cause is a 429 of a remote API."""
    while exc is not None:
        if isinstance(exc, RemoteAPIError) and exc.status == 429:
            return True
        exc = exc.__cause__
    return False
