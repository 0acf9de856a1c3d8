"""Closing things once: `Closer` for a set of parts, `ClosingContext` for a `with` block.

`Services` and `Provisioner` share the one shutdown rule (`Closer`); anything with a
`close()` can take the `ClosingContext` mixin instead of writing `__enter__` and
`__exit__` again.
"""

from __future__ import annotations

import abc
import contextlib
import threading
from types import TracebackType

from typing_extensions import Self

__all__ = ["Closer", "ClosingContext"]


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


class ClosingContext(abc.ABC):
    """A `with` block that calls `close()` on the way out, whatever happened inside."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the object holds."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
