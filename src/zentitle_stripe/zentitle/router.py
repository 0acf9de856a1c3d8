"""Which handlers a Zentitle2 webhook reaches, by event code (after gidgethub's `Router`).

[`Provisioner.on_zentitle`][zentitle_stripe.Provisioner.on_zentitle] registers on the
provisioner's router; a router of your own can be filled at import time, away from the
wiring, and handed over with [`Router.include`][zentitle_stripe.zentitle.router.Router.include].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..responses import Outcome, OutcomeKind
from .webhooks import ZentitleEvent

__all__ = ["ANY", "Router", "ZentitleHandler"]

ANY = "*"
"""The event code whose handlers see every event, after the code's own handlers."""

E = TypeVar("E", bound=ZentitleEvent)

ZentitleHandler = Callable[[Any], None]
"""A function called with a typed
[`ZentitleEvent`][zentitle_stripe.zentitle.webhooks.ZentitleEvent]."""


class Router:
    """Zentitle2 event codes to handlers, in registration order.

    A code may have several handlers; all run, in order, for each event. They run
    once per `eventId`: the ledger acknowledges duplicates without calling them.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[ZentitleHandler]] = {}

    def add(self, event_code: str, handler: ZentitleHandler) -> None:
        """Call `handler` for every event with `event_code` (`"*"` for all)."""
        self._handlers.setdefault(event_code, []).append(handler)

    def register(self, event_code: str) -> Callable[[Callable[[E], None]], Callable[[E], None]]:
        """[`add`][zentitle_stripe.zentitle.router.Router.add] as a decorator; the function
        is returned unchanged.

        ```python
        @router.register("entitlement.group.created")
        def send_activation_email(event: EntitlementGroupCreated) -> None: ...
        ```
        """

        def decorator(handler: Callable[[E], None]) -> Callable[[E], None]:
            self.add(event_code, handler)
            return handler

        return decorator

    def include(self, other: Router) -> None:
        """Add every handler of `other` after this router's own, code by code."""
        for event_code, handlers in other._handlers.items():
            for handler in handlers:
                self.add(event_code, handler)

    def handlers_for(self, event_code: str) -> list[ZentitleHandler]:
        """The handlers an event with `event_code` reaches: its own, then the catch-all."""
        return [*self._handlers.get(event_code, ()), *self._handlers.get(ANY, ())]

    def unreplayable(self, event: ZentitleEvent) -> str | None:
        """Why replaying `event` through this router would do nothing (no handler sees
        its code: e.g. a process without the app's registrations), or `None`."""
        if self.handlers_for(event.event_code):
            return None
        return (
            f"not replayed: no handler for {event.event_code} is registered in this process, "
            "so the event is left as it was; replay it where the app registers its handlers "
            "(zentitle-stripe replay --app yourapp.module:provisioner)"
        )

    def dispatch(self, event: ZentitleEvent) -> Outcome:
        """Call every handler for `event`; `ignored` when there is none.

        A handler's exception propagates, so the event is recorded as failed and
        Zentitle2's retry, or `replay`, runs the handlers again.
        """
        handlers = self.handlers_for(event.event_code)
        if not handlers:
            return Outcome.ignored(f"no handler registered for {event.event_code}")
        for handler in handlers:
            handler(event)
        names = ", ".join(getattr(h, "__name__", repr(h)) for h in handlers)
        return Outcome(OutcomeKind.HANDLED, f"{event.event_code} handled by {names}")
