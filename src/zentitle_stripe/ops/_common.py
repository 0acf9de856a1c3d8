"""What several operations share: the [`Check`][zentitle_stripe.ops.Check] verdict that
`doctor` reports and the progress plumbing every long-running operation uses."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import attrs

Progress = Callable[[str], None]
"""Receives one short progress line at a time (the CLI prints them to stderr)."""


def quiet(_: str) -> None:
    """The default progress sink."""


def every(progress: Progress, done: int, total: int, what: str, step: int = 50) -> None:
    """Report `done` of `total` every `step` items and at the end, not on every item."""
    if done == total or done % step == 0:
        progress(f"checked {done}/{total} {what}")


def iso(timestamp: float | None) -> str | None:
    """A Unix time as an ISO 8601 UTC string for JSON output; `None` for none."""
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


class CheckStatus(str, enum.Enum):
    """The verdict of one `doctor` check."""

    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    WARN = "WARN"
    """Works, but probably not as intended."""
    FAIL = "FAIL"
    """Payments will not become licences until this is fixed."""


@attrs.frozen
class Check:
    """One `doctor` finding: what was checked, what was found and how to fix it."""

    name: str
    status: CheckStatus
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
        }
