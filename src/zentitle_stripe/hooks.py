"""Outcome hooks: your code, called once per licence outcome, after it is recorded done.

```python
@provisioner.on_outcome("provisioned")
def send_welcome(outcome: LicenceOutcome) -> None:
    mailer.send(outcome.stripe_customer_id, codes=outcome.activation_codes)
```

A handler gets a frozen [`LicenceOutcome`][zentitle_stripe.hooks.LicenceOutcome] built
from what the flow already read (storage's subscription state, the group as last read),
so a hook costs no remote call. Each handler's completion is recorded per event (see
[`HookStorage`][zentitle_stripe.storage.HookStorage]): a retry, a redelivery or a replay
runs only the handlers that have not succeeded. The rules and the HTTP answers are in
`docs/hooks.md`; the runner is [`_hook_runner`][zentitle_stripe._hook_runner].
"""

from __future__ import annotations

import contextvars
import inspect
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs

from .responses import OutcomeKind

if TYPE_CHECKING:
    from .storage import SubscriptionState
    from .zentitle.models import EntitlementGroup

__all__ = [
    "LICENCE_KINDS",
    "HookRegistry",
    "LicenceOutcome",
    "LicensedEntitlement",
    "OutcomeHandler",
    "handler_name",
]

LICENCE_KINDS: frozenset[OutcomeKind] = frozenset(OutcomeKind) - {
    OutcomeKind.HANDLED,
    OutcomeKind.IGNORED,
    OutcomeKind.DUPLICATE,
    OutcomeKind.QUEUED,
    OutcomeKind.FAILED,
}
"""The kinds a hook can subscribe to: every outcome that changed licences (provisioned,
renewed, updated, revoked and the lifecycle kinds), never an answer that changed none."""


@attrs.frozen
class LicensedEntitlement:
    """One entitlement of the group, as the flow last read it."""

    id: str
    sku: str | None = None


@attrs.frozen
class LicenceOutcome:
    """What one Stripe event did to a subscription's licences.

    Built without a remote call: ids from the event and from storage's subscription
    state, `entitlements` from the group as the flow last read it (one added by that
    very flow may be missing: read the group by `group_id` if you need it exact).
    Fields the flow never saw are `None` or empty.
    """

    event_id: str
    event_type: str
    kind: OutcomeKind
    message: str
    """The outcome's reason, as answered to Stripe and logged."""
    subscription_id: str | None = None
    stripe_customer_id: str | None = None
    zentitle_customer_id: str | None = None
    group_id: str | None = None
    entitlements: tuple[LicensedEntitlement, ...] = ()
    """The group's entitlements as last read; empty after a first payment whose group
    needed no second read (Zentitle2's create answer lists none): `skus` has them."""
    skus: tuple[str, ...] = ()
    """The SKUs of the group (of `entitlements`, else of the lines just licensed),
    without repeats, in order."""
    activation_codes: tuple[str, ...] = ()
    event_created: int | None = None
    """The event's `created` (unix seconds): order outcomes by it, not by arrival."""

    @property
    def entitlement_ids(self) -> tuple[str, ...]:
        return tuple(e.id for e in self.entitlements)

    def idempotency_key(self, handler: str) -> str:
        """A key unique to this event and handler: pass it to a mailer or an API that
        deduplicates, so even a run repeated after a crash mid-handler sends once."""
        return f"{self.event_id}:{handler}"

    def to_json(self) -> str:
        data = attrs.asdict(self)
        data["kind"] = self.kind.value
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LicenceOutcome:
        data: dict[str, Any] = json.loads(text)
        data["kind"] = OutcomeKind(data["kind"])
        data["entitlements"] = tuple(LicensedEntitlement(**e) for e in data["entitlements"])
        data["activation_codes"] = tuple(data["activation_codes"])
        data["skus"] = tuple(data["skus"])
        return cls(**data)


OutcomeHandler = Callable[[LicenceOutcome], None]
"""A hook: called with the outcome; raising marks its run failed (to run again)."""


def handler_name(handler: Callable[..., Any]) -> str:
    """The stable name a run is recorded under: `module.qualname`.

    Renaming or moving a function renames its runs: a run recorded under the old name is
    left pending (and logged). Pass `name=` to `on_outcome` to keep a name across a move.
    """
    module = getattr(handler, "__module__", None) or "?"
    qualname = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    return f"{module}.{qualname}"


def _kinds(kinds: Iterable[str | OutcomeKind]) -> frozenset[OutcomeKind]:
    chosen: set[OutcomeKind] = set()
    for kind in kinds:
        if kind == "*":
            chosen |= LICENCE_KINDS
            continue
        try:
            value = OutcomeKind(kind)
        except ValueError:
            value = None
        if value not in LICENCE_KINDS:
            known = ", ".join(sorted(k.value for k in LICENCE_KINDS))
            raise ValueError(f"on_outcome: {kind!r} is not a licence outcome; use {known} or '*'")
        assert value is not None
        chosen.add(value)
    if not chosen:
        raise ValueError("on_outcome needs at least one kind (or '*' for all)")
    return frozenset(chosen)


@attrs.define
class _Registration:
    name: str
    kinds: frozenset[OutcomeKind]
    handler: OutcomeHandler


class HookRegistry:
    """The registered hooks, in registration order (the order a run calls them)."""

    def __init__(self) -> None:
        self._registered: dict[str, _Registration] = {}

    def register(
        self, *kinds: str | OutcomeKind, name: str | None = None
    ) -> Callable[[OutcomeHandler], OutcomeHandler]:
        """A decorator registering a handler for `kinds` (`"*"`: every licence kind)."""
        chosen = _kinds(kinds)

        def decorate(handler: OutcomeHandler) -> OutcomeHandler:
            if inspect.iscoroutinefunction(handler):
                raise TypeError(
                    "on_outcome: hooks are called in the webhook's (or the worker's) thread "
                    "and must be plain functions; an async one would never be awaited"
                )
            stable = name or handler_name(handler)
            if not name and "<lambda>" in stable:
                raise ValueError("on_outcome: a lambda has no stable name; pass name=")
            if stable in self._registered:
                raise ValueError(
                    f"on_outcome: a handler named {stable!r} is registered already; its runs "
                    "are recorded by name, so names must be unique (pass name=)"
                )
            self._registered[stable] = _Registration(stable, chosen, handler)
            return handler

        return decorate

    def names_for(self, kind: str | None) -> tuple[str, ...]:
        """The handlers of an outcome kind, in registration order."""
        return tuple(r.name for r in self._registered.values() if kind in r.kinds)

    def get(self, name: str) -> OutcomeHandler | None:
        registration = self._registered.get(name)
        return None if registration is None else registration.handler

    def __bool__(self) -> bool:
        return bool(self._registered)


# -- what the flows saw ------------------------------------------------------------------


@attrs.define
class Observed:
    """The subscription state and the group a flow last read or stored, for one attempt."""

    state: SubscriptionState | None = None
    group: EntitlementGroup | None = None
    skus: tuple[str, ...] = ()


_OBSERVED: contextvars.ContextVar[Observed | None] = contextvars.ContextVar(
    "zentitle_stripe_observed", default=None
)


@contextmanager
def observing() -> Iterator[Observed]:
    """Collect what the flows run inside the block read or store (no extra calls)."""
    observed = Observed()
    token = _OBSERVED.set(observed)
    try:
        yield observed
    finally:
        _OBSERVED.reset(token)


def observe_state(state: SubscriptionState) -> None:
    """A flow read or stored `state` (called by `FlowContext`)."""
    observed = _OBSERVED.get()
    if observed is not None:
        observed.state = state


def observe_skus(skus: Iterable[str]) -> None:
    """A flow granted these SKUs (the first payment: a created group lists none)."""
    observed = _OBSERVED.get()
    if observed is not None:
        observed.skus = tuple(dict.fromkeys(skus))


def observe_group(group: EntitlementGroup | None) -> None:
    """A flow read or created `group` (called by `FlowContext` and the first payment)."""
    observed = _OBSERVED.get()
    if observed is None or group is None:
        return
    known = observed.group
    if known is None or known.id != group.id or group.entitlements or not known.entitlements:
        observed.group = group  # a later read without entitlements keeps the earlier ones
