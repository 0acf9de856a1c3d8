"""The fault machinery both emulators share: injected and random faults, late work.

[`FakeService`][zentitle_stripe.testing.FakeService] keeps one `Faults` and asks it, for
every request, which fault (if any) shapes the answer. A `late` fault keeps the request's
work here until it lands: when the test calls
[`complete_late`][zentitle_stripe.testing.FakeService.complete_late], or by itself once
the emulator's clock has passed the fault's `delay`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

import attrs

if TYPE_CHECKING:
    from ._fake import Incoming

__all__ = [
    "AFTER_WORK",
    "DEFAULT_RANDOM_FAULTS",
    "FAULT_KINDS",
    "NETWORK",
    "NO_WORK",
    "Fault",
    "FaultKind",
    "Faults",
    "LateWork",
]

FaultKind = Literal[
    "429",
    "500",
    "502",
    "503",
    "504",
    "timeout",
    "connect",
    "lost_response",
    "late",
    "slow",
    "bad_body",
    "500_after",
    "502_after",
    "503_after",
    "504_after",
]
"""What [`inject_fault`][zentitle_stripe.testing.FakeService.inject_fault] can do.

A status answers with that error before any work; `500_after` and its kin do the work
and then answer that status, as a gateway can after the backend acted. `connect` and
`timeout` fail before any work, `lost_response` does the work and then loses the
answer. `late` loses the answer too (the client times out) but does the work only
later: when the test calls
[`complete_late`][zentitle_stripe.testing.FakeService.complete_late], or once the
emulator's clock has moved `delay` seconds past the request, as a backend that
finishes a request its client gave up on. `slow` is the same in real time: the request
reaches the backend `delay` wall-clock seconds late and is then served normally, so a
client that waits gets a slow answer and one that gives up sooner still sees the work
land afterwards (for runs whose emulator clock stands still). `bad_body` answers 200
with an HTML page. The Stripe emulator's `timeout` is a slow answer instead: it does the
work and holds the answer (see `delay`).
"""
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
DEFAULT_RANDOM_FAULTS = ("429", "502", "503", "504", "timeout", "connect")
"""The kinds [`fail_rate`][zentitle_stripe.testing.FakeService.fail_rate] picks by default."""

AFTER_WORK = frozenset({"500_after", "502_after", "503_after", "504_after"})
"""Kinds that do the work, then answer an error status."""
NO_WORK = frozenset({"timeout", "connect"})
"""Kinds that fail before any work (unless the service holds the answer instead)."""
NETWORK = frozenset({"timeout", "connect", "lost_response", "late"})
"""Kinds that leave the client without an answer."""
_ANYWHERE = re.compile("")


@attrs.define
class Fault:
    """One injected fault: which requests it matches, what it does, how often still."""

    method: str
    pattern: re.Pattern[str]
    kind: str
    remaining: int
    delay: float


@attrs.frozen
class LateWork:
    """A request whose client got no answer and whose work has not landed yet."""

    request: Incoming
    """The request, as received."""
    operation: Any
    """What checks the late answer against the contract (`None` when unchecked)."""
    due: datetime
    """When it lands by itself (the emulator's clock)."""


class Faults:
    """The pending faults of one service. Not locked: the service calls it under its lock."""

    def __init__(self) -> None:
        self.injected: list[Fault] = []
        self.late: list[LateWork] = []
        self._rate = 0.0
        self._kinds: tuple[str, ...] = ()
        self._rng = random.Random(0)
        self._delay = 2.0

    def inject(self, method: str, path_regex: str, kind: str, times: int, delay: float) -> None:
        """Queue a fault for the next `times` matching requests (see `FakeService`)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {sorted(FAULT_KINDS)}")
        self.injected.append(Fault(method.upper(), re.compile(path_regex), kind, times, delay))

    def set_rate(
        self, rate: float, kinds: Iterable[str] | None, seed: int, delay: float = 2.0
    ) -> None:
        """Fail a random `rate` share of requests with one of `kinds` (`delay` as in
        `inject`)."""
        chosen = tuple(kinds) if kinds is not None else DEFAULT_RANDOM_FAULTS
        if not set(chosen) <= FAULT_KINDS or not 0 <= rate <= 1 or not 0 <= delay < 3600:
            raise ValueError(
                f"rate must be in [0, 1], delay in [0, 3600) and kinds among {sorted(FAULT_KINDS)}"
            )
        self._rate, self._kinds, self._rng = rate, chosen, random.Random(seed)
        self._delay = delay

    def clear(self) -> None:
        """Drop every injected fault and stop random failures (late work stays pending)."""
        self.injected.clear()
        self._rate = 0.0

    def take(self, method: str, path: str) -> Fault | None:
        """The fault for this request, if any: injected ones in order, then random ones."""
        for fault in self.injected:
            if fault.method in ("*", method) and fault.pattern.search(path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.injected.remove(fault)
                return fault
        if self._rate and self._rng.random() < self._rate:
            return Fault("*", _ANYWHERE, self._rng.choice(self._kinds), 1, self._delay)
        return None

    def hold(self, request: Incoming, operation: Any, fault: Fault, now: datetime) -> None:
        """Keep a `late` request's work until it lands."""
        self.late.append(LateWork(request, operation, now + timedelta(seconds=fault.delay)))

    def landing(self, now: datetime | None) -> list[LateWork]:
        """Take the late work due by `now` (all of it when `now` is `None`), oldest first."""
        due: list[LateWork] = []
        kept: list[LateWork] = []
        for work in self.late:
            (due if now is None or work.due <= now else kept).append(work)
        self.late = kept
        return due
