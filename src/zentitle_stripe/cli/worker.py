"""`worker`: process the events queue mode recorded (`ZENTITLE_STRIPE_MODE=queue`)."""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import signal
from collections.abc import Iterator
from typing import Any

from ..provisioner import Provisioner
from ..worker import Worker
from ._app import APP_HELP, loaded_app
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
    worker.add_argument(
        "--app",
        metavar="MODULE:ATTRIBUTE",
        help=f"{APP_HELP}, and its outcome hooks (on_outcome); without it, none run",
    )


def _worker(args: argparse.Namespace) -> int:
    if args.processes == 1:
        return run_worker(once=args.once, batch=args.batch, app=args.app)
    context = multiprocessing.get_context("spawn")
    options = {"once": args.once, "batch": args.batch, "app": args.app}
    children = [context.Process(target=run_worker, kwargs=options) for _ in range(args.processes)]
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


def run_worker(*, once: bool, batch: int, app: str | None = None) -> int:
    """One worker process: the app's provisioner (`app`, `module:attribute`, with its
    handlers and outcome hooks) or one wired from the environment; stopped by
    SIGTERM/SIGINT."""
    with _provisioner(app) as provisioner:
        worker = Worker(provisioner, batch=batch)

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


@contextlib.contextmanager
def _provisioner(app: str | None) -> Iterator[Provisioner]:
    if app:
        with loaded_app(app) as provisioner:
            yield provisioner
    else:
        with build_services() as services:
            yield services.provisioner
