"""What the command modules share: how the CLI builds its collaborators from the
environment (only here), the `--json` flag, and where results and progress are printed.

Results go to stdout, progress and warnings to stderr, so `--json` output stays parseable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from ..exceptions import ConfigurationError, ZentitleStripeError
from ..services import Services
from ..storage import DEFAULT_STORAGE_URL, Storage, open_storage
from ..stripe_api import StripeOpsAPI

Handler = Callable[[argparse.Namespace], int]
"""Runs one command from its parsed arguments and returns the exit code."""


def add_command(
    subcommands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Handler,
    *,
    help: str,
    description: str,
    json_output: bool = True,
) -> argparse.ArgumentParser:
    """Add one sub-command that runs `handler`, with the `--json` flag unless told not to."""
    parents = []
    if json_output:
        json_flag = argparse.ArgumentParser(add_help=False)
        json_flag.add_argument("--json", action="store_true", help="print JSON instead of text")
        parents.append(json_flag)
    parser = subcommands.add_parser(name, parents=parents, help=help, description=description)
    parser.set_defaults(handler=handler)
    return parser


def progress(message: str) -> None:
    """The ops `Progress` sink: one line to stderr, at once."""
    print(message, file=sys.stderr, flush=True)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


# -- collaborators from the environment ----------------------------------------------------


def build_services() -> Services:
    """Everything wired from the environment: the one place the CLI builds it."""
    return Services.from_env()


@contextlib.contextmanager
def services() -> Iterator[Services]:
    """The wired [`Services`][zentitle_stripe.services.Services], closed afterwards."""
    with build_services() as built:
        yield built


@contextlib.contextmanager
def services_or_problem() -> Iterator[tuple[Services | None, str | None]]:
    """Like `services()`, but a configuration error is yielded as a message instead of
    raised: `doctor` reports it as a finding."""
    try:
        built = build_services()
    except ZentitleStripeError as exc:
        yield None, str(exc)
        return
    with built:
        yield built, None


def ops_stripe(built: Services) -> StripeOpsAPI:
    """The Stripe gateway, which also offers the operations calls."""
    stripe: object = built.stripe
    if not isinstance(stripe, StripeOpsAPI):
        raise ConfigurationError("the Stripe client does not support the operations calls")
    return stripe


@contextlib.contextmanager
def storage_only() -> Iterator[Storage]:
    """Just the storage: `events` and `migrate` need no Stripe or Zentitle2 settings."""
    url = os.environ.get("ZENTITLE_STRIPE_STORAGE", "").strip() or DEFAULT_STORAGE_URL
    storage = open_storage(url)
    try:
        yield storage
    finally:
        storage.close()
