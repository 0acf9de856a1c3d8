"""What the command modules share: how the CLI builds its collaborators from the
environment (only here), the `--json` and `--env-file` flags, and where results and
progress are printed.

Results go to stdout, progress and warnings to stderr, so `--json` output stays parseable.
The environment is `os.environ` over the `--env-file` (default `./.env` when present),
the real environment winning; `main` sets it with `use_environ` before the handler runs.
Every command that opens storage says which (redacted) on stderr; readers open it with
`existing=True`, so a wrong folder or a typo is an error, never a new empty database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._envfile import merged_environ
from ..config import Settings
from ..exceptions import ConfigurationError, ZentitleStripeError
from ..services import Services
from ..storage import DEFAULT_STORAGE_URL, Storage, open_storage, redact_url
from ..stripe_api import StripeOpsAPI

DEFAULT_ENV_FILE = ".env"
_environ: list[Mapping[str, str]] = []
_in_django: list[bool] = []

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
    env_flag = argparse.ArgumentParser(add_help=False)
    env_flag.add_argument(
        "--env-file",
        metavar="PATH",
        help="read settings from this KEY=VALUE file too (default: ./.env when present); "
        "variables set in the environment win",
    )
    env_flag.add_argument(
        "--django-settings",
        metavar="MODULE",
        help="also read ZENTITLE_STRIPE from this Django settings module, which wins over "
        "the environment (default: $DJANGO_SETTINGS_MODULE when set)",
    )
    parents = [env_flag]
    if json_output:
        json_flag = argparse.ArgumentParser(add_help=False)
        json_flag.add_argument("--json", action="store_true", help="print JSON instead of text")
        parents.append(json_flag)
    parser = subcommands.add_parser(name, parents=parents, help=help, description=description)
    parser.set_defaults(handler=handler)
    return parser


def positive_int(text: str) -> int:
    """An argparse type: a whole number above zero, with a message naming what was given."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def progress(message: str) -> None:
    """The ops `Progress` sink: one line to stderr, at once."""
    print(message, file=sys.stderr, flush=True)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def print_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, details: Sequence[list[str]] = ()
) -> None:
    """Rows under a header row, columns padded to their widest cell (the last not padded);
    `details[i]` are lines printed under row `i` as they are."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths, strict=False)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    print(line(header))
    for index, row in enumerate(rows):
        print(line(row))
        for extra in details[index] if index < len(details) else ():
            print(extra)


# -- collaborators from the environment ----------------------------------------------------


def env_file_of(args: argparse.Namespace) -> str | None:
    """The env file to read: `--env-file`, else `./.env` if there is one, else none."""
    given: str | None = getattr(args, "env_file", None)
    if given is not None:
        return given
    return DEFAULT_ENV_FILE if Path(DEFAULT_ENV_FILE).is_file() else None


@contextlib.contextmanager
def django_settings_in_use() -> Iterator[None]:
    """Inside `manage.py zentitle_stripe`: read the configured Django settings."""
    _in_django.append(True)
    try:
        yield
    finally:
        _in_django.pop()


def _django_environ(args: argparse.Namespace) -> tuple[str, dict[str, str] | None]:
    """Where the Django settings come from, and their `ZENTITLE_STRIPE` (if any)."""
    module = getattr(args, "django_settings", None)
    if not _in_django and not module:
        module = os.environ.get("DJANGO_SETTINGS_MODULE", "").strip() or None
    if not _in_django and not module:
        return "", None
    from ..django._settings import configured_environ, settings_module_environ

    if _in_django:
        return "Django's settings.ZENTITLE_STRIPE", configured_environ()
    assert module is not None
    return f"{module}.ZENTITLE_STRIPE", settings_module_environ(module)


@contextlib.contextmanager
def use_environ(args: argparse.Namespace) -> Iterator[None]:
    """Make the command's environment current: `os.environ` over its env file, and
    Django's `ZENTITLE_STRIPE` over both (what the project's views read)."""
    env_file = env_file_of(args)
    merged = merged_environ(env_file, os.environ)
    sources = ["environment"] if env_file is None else ["environment", env_file]
    where, configured = _django_environ(args)
    if configured is not None:
        merged = {**merged, **configured}
        sources.append(where)
    _environ.append(merged)
    if len(sources) > 1:
        progress(f"settings: {' and '.join(sources)}")
    try:
        yield
    finally:
        _environ.pop()


def environ() -> Mapping[str, str]:
    """The current command's environment (`os.environ` outside a command)."""
    return _environ[-1] if _environ else os.environ


def opened_storage(url: str, *, existing: bool) -> Storage:
    """The storage `url` names, announced on stderr (redacted) before it is opened."""
    progress(f"storage: {redact_url(url)}")
    return open_storage(url, existing=existing)


def build_services(*, existing_storage: bool = False) -> Services:
    """Everything wired from the environment: the one place the CLI builds it.

    `existing_storage=True` for commands that only read what the app recorded."""
    settings = Settings.from_env(environ())
    storage = opened_storage(settings.storage_url, existing=existing_storage)
    try:
        return Services.from_settings(settings, storage=storage)
    except BaseException:
        storage.close()
        raise


@contextlib.contextmanager
def services(*, existing_storage: bool = False) -> Iterator[Services]:
    """The wired [`Services`][zentitle_stripe.services.Services], closed afterwards."""
    with build_services(existing_storage=existing_storage) as built:
        yield built


@contextlib.contextmanager
def services_or_problem() -> Iterator[tuple[Services | None, str | None]]:
    """Like `services(existing_storage=True)`, but a configuration error is yielded as a
    message instead of raised: `doctor` reports it as a finding."""
    try:
        built = build_services(existing_storage=True)
    except ZentitleStripeError as exc:
        yield None, str(exc)
        return
    with built:
        yield built, None


@contextlib.contextmanager
def stripe_only() -> Iterator[StripeOpsAPI]:
    """Just the Stripe gateway, from `STRIPE_API_KEY` (and `STRIPE_API_BASE`): `connect`
    comes before the webhook secret exists and needs no Zentitle2 setting or storage."""
    from ..config import stripe_connection
    from ..stripe_api import StripeGateway

    key, api_base, timeout = stripe_connection(environ())
    gateway = StripeGateway(key.reveal(), api_base=api_base, timeout=timeout)
    try:
        yield gateway
    finally:
        gateway.close()


def ops_stripe(built: Services) -> StripeOpsAPI:
    """The Stripe gateway, which also offers the operations calls."""
    stripe: object = built.stripe
    if not isinstance(stripe, StripeOpsAPI):
        raise ConfigurationError("the Stripe client does not support the operations calls")
    return stripe


@contextlib.contextmanager
def storage_only(*, existing: bool = True) -> Iterator[Storage]:
    """Just the storage: `events` and `migrate` need no Stripe or Zentitle2 settings.

    `existing=True` (readers) creates nothing; `migrate` passes `False`."""
    url = environ().get("ZENTITLE_STRIPE_STORAGE", "").strip() or DEFAULT_STORAGE_URL
    storage = opened_storage(url, existing=existing)
    try:
        yield storage
    finally:
        storage.close()
