"""The part of [`StorageContract`][zentitle_stripe.testing.StorageContract] about outcome
hooks (it inherits these tests): recorded outcomes and per-handler runs.

[`HookStorage`][zentitle_stripe.storage.HookStorage] is optional: a backend of your own
without it passes these tests by having none of its methods (and `on_outcome` refuses
it); one that has them must follow every rule here.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

from ..storage import HookStatus, HookStorage, Storage, StoredOutcome

__all__ = ["HookContract"]

T0 = 1_950_000_000.0
LEASE = 30.0
HANDLERS = ("app.hooks.send_email", "app.hooks.notify_crm")


class HookContract:
    """Recorded outcomes and handler runs, for every backend that has them."""

    storage: Storage

    def _hooks(self) -> HookStorage | None:
        if isinstance(self.storage, HookStorage):
            return self.storage
        assert not any(hasattr(self.storage, name) for name in ("record_outcome", "claim_hook"))
        return None

    def _record_outcome(
        self, hooks: HookStorage, event_id: str = "evt_o", *, kind: str = "provisioned"
    ) -> StoredOutcome:
        return hooks.record_outcome(
            "stripe",
            event_id,
            kind=kind,
            data='{"kind":"%s"}' % kind,  # noqa: UP031
            handlers=HANDLERS if kind == "provisioned" else HANDLERS[:1],
            now=T0,
            not_before=T0 + LEASE,
        )

    def _claim_run(self, hooks: HookStorage, handler: str, owner: str, now: float) -> bool:
        return hooks.claim_hook(
            "stripe", "evt_o", handler, owner=owner, lease_seconds=LEASE, now=now
        )

    def _finish_run(
        self, hooks: HookStorage, handler: str, owner: str, now: float, error: str | None = None
    ) -> bool:
        return hooks.finish_hook(
            "stripe", "evt_o", handler, owner=owner, error=error, retry_at=now + 60, now=now
        )

    def _run_status(self, hooks: HookStorage, handler: str) -> tuple[HookStatus, int, str | None]:
        stored = hooks.get_outcome("evt_o")
        assert stored is not None
        run = next(r for r in stored.runs if r.handler == handler)
        return run.status, run.attempts, run.error

    def test_an_outcome_is_recorded_once_with_its_runs_pending(self) -> None:
        hooks = self._hooks()
        if hooks is None:
            return
        assert hooks.get_outcome("evt_o") is None
        first = self._record_outcome(hooks)
        assert (first.kind, first.data, first.recorded_at) == (
            "provisioned",
            '{"kind":"provisioned"}',
            T0,
        )
        assert [(r.handler, r.status, r.attempts) for r in first.runs] == [
            (HANDLERS[0], HookStatus.PENDING, 0),
            (HANDLERS[1], HookStatus.PENDING, 0),
        ]
        again = self._record_outcome(hooks, kind="renewed")  # the first outcome wins
        assert again == first
        assert hooks.get_outcome("evt_o") == first
        assert hooks.get_outcome("evt_o", "zentitle") is None

    def test_a_run_is_claimed_by_one_owner_and_done_runs_never_again(self) -> None:
        hooks = self._hooks()
        if hooks is None:
            return
        self._record_outcome(hooks)
        email = HANDLERS[0]
        assert self._claim_run(hooks, email, "w1", T0 + 1)
        assert not self._claim_run(hooks, email, "w2", T0 + 2)  # held, lease unexpired
        assert not self._finish_run(hooks, email, "w2", T0 + 3)  # not w2's
        assert self._run_status(hooks, email) == (HookStatus.RUNNING, 1, None)
        assert self._finish_run(hooks, email, "w1", T0 + 4)
        assert self._run_status(hooks, email) == (HookStatus.DONE, 1, None)
        assert not self._finish_run(hooks, email, "w1", T0 + 5)  # finished already
        assert not self._claim_run(hooks, email, "w3", T0 + 10_000)  # done: never again
        assert self._run_status(hooks, HANDLERS[1]) == (HookStatus.PENDING, 0, None)
        assert not self._claim_run(hooks, "app.hooks.unknown", "w1", T0)
        assert not hooks.claim_hook("stripe", "evt_x", email, owner="w", lease_seconds=1, now=T0)
        stored = hooks.get_outcome("evt_o")
        assert stored is not None
        assert [r.handler for r in stored.unfinished()] == [HANDLERS[1]]

    def test_a_failed_run_keeps_its_error_and_is_claimed_again(self) -> None:
        hooks = self._hooks()
        if hooks is None:
            return
        self._record_outcome(hooks)
        email = HANDLERS[0]
        assert self._claim_run(hooks, email, "w1", T0 + 1)
        assert self._finish_run(hooks, email, "w1", T0 + 2, error="SMTPError: down")
        assert self._run_status(hooks, email) == (HookStatus.FAILED, 1, "SMTPError: down")
        assert self._claim_run(hooks, email, "w2", T0 + 3)  # a redelivery need not wait
        assert self._run_status(hooks, email)[:2] == (HookStatus.RUNNING, 2)
        assert self._finish_run(hooks, email, "w2", T0 + 4)
        assert self._run_status(hooks, email) == (HookStatus.DONE, 2, None)

    def test_a_run_past_its_lease_is_taken_over(self) -> None:
        hooks = self._hooks()
        if hooks is None:
            return
        self._record_outcome(hooks)
        email = HANDLERS[0]
        assert self._claim_run(hooks, email, "w1", T0)
        assert not self._claim_run(hooks, email, "w2", T0 + LEASE - 1)
        assert self._claim_run(hooks, email, "w2", T0 + LEASE)  # w1 crashed or stalled
        assert not self._finish_run(hooks, email, "w1", T0 + LEASE + 1)
        assert self._finish_run(hooks, email, "w2", T0 + LEASE + 2)
        assert self._run_status(hooks, email) == (HookStatus.DONE, 2, None)

    def test_due_hooks_lists_what_a_worker_should_take(self) -> None:
        hooks = self._hooks()
        if hooks is None:
            return
        self._record_outcome(hooks)  # pending, not before T0 + LEASE
        hooks.record_outcome(
            "zentitle", "evt_z", kind="renewed", data="{}", handlers=["h"], now=T0, not_before=T0
        )
        assert hooks.due_hooks(now=T0 + 1, max_attempts=5) == [("zentitle", "evt_z")]
        assert hooks.due_hooks(now=T0 + LEASE, max_attempts=5) == [
            ("zentitle", "evt_z"),
            ("stripe", "evt_o"),
        ]
        assert hooks.due_hooks(now=T0 + LEASE, max_attempts=5, limit=1) == [("zentitle", "evt_z")]
        for handler in HANDLERS:
            assert self._claim_run(hooks, handler, "w1", T0 + LEASE)
            assert self._finish_run(hooks, handler, "w1", T0 + LEASE)  # done
        hooks.claim_hook("zentitle", "evt_z", "h", owner="w", lease_seconds=LEASE, now=T0 + 1)
        assert hooks.due_hooks(now=T0 + LEASE, max_attempts=5) == []  # running, in its lease
        assert hooks.due_hooks(now=T0 + 1 + LEASE, max_attempts=5) == [("zentitle", "evt_z")]
        hooks.finish_hook(
            "zentitle", "evt_z", "h", owner="w", error="boom", retry_at=T0 + 500, now=T0 + 2
        )
        assert hooks.due_hooks(now=T0 + 499, max_attempts=5) == []  # failed, due later
        assert hooks.due_hooks(now=T0 + 500, max_attempts=5) == [("zentitle", "evt_z")]
        assert hooks.due_hooks(now=T0 + 500, max_attempts=1) == []  # out of attempts
        # `now=inf` lists every unfinished run (what `zentitle-stripe hooks` asks)
        assert hooks.due_hooks(now=math.inf, max_attempts=2**31 - 1) == [("zentitle", "evt_z")]

    def test_only_one_of_many_concurrent_hook_claims_wins(self) -> None:
        hooks = self._hooks()
        if hooks is None:
            return
        self._record_outcome(hooks)
        barrier = threading.Barrier(8)

        def claim(i: int) -> bool:
            barrier.wait()
            return self._claim_run(hooks, HANDLERS[0], f"w{i}", T0 + 1)

        with ThreadPoolExecutor(8) as pool:
            assert sum(pool.map(claim, range(8))) == 1
