"""What outcome hooks cost per event, on SQLite.

Run by hand: ``python benchmarks/bench_hooks.py [--events 300] [--repeat 5]``.

Times ``Provisioner.handle_event`` of new events whose (scripted, remote-free) work says
`provisioned`, on a temp-file SQLite storage, with 0, 1 and 3 registered hooks that do
nothing: the figures are the bookkeeping's (the outcome and its runs recorded, each run
claimed and finished). Then a duplicate delivery of a done event, without hooks and with
3 hooks all done (one more read: are any unfinished?). Rounds interleave the modes, so a
noisy neighbour slows all of them alike; the best round counts.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path

from zentitle_stripe import Outcome, OutcomeKind, Provisioner
from zentitle_stripe.events import StripeEvent
from zentitle_stripe.hooks import LicenceOutcome
from zentitle_stripe.storage.sqlite import SQLiteStorage
from zentitle_stripe.testing import invoice_paid_event, sign_stripe_payload

SECRET = "whsec_bench"


class Provisioned:
    """Work without remote calls: every invoice is `provisioned`."""

    event_types = frozenset({"invoice.paid"})

    def process(self, event: StripeEvent, *, owner: str) -> Outcome:
        return Outcome(OutcomeKind.PROVISIONED, f"licences for {event.id}")


def _provisioner(folder: str, hooks: int) -> Provisioner:
    provisioner = Provisioner(
        webhook_secrets=[SECRET],
        storage=SQLiteStorage(str(Path(folder) / f"{uuid.uuid4().hex}.db")),
        processor=Provisioned(),
        tolerance=0,
    )
    for i in range(hooks):

        def hook(outcome: LicenceOutcome) -> None:
            return None

        provisioner.on_outcome("provisioned", name=f"hook{i}")(hook)
    return provisioner


def _bodies(count: int) -> list[tuple[bytes, str]]:
    return [
        sign_stripe_payload(invoice_paid_event([], subscription_id=f"sub_{i}"), SECRET)
        for i in range(count)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    logging.getLogger("zentitle_stripe").setLevel(logging.WARNING)
    modes = {"no hooks": 0, "1 hook": 1, "3 hooks": 3}
    best = {mode: float("inf") for mode in [*modes, "duplicate, no hooks", "duplicate, 3 done"]}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeat):
            for mode, hooks in modes.items():
                provisioner = _provisioner(folder, hooks)
                bodies = _bodies(args.events)
                started = time.perf_counter()
                for body, header in bodies:
                    assert provisioner.handle_event(body, header).status == 200
                elapsed = time.perf_counter() - started
                best[mode] = min(best[mode], elapsed / args.events * 1e6)
                if hooks != 1:
                    name = "duplicate, no hooks" if hooks == 0 else "duplicate, 3 done"
                    body, header = bodies[0]
                    started = time.perf_counter()
                    for _ in range(args.events):
                        provisioner.handle_event(body, header)
                    elapsed = time.perf_counter() - started
                    best[name] = min(best[name], elapsed / args.events * 1e6)
                provisioner.close()
    print(f"Python {sys.version.split()[0]}; handle_event, temp-file SQLite, best of {args.repeat}")
    base = best["no hooks"]
    for mode, micros in best.items():
        over = "" if mode in ("no hooks", "duplicate, no hooks") else f"  (+{micros - base:.0f})"
        if mode == "duplicate, 3 done":
            over = f"  (+{micros - best['duplicate, no hooks']:.0f})"
        print(f"{mode:22} {micros:8.1f} µs per event{over}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
