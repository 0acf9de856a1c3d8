"""``serve`` and ``demo`` (owned by the server/demo work)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subcommands: argparse._SubParsersAction[Any]) -> None:
    """Add ``serve`` and ``demo``."""
