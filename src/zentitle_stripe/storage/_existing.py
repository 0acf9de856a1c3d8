"""Checks that a reader's storage exists before it is opened, so nothing is created."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..exceptions import ConfigurationError

__all__ = ["check_sqlite_exists"]


def check_sqlite_exists(path: str, setting: str) -> None:
    """Refuse a SQLite file that is missing or holds no zentitle-stripe tables.

    The file is opened read-only (`mode=ro`): a reader in the wrong folder must not leave
    an empty database behind.
    """
    where = os.path.abspath(path)
    if not Path(path).is_file():
        raise ConfigurationError(
            f"{setting} names the SQLite file {where}, which does not exist (nothing was "
            "created): run the command where your app runs, pass --env-file with the app's "
            f"settings, or set {setting} to the file your app writes"
        )
    uri = Path(where).as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            row = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'zs_events'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        row = None
    if row is None:
        raise ConfigurationError(
            f"{setting} names the SQLite file {where}, which holds no zentitle-stripe "
            f"events table: is it the file your app writes? (set {setting} to that file)"
        )
