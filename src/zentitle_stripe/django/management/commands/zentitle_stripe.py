"""`manage.py zentitle_stripe COMMAND ...`: the `zentitle-stripe` command line, reading
`settings.ZENTITLE_STRIPE` (over the environment) as the project's views do."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ....cli import main
from ....cli._common import django_settings_in_use


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no types
    help = (
        "Run a zentitle-stripe command (doctor, events, replay, reconcile, connect, migrate) "
        "with this project's settings.ZENTITLE_STRIPE; "
        "`manage.py zentitle_stripe --help` after the command name for its options."
    )
    requires_system_checks: list[str] = []  # doctor reports configuration problems itself

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("cli_args", nargs=argparse.REMAINDER, metavar="COMMAND ...")

    def handle(self, *args: Any, **options: Any) -> None:
        with django_settings_in_use():
            code = main(list(options["cli_args"]) or ["--help"])
        if code:
            raise SystemExit(code)
