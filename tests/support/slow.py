"""A remote slower than the lease, on a fake clock: for the fencing and deadline tests.

`FakeClock` is the one clock of a test (the provisioner's, the Zentitle2 client's and its
`sleep`): time passes only when something sleeps or a request takes time, and actions
scheduled with `at` run, in the thread that moved the clock, once it passes their moment
(a redelivery "at 125 s" runs inside the first worker's sleep). `SlowRemote` wraps the
Zentitle2 emulator's transport: every request takes `latency` seconds, a 429 asks for
`retry_after` seconds, chosen answers arrive late and chosen bodies trickle in.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import httpx

__all__ = ["FakeClock", "SlowRemote", "Trickle"]


class FakeClock:
    """Unix seconds that move only when told; `at(moment, action)` schedules an action."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start
        self.start = self.now
        self._alarms: list[tuple[float, Callable[[], object]]] = []

    def __call__(self) -> float:
        return self.now

    def elapsed(self) -> float:
        return self.now - self.start

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        self._ring()

    def at(self, seconds_after_start: float, action: Callable[[], object]) -> None:
        """Run `action` once the clock reaches `start + seconds_after_start`."""
        self._alarms.append((self.start + seconds_after_start, action))

    def run_until(self, seconds_after_start: float) -> None:
        """Move to `start + seconds_after_start` (if not past it) and run what is due."""
        self.advance(self.start + seconds_after_start - self.now)

    def _ring(self) -> None:
        while True:
            due = [alarm for alarm in self._alarms if alarm[0] <= self.now]
            if not due:
                return
            alarm = min(due, key=lambda a: a[0])
            self._alarms.remove(alarm)
            alarm[1]()


class Trickle(httpx.SyncByteStream):
    """A body that arrives `chunk` bytes at a time, each `per_chunk` seconds apart: every
    read is quicker than a read timeout, the whole far slower."""

    def __init__(self, body: bytes, clock: FakeClock, *, chunk: int, per_chunk: float) -> None:
        self.body, self.clock, self.chunk, self.per_chunk = body, clock, chunk, per_chunk

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.body), self.chunk):
            self.clock.advance(self.per_chunk)
            yield self.body[start : start + self.chunk]


class SlowRemote(httpx.BaseTransport):
    """`inner` (an emulator's transport) made slow on `clock`.

    Each request travels `latency` seconds before it arrives; a 429 answer carries
    `Retry-After: retry_after`; `answer_late` delays one matching answer after the work
    was done; `trickle` makes one matching answer's body trickle in.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        clock: FakeClock,
        *,
        latency: float = 0.0,
        retry_after: float | None = None,
    ) -> None:
        self.inner, self.clock, self.latency, self.retry_after = inner, clock, latency, retry_after
        self._late: list[tuple[str, re.Pattern[str], float]] = []
        self._trickles: list[tuple[str, re.Pattern[str], float]] = []

    def answer_late(self, method: str, path_regex: str, seconds: float) -> None:
        """The next matching request is served, but its answer arrives `seconds` later."""
        self._late.append((method, re.compile(path_regex), seconds))

    def trickle(self, method: str, path_regex: str, seconds: float) -> None:
        """The next matching answer's body arrives over `seconds`, in 1 s steps."""
        self._trickles.append((method, re.compile(path_regex), seconds))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.clock.advance(self.latency)
        response = self.inner.handle_request(request)
        late = _matching(self._late, request)
        if late is not None:
            self._late.remove(late)
            self.clock.advance(late[2])
        if response.status_code == 429 and self.retry_after is not None:
            response.headers["Retry-After"] = str(int(self.retry_after))
        trickle = _matching(self._trickles, request)
        if trickle is None:
            return response
        self._trickles.remove(trickle)
        body = response.read()
        steps = max(int(trickle[2]), 1)
        stream = Trickle(body, self.clock, chunk=max(len(body) // steps, 1), per_chunk=1.0)
        return httpx.Response(response.status_code, headers=response.headers, stream=stream)


def _matching(
    rules: list[tuple[str, re.Pattern[str], float]], request: httpx.Request
) -> tuple[str, re.Pattern[str], float] | None:
    return next(
        (rule for rule in rules if rule[0] == request.method and rule[1].search(request.url.path)),
        None,
    )
