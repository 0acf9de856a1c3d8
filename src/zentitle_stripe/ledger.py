"""The bookkeeping around every verified event: record, claim, run, finish, answer.

[`Ledger.run`][zentitle_stripe.ledger.Ledger.run] records the event (raw body included,
so it can be replayed), claims it for a lease so only one worker acts on it, runs the
work under a [`Fence`][zentitle_stripe.fencing.Fence] (the claim and every lock renewed
and checked before each write, the remote calls bounded below the lease), and writes the
outcome back. Every failure is answered through the one failure table,
[`classify`][zentitle_stripe.responses.classify]. The ledger knows nothing about Stripe or
Zentitle2: the work is a callable, whichever webhook it came from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import telemetry
from ._owners import new_owner
from ._untrusted import finite_number
from .exceptions import ConfigurationError, EventInProgress, LeaseLost, ZentitleStripeError
from .fencing import Fence
from .hooks import observing
from .responses import Outcome, OutcomeKind, WebhookResponse, classify
from .storage import ClaimResult, EventRecord, EventStatus, NewEvent, Storage

if TYPE_CHECKING:
    from ._hook_runner import HookRunner

__all__ = ["Ledger", "Work", "log_answer", "new_owner"]

logger = logging.getLogger("zentitle_stripe")

Work = Callable[[str], Outcome]
"""The processing of one claimed event; called with the claim's owner (for locks)."""


class Ledger:
    """Exactly-once bookkeeping over a [`Storage`][zentitle_stripe.storage.Storage].

    `config_error_status` is the status for set-up problems (422, or 200 to stop
    Stripe's retries); `lease_seconds` is how long a claim keeps other workers out
    before a redelivery may take over a crashed one. `budget` bounds one attempt's remote
    calls (default: three quarters of the lease, see
    [`fencing`][zentitle_stripe.fencing]); it must stay below `lease_seconds`.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        lease_seconds: float,
        config_error_status: int,
        clock: Callable[[], float],
        budget: float | None = None,
    ) -> None:
        # nan would pass every lease comparison and switch fencing off; 0 takes every
        # event over at once.
        lease_seconds = finite_number(lease_seconds, "lease_seconds", positive=True)
        if budget is not None and not 0 < budget < lease_seconds:
            raise ValueError(
                f"the time budget of an event ({budget:g} s) must be positive and below "
                f"the lease ({lease_seconds:g} s, ZENTITLE_STRIPE_LEASE_SECONDS)"
            )
        self.storage = storage
        self.lease_seconds = lease_seconds
        self.config_error_status = config_error_status
        self.clock = clock
        self.budget = budget
        self.hooks: HookRunner | None = None
        """Outcome hooks, set by `Provisioner.on_outcome` (see `_hook_runner`)."""

    def run(
        self,
        new: NewEvent,
        work: Work,
        *,
        started: float,
        replay: bool = False,
        settled: Outcome | None = None,
    ) -> WebhookResponse:
        """Record and claim `new`, run `work` once, finish it and answer.

        A done event is a `duplicate` (unless `replay`, which runs it again); one
        claimed elsewhere is answered 409. An exception from `work` marks the event
        failed, so a redelivery or a replay runs it again. `settled` is the outcome of
        an event known to need no work (an unhandled type, a one-time payment): a first
        delivery of it is recorded done in one write, without a claim.
        """
        owner = new_owner()
        now = self.clock()
        if settled is not None and not replay:
            recorded = self._record_settled(new, owner, settled, now, started)
            if recorded is not None:
                return recorded
        try:
            claim = self.storage.claim_event(
                new, owner=owner, lease_seconds=self.lease_seconds, now=now, reclaim_done=replay
            )
        except ZentitleStripeError as exc:
            return self._failed(new, exc, started)
        if claim.result is ClaimResult.DUPLICATE:
            return self._redelivered(new, claim.record, started)
        if claim.result is ClaimResult.IN_PROGRESS:
            busy = EventInProgress("this event is being processed by another worker; retry later")
            return self._failed(new, busy, started)
        return self._attempt(new, owner, now, work, started)[0]

    def run_claimed(
        self, record: EventRecord, work: Work, *, started: float
    ) -> tuple[WebhookResponse, Exception | None]:
        """Run `work` for `record`, already claimed (by a worker, `claim_queued`), and
        finish it as `run` does; also returns the exception of a failed attempt, so the
        worker can tell a transient failure (queued again) from a permanent one."""
        assert record.claimed_by is not None
        return self._attempt(record.as_new_event(), record.claimed_by, self.clock(), work, started)

    def enqueue(self, new: NewEvent, *, started: float) -> WebhookResponse:
        """Queue mode: record `new` for the worker and answer 200 at once, no remote work.

        A redelivery of an event known already adds nothing to the queue: it is answered
        as a duplicate (done, queued or in progress), or queued again when it had failed.
        """
        from .storage import QueueStorage

        if not isinstance(self.storage, QueueStorage):
            raise ConfigurationError(
                f"queue mode needs a storage with a queue; {type(self.storage).__name__} "
                "has none (ZENTITLE_STRIPE_MODE=sync)"
            )
        try:
            added, record = self.storage.enqueue_event(new, now=self.clock())
        except ZentitleStripeError as exc:
            return self._failed(new, exc, started)
        if not added and record.status is EventStatus.DONE:
            return self._duplicate(new, record, started)
        reason = "recorded; a worker processes it" if added else f"already {record.status.value}"
        outcome = Outcome(OutcomeKind.QUEUED, reason)
        log_answer(new.source, new.event_id, new.type, outcome, 200, started)
        return WebhookResponse.build(200, outcome, event_id=new.event_id, event_type=new.type)

    def _attempt(
        self, new: NewEvent, owner: str, now: float, work: Work, started: float
    ) -> tuple[WebhookResponse, Exception | None]:
        fence = self.fence(owner, started=now)
        fence.hold_claim(self.storage, new.event_id, new.source, expires=now + self.lease_seconds)
        try:
            with fence.active(), observing() as seen:
                outcome = work(owner)
        except Exception as exc:
            return self._failed(new, exc, started, owner=owner), exc
        hooks, stored = self.hooks or None, None
        if hooks is not None:  # outcome hooks: recorded while the claim is held
            try:
                outcome, stored = hooks.record(new, outcome, seen)
            except Exception as exc:  # recorded as failed: a retry records it again
                return self._failed(new, exc, started, owner=owner), exc
        try:
            finished = self._finish(new, owner, EventStatus.DONE, outcome.kind, outcome.reason)
        except ZentitleStripeError as exc:
            return self._failed(new, exc, started), exc
        if not finished:
            # A successor holds the claim now: it records the outcome, not this worker.
            lost = _finished_elsewhere()
            return self._failed(new, lost, started), lost
        if hooks is not None and stored is not None:  # done: now the hooks, then answer
            return hooks.answer(new, outcome, stored, started), None
        log_answer(new.source, new.event_id, new.type, outcome, 200, started)
        response = WebhookResponse.build(200, outcome, event_id=new.event_id, event_type=new.type)
        return response, None

    def _record_settled(
        self, new: NewEvent, owner: str, outcome: Outcome, now: float, started: float
    ) -> WebhookResponse | None:
        """Record a first-seen settled event as done; `None` when it was already
        recorded (the claim path then answers it) or storage cannot do it in one step."""
        return _settle(self, "record_settled", new, owner, outcome, now, started)

    def settle_nowait(
        self, new: NewEvent, outcome: Outcome, *, started: float
    ) -> WebhookResponse | None:
        """The answer to a first-seen settled event when storage records it without
        waiting (`try_record_settled`: SQLite and memory); `None` when it would wait, is
        known already or storage cannot say: the caller then calls `run` in a thread."""
        now = self.clock()
        return _settle(self, "try_record_settled", new, new_owner(), outcome, now, started)

    def fence(self, owner: str, *, started: float) -> Fence:
        """A fence for one attempt of `owner` that claimed its event at `started`."""
        return Fence(
            owner=owner,
            lease_seconds=self.lease_seconds,
            clock=self.clock,
            started=started,
            budget=self.budget,
        )

    def refuse(self, source: str, exc: ZentitleStripeError, started: float) -> WebhookResponse:
        """Answer a delivery that cannot be recorded (unverified, unusable, unconfigured).

        Nothing is stored: an unauthenticated body must never reach storage. The status
        ignores `config_error_status`: a body that was not recorded cannot be replayed,
        so only the sender's retry can bring it back.
        """
        failure = classify(exc)
        log_answer(
            source,
            None,
            None,
            failure.outcome,
            failure.status,
            started,
            diagnosis=failure.diagnosis,
        )
        return failure.response()

    def _finish(
        self,
        new: NewEvent,
        owner: str,
        status: EventStatus,
        kind: OutcomeKind,
        detail: str,
        error: str | None = None,
    ) -> bool:
        """Write the outcome back and release the claim; `False` (nothing written) when
        the claim was lost to a successor."""
        return self.storage.finish_event(
            new.event_id,
            new.source,
            owner=owner,
            status=status,
            outcome=kind.value,
            detail=detail,
            error=error,
            now=self.clock(),
        )

    def _redelivered(self, new: NewEvent, record: EventRecord, started: float) -> WebhookResponse:
        """A done event delivered again: its unfinished outcome hooks run, if it has any
        (see [`hooks`][zentitle_stripe.hooks]); otherwise a duplicate."""
        if self.hooks:
            try:
                answered = self.hooks.redelivered(new, record, started)
            except ZentitleStripeError as exc:
                return self._failed(new, exc, started)
            if answered is not None:
                return answered
        return self._duplicate(new, record, started)

    def _duplicate(self, new: NewEvent, record: EventRecord, started: float) -> WebhookResponse:
        earlier = f"{record.outcome}: {record.detail}" if record.outcome else "done"
        outcome = Outcome(OutcomeKind.DUPLICATE, f"already processed ({earlier})")
        log_answer(new.source, new.event_id, new.type, outcome, 200, started)
        return WebhookResponse.build(200, outcome, event_id=new.event_id, event_type=new.type)

    def _failed(
        self, new: NewEvent, exc: Exception, started: float, *, owner: str | None = None
    ) -> WebhookResponse:
        """Answer a failure; with `owner` (the work itself failed) record it on the event."""
        failure = classify(exc, config_error_status=self.config_error_status, processing=True)
        if failure.log_traceback:
            logger.exception(
                "unexpected error processing %s event %s", new.source, new.event_id, exc_info=exc
            )
        if owner is not None:
            error = f"{type(exc).__name__}: {exc}"
            try:
                self._finish(
                    new, owner, EventStatus.FAILED, OutcomeKind.FAILED, failure.reason, error
                )
            except ZentitleStripeError:
                # The claim's lease will expire and a redelivery will take it over.
                logger.exception("could not record the failure of event %s", new.event_id)
        log_answer(
            new.source,
            new.event_id,
            new.type,
            failure.outcome,
            failure.status,
            started,
            diagnosis=failure.diagnosis,
        )
        return failure.response(event_id=new.event_id, event_type=new.type)


def _settle(
    ledger: Ledger,
    method: str,
    new: NewEvent,
    owner: str,
    outcome: Outcome,
    now: float,
    started: float,
) -> WebhookResponse | None:
    """Record `new` done with `outcome` by the storage's `method`, and answer; `None`
    when storage lacks it, knew the event already (`False`) or would wait (`None`)."""
    record = getattr(ledger.storage, method, None)
    if not callable(record):
        return None
    try:
        if not record(new, owner=owner, outcome=outcome.kind.value, detail=outcome.reason, now=now):
            return None
    except ZentitleStripeError as exc:
        return ledger._failed(new, exc, started)
    log_answer(new.source, new.event_id, new.type, outcome, 200, started)
    return WebhookResponse.build(200, outcome, event_id=new.event_id, event_type=new.type)


def _finished_elsewhere() -> LeaseLost:
    return LeaseLost(
        "this worker's claim on the event expired and another worker took it over before "
        "the outcome could be recorded; that worker records it, so retry later",
        retry_after=30,
    )


def log_answer(
    source: str,
    event_id: str | None,
    event_type: str | None,
    outcome: Outcome,
    status: int,
    started: float,
    *,
    diagnosis: str | None = None,
) -> None:
    """One log line per answered delivery: what was done and why, with the event fields
    as `extra` (for JSON logs).

    The text says the outcome, the status, the reason sent back and, for the server
    only, the `diagnosis` (what a refused check saw); never a secret or a body; with
    OpenTelemetry, the answer is counted and described on the event's span. Errors
    (5xx other than 503) are logged at ERROR, other failures (a refusal, 422, 503) at
    WARNING, everything else at INFO.
    """
    telemetry.event_answered(source, event_id, event_type, outcome.kind.value, status)
    if status >= 500 and status != 503:
        level = logging.ERROR
    elif outcome.kind is OutcomeKind.FAILED:
        level = logging.WARNING
    else:
        level = logging.INFO
    if not logger.isEnabledFor(level):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    if not event_id:
        what = "webhook, not recorded"
    else:
        what = f"event {event_id} ({event_type})" if event_type else f"event {event_id}"
    why = f": {outcome.reason}" if outcome.reason else ""
    seen = f" [{diagnosis}]" if diagnosis else ""
    logger.log(
        level,
        "%s %s: %s %s in %.1f ms%s%s",
        source,
        what,
        status,
        outcome.kind.value,
        duration_ms,
        why,
        seen,
        extra={
            "source": source,
            "event_id": event_id,
            "event_type": event_type,
            "status": status,
            "outcome": outcome.kind.value,
            "detail": outcome.reason,
            "diagnosis": diagnosis,
            "duration_ms": duration_ms,
        },
    )
