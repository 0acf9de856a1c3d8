"""Close a set of parts once each: the one shutdown rule Services and Provisioner share."""

from __future__ import annotations

import contextlib
import threading

__all__ = ["Closer"]


class Closer:
    """Closes each distinct part that has a `close()` once, in the order given.

    Idempotent and thread-safe. Every part is closed even when an earlier one fails;
    the failure is raised once all were tried (a shutdown must not leak the rest).
    """

    def __init__(self, *parts: object) -> None:
        unique: dict[int, object] = {}
        for part in parts:
            if part is not None:
                unique.setdefault(id(part), part)
        self._parts = tuple(unique.values())
        self._lock = threading.Lock()
        self.closed = False

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
        with contextlib.ExitStack() as stack:
            for part in reversed(self._parts):  # the stack runs them last-in, first-out
                close = getattr(part, "close", None)
                if callable(close):
                    stack.callback(close)
