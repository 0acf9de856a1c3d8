"""``doctor``, ``connect``, ``events``, ``replay``, ``reconcile``, ``migrate`` (operations)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subcommands: argparse._SubParsersAction[Any]) -> None:
    """Add the operations commands."""
