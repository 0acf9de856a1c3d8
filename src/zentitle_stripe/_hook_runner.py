"""How outcome hooks run: recorded before the event is finished, run after, answered.

The [`Ledger`][zentitle_stripe.ledger.Ledger] calls
[`HookRunner.record`][zentitle_stripe._hook_runner.HookRunner.record] while it still holds
the event's claim (the outcome and one pending run per handler, in one write), finishes
the event `done`, then
[`HookRunner.answer`][zentitle_stripe._hook_runner.HookRunner.answer] runs each handler
under its own claim. A handler that raises leaves the event done (its licence work is
confirmed) and its run `failed`: the answer is 500, so Stripe redelivers, and a
redelivery of a done event with unfinished runs runs them (and only them) instead of
answering a plain duplicate. Worker mode runs them in a pass of its own
([`run_due`][zentitle_stripe._hook_runner.HookRunner.run_due]).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .events import parse_event
from .exceptions import ConfigurationError, ZentitleStripeError
from .hooks import (
    LICENCE_KINDS,
    HookRegistry,
    LicenceOutcome,
    LicensedEntitlement,
    Observed,
    OutcomeHandler,
)
from .ledger import Ledger, log_answer, new_owner
from .responses import Outcome, OutcomeKind, WebhookResponse
from .storage import (
    EventRecord,
    EventStatus,
    HookRun,
    HookStorage,
    NewEvent,
    Storage,
    StoredOutcome,
)

__all__ = ["HookRunner", "OutcomeHooks"]

logger = logging.getLogger("zentitle_stripe.hooks")

_MAY_HAVE_HOOKS = frozenset(kind.value for kind in (*LICENCE_KINDS, OutcomeKind.DUPLICATE))
"""Recorded outcomes of events that may have hooks: a licence kind, or `duplicate` (a
replay by a process without the hooks finishes an event as that)."""
HOOK_FAILURE_STATUS = 500
"""The answer when a hook failed: Stripe redelivers, and the redelivery runs it again."""
HOOK_BUSY_STATUS = 409
"""The answer when a hook is held by another delivery (as for an event in progress)."""


@attrs.define
class Ran:
    """What a pass over an event's unfinished hooks left unfinished."""

    failed: list[str] = attrs.field(factory=list)
    busy: list[str] = attrs.field(factory=list)


class HookRunner:
    """Records, runs and answers the hooks of one provisioner (see the module docstring).

    A failed run is due again for a worker after `backoff * 2**(attempts-1)` seconds (at
    most `max_backoff`); a redelivery or a replay does not wait.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        lease_seconds: float,
        clock: Callable[[], float],
        backoff: float = 30.0,
        max_backoff: float = 3600.0,
    ) -> None:
        if not isinstance(storage, HookStorage):
            raise ConfigurationError(
                f"outcome hooks need a storage that records each hook's completion; "
                f"{type(storage).__name__} has no HookStorage methods (see docs/hooks.md)"
            )
        self.events = storage
        self.storage: HookStorage = storage
        self.registry = HookRegistry()
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.backoff = backoff
        self.max_backoff = max_backoff

    def __bool__(self) -> bool:
        return bool(self.registry)

    def record(
        self, new: NewEvent, outcome: Outcome, seen: Observed
    ) -> tuple[Outcome, StoredOutcome | None]:
        """Record `outcome` for its hooks (claim still held); the outcome to finish with.

        A `duplicate` from a retry whose earlier attempt recorded an outcome and then
        crashed finishes as that outcome, so its hooks still run.
        """
        names = self.registry.names_for(outcome.kind.value)
        if outcome.kind in LICENCE_KINDS and names:
            licence = licence_outcome(new, outcome, seen)
            now = self.clock()
            stored = self.storage.record_outcome(
                new.source,
                new.event_id,
                kind=outcome.kind.value,
                data=licence.to_json(),
                handlers=names,
                now=now,
                not_before=now + self.lease_seconds,
            )
            if stored.kind != outcome.kind.value:
                logger.warning(
                    "event %s is %s now, but its hooks ran for %s, recorded first: "
                    "hooks run once per event",
                    new.event_id,
                    outcome.kind.value,
                    stored.kind,
                )
            return outcome, stored
        if outcome.kind is OutcomeKind.DUPLICATE:
            earlier = self.storage.get_outcome(new.event_id, new.source)
            if earlier is not None:
                first = LicenceOutcome.from_json(earlier.data)
                return Outcome(first.kind, first.message), earlier
        return outcome, None

    def answer(
        self, new: NewEvent, outcome: Outcome, stored: StoredOutcome, started: float
    ) -> WebhookResponse:
        """Run the unfinished hooks of a done event and answer (500 if one failed)."""
        return self._answered(new, outcome, self.run_pending(stored), started)

    def redelivered(
        self, new: NewEvent, record: EventRecord, started: float
    ) -> WebhookResponse | None:
        """A redelivery of a done event: run its unfinished hooks and answer; `None`
        when it has none (a plain duplicate)."""
        if record.outcome not in _MAY_HAVE_HOOKS:
            return None
        stored = self.storage.get_outcome(new.event_id, new.source)
        if stored is None or not stored.unfinished():
            return None
        earlier = f"{record.outcome}: {record.detail}"
        outcome = Outcome(OutcomeKind.DUPLICATE, f"already processed ({earlier})")
        return self._answered(new, outcome, self.run_pending(stored), started)

    def run_pending(
        self, stored: StoredOutcome, only: Callable[[HookRun], bool] | None = None
    ) -> Ran:
        """Run each unfinished hook of `stored` that no one else holds: which failed
        (a storage error counts as a failure) and which were held elsewhere."""
        outcome = LicenceOutcome.from_json(stored.data)
        ran = Ran()
        for run in stored.unfinished():
            if only is not None and not only(run):
                continue
            handler = self.registry.get(run.handler)
            if handler is None:
                logger.warning(
                    "event %s has a %s outcome hook %s that is not registered here: left %s",
                    stored.event_id,
                    stored.kind,
                    run.handler,
                    run.status.value,
                )
                continue
            try:
                result = self._run_one(stored, run, handler, outcome)
            except ZentitleStripeError:
                logger.exception("could not record outcome hook %s", run.handler)
                result = "failed"
            if result != "done":
                (ran.failed if result == "failed" else ran.busy).append(run.handler)
        return ran

    def run_due(self, *, max_attempts: int, limit: int) -> int:
        """Worker mode: run the hook runs that are due (pending past the inline runner's
        lease, failed and past their backoff, or abandoned); how many events had one."""
        now = self.clock()
        events = self.storage.due_hooks(now=now, max_attempts=max_attempts, limit=limit)
        for source, event_id in events:
            self.run_event(event_id, source, due_at=now, max_attempts=max_attempts)
        return len(events)

    def run_event(
        self,
        event_id: str,
        source: str,
        *,
        due_at: float | None = None,
        max_attempts: int | None = None,
    ) -> StoredOutcome | None:
        """Run the unfinished hooks of a done event; its outcome and runs afterwards."""
        record = self.events.get_event(event_id, source)
        stored = self.storage.get_outcome(event_id, source)
        if record is None or record.status is not EventStatus.DONE or stored is None:
            return stored  # hooks run only once the event is done; its retry runs them

        def due(run: HookRun) -> bool:
            in_time = due_at is None or (run.lease_expires or 0.0) <= due_at
            return in_time and (max_attempts is None or run.attempts < max_attempts)

        self.run_pending(stored, due)
        return self.storage.get_outcome(event_id, source)

    def _run_one(
        self, stored: StoredOutcome, run: HookRun, handler: OutcomeHandler, outcome: LicenceOutcome
    ) -> str:
        owner = new_owner()
        key = (stored.source, stored.event_id, run.handler)
        now = self.clock()
        if not self.storage.claim_hook(
            *key, owner=owner, lease_seconds=self.lease_seconds, now=now
        ):
            return "busy"  # running elsewhere (or done meanwhile): ask to retry later
        try:
            handler(outcome)
        except Exception as exc:
            logger.exception(
                "outcome hook %s failed for %s event %s (%s); the licence work stays done "
                "and only this hook runs again",
                run.handler,
                stored.source,
                stored.event_id,
                stored.kind,
            )
            delay = min(self.max_backoff, self.backoff * 2**run.attempts)
            error = f"{type(exc).__name__}: {exc}"
            self._finish(key, owner, error, self.clock() + delay)
            return "failed"
        self._finish(key, owner, None, None)
        duration_ms = round((self.clock() - now) * 1000, 2)
        logger.info(
            "outcome hook %s ran for %s event %s (%s) in %.1f ms",
            run.handler,
            stored.source,
            stored.event_id,
            stored.kind,
            duration_ms,
            extra={
                "source": stored.source,
                "event_id": stored.event_id,
                "outcome": stored.kind,
                "duration_ms": duration_ms,
                "detail": f"outcome hook {run.handler} ran",
            },
        )
        return "done"

    def _finish(
        self, key: tuple[str, str, str], owner: str, error: str | None, retry_at: float | None
    ) -> None:
        finished = self.storage.finish_hook(
            *key, owner=owner, error=error, retry_at=retry_at, now=self.clock()
        )
        if not finished:
            logger.warning(
                "outcome hook %s of event %s ran past its lease and was taken over; it may "
                "run twice: keep hooks shorter than ZENTITLE_STRIPE_LEASE_SECONDS",
                key[2],
                key[1],
            )

    def _answered(
        self, new: NewEvent, outcome: Outcome, ran: Ran, started: float
    ) -> WebhookResponse:
        status = 200
        if ran.failed:
            status = HOOK_FAILURE_STATUS
            outcome = Outcome(
                outcome.kind,
                f"{outcome.reason}; outcome hook(s) failed: {', '.join(ran.failed)} (see "
                "the server log). The licence work is done and recorded; only the failed "
                "hook(s) run again, on a redelivery, a replay or a worker's pass",
            )
        elif ran.busy:
            status = HOOK_BUSY_STATUS
            outcome = Outcome(
                outcome.kind,
                f"{outcome.reason}; outcome hook(s) {', '.join(ran.busy)} are running "
                "elsewhere (or their worker crashed: they run again once its lease "
                "expires); retry later",
            )
        log_answer(new.source, new.event_id, new.type, outcome, status, started)
        return WebhookResponse.build(status, outcome, event_id=new.event_id, event_type=new.type)


def licence_outcome(new: NewEvent, outcome: Outcome, seen: Observed) -> LicenceOutcome:
    """The typed outcome of an event, from what its flow saw (no remote call)."""
    obj = _event_object(new)
    state, group = seen.state, seen.group
    subscription_id = state.subscription_id if state is not None else _subscription_of(new, obj)
    group_id = state.group_id if state is not None and state.group_id else None
    if group_id is None and group is not None:
        group_id = group.id
    entitlements: tuple[LicensedEntitlement, ...] = ()
    codes: tuple[str, ...] = state.activation_codes if state is not None else ()
    if group is not None and group.id == group_id:
        entitlements = tuple(LicensedEntitlement(e.id, e.sku) for e in group.entitlements)
        codes = codes or tuple(group.activation_codes)
    skus = tuple(dict.fromkeys(e.sku for e in entitlements if e.sku)) or seen.skus
    return LicenceOutcome(
        event_id=new.event_id,
        event_type=new.type,
        kind=outcome.kind,
        message=outcome.reason,
        subscription_id=subscription_id,
        stripe_customer_id=_id(obj.get("customer")),
        zentitle_customer_id=state.zentitle_customer_id if state is not None else None,
        group_id=group_id,
        entitlements=entitlements,
        skus=skus,
        activation_codes=codes,
        event_created=new.created,
    )


def _event_object(new: NewEvent) -> Mapping[str, Any]:
    try:
        return parse_event(new.payload).object
    except ZentitleStripeError:  # recorded and processed, so readable; defensive only
        return {}


def _subscription_of(new: NewEvent, obj: Mapping[str, Any]) -> str | None:
    if new.type.startswith("customer.subscription."):
        return _id(obj.get("id"))
    parent = obj.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, Mapping) else None
    if isinstance(details, Mapping):
        return _id(details.get("subscription"))
    return _id(obj.get("subscription"))


def _id(value: object) -> str | None:
    """An id, or the `id` of an expanded object."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


class OutcomeHooks:
    """The hook half of [`Provisioner`][zentitle_stripe.Provisioner] (a mixin)."""

    _ledger: Ledger

    def on_outcome(
        self, *kinds: str | OutcomeKind, name: str | None = None
    ) -> Callable[[OutcomeHandler], OutcomeHandler]:
        """Register a hook for licence outcomes: `"provisioned"`, `"renewed"`,
        `"updated"`, `"revoked"`, the lifecycle kinds, several at once, or `"*"`.

        ```python
        @provisioner.on_outcome("provisioned", "renewed")
        def notify(outcome: LicenceOutcome) -> None: ...
        ```

        Called once per event after it is recorded done, with a
        [`LicenceOutcome`][zentitle_stripe.hooks.LicenceOutcome]; its completion is
        recorded under `name` (default `module.qualname`), so a retry runs only the
        hooks that have not succeeded. See `docs/hooks.md`. Needs a storage with
        [`HookStorage`][zentitle_stripe.storage.HookStorage] (every built-in has it).
        """
        return self.outcome_hooks.registry.register(*kinds, name=name)

    @property
    def outcome_hooks(self) -> HookRunner:
        """The runner of this provisioner's hooks (made on first use)."""
        runner = self._ledger.hooks
        if isinstance(runner, HookRunner):
            return runner
        ledger = self._ledger
        runner = HookRunner(ledger.storage, lease_seconds=ledger.lease_seconds, clock=ledger.clock)
        self._ledger.hooks = runner
        return runner

    def run_hooks(self, event_id: str, source: str = "stripe") -> StoredOutcome | None:
        """Run the hooks of a done event that have not succeeded yet, as a redelivery
        would; the outcome and its runs afterwards (`None`: no hooks were recorded)."""
        return self.outcome_hooks.run_event(event_id, source)

    def run_due_hooks(self, *, max_attempts: int = 10, limit: int = 100) -> int:
        """Run the hook runs that are due (what a worker's pass does); how many events
        had one. Nothing to do, and no storage read, when no hook is registered."""
        runner = self._ledger.hooks
        if not runner:
            return 0
        return runner.run_due(max_attempts=max_attempts, limit=limit)
