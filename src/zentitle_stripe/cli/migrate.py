"""`migrate`: create or upgrade the storage schema."""

from __future__ import annotations

import argparse
from typing import Any

from .. import ops
from ._common import add_command, print_json, storage_only


def register(subcommands: argparse._SubParsersAction[Any]) -> None:
    add_command(
        subcommands,
        "migrate",
        _migrate,
        help="create or upgrade the storage schema",
        description="Create or upgrade the schema of ZENTITLE_STRIPE_STORAGE and print its "
        "version (PostgreSQL; SQLite creates its schema when opened).",
    )


def _migrate(args: argparse.Namespace) -> int:
    with storage_only(existing=False) as storage:
        result = ops.migrate_storage(storage)
    if args.json:
        print_json(result.to_json())
    else:
        version = "none" if result.version is None else str(result.version)
        print(f"{result.storage}: schema version {version} ({result.detail})")
    return 0
