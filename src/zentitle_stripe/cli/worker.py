"""`worker`: process the events queue mode recorded (`ZENTITLE_STRIPE_MODE=queue`)."""

from __future__ import annotations

import argparse
import multiprocessing
import signal
from typing import Any

from ..worker import Worker
from ._common import add_command, build_services, positive_int


def register(subcommands: argparse._SubParsersAction[Any]) -> None:
    worker = add_command(
        subcommands,
        "worker",
        _worker,
        help="process queued events (queue mode)",
        description="Claim and process the events that the webhook endpoint queued "
        "(ZENTITLE_STRIPE_MODE=queue), with the same flows, leases and fencing as a "
        "synchronous delivery. Transient failures are queued again with backoff. "
        "SIGTERM or SIGINT stops after the current event.",
        json_output=False,
    )
    worker.add_argument("--processes", type=positive_int, default=1, help="default: %(default)s")
    worker.add_argument("--once", action="store_true", help="drain what is due, then exit")
    worker.add_argument(
        "--batch", type=positive_int, default=100, help="events per round (default: %(default)s)"
    )


def _worker(args: argparse.Namespace) -> int:
    if args.processes == 1:
        return run_worker(once=args.once, batch=args.batch)
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=run_worker, kwargs={"once": args.once, "batch": args.batch})
        for _ in range(args.processes)
    ]
    for child in children:
        child.start()

    def forward(signum: int, frame: object) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                child.terminate()  # SIGTERM: each finishes its current event

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
    return 0 if all(child.exitcode == 0 for child in children) else 1


def run_worker(*, once: bool, batch: int) -> int:
    """One worker process: wired from the environment, stopped by SIGTERM/SIGINT."""
    with build_services() as services:
        worker = Worker(services.provisioner, batch=batch)

        def stop(signum: int, frame: object) -> None:
            worker.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if once:
            while worker.run_once():
                pass
        else:
            worker.run()
    return 0
