"""`migrate`: create or upgrade the storage schema where the backend keeps one."""

from __future__ import annotations

from typing import Any

import attrs

from ..storage import MemoryStorage, Storage
from ..storage.sqlite import SCHEMA_VERSION, SQLiteStorage


@attrs.frozen
class MigrateResult:
    """The storage and the schema version it now has (`None`: it keeps no schema)."""

    storage: str
    version: int | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def migrate_storage(storage: Storage) -> MigrateResult:
    """Create or upgrade the schema where the backend has one.

    PostgreSQL has `migrate()` (its servers are often started without DDL rights);
    SQLite creates its schema when opened, so there is nothing left to do.
    """
    migrate = getattr(storage, "migrate", None)
    if callable(migrate):
        version = int(migrate())
        return MigrateResult(repr(storage), version, "schema created or upgraded")
    if isinstance(storage, SQLiteStorage):
        return MigrateResult(repr(storage), SCHEMA_VERSION, "opening the file created the schema")
    if isinstance(storage, MemoryStorage):
        return MigrateResult(repr(storage), None, "memory storage keeps nothing to migrate")
    return MigrateResult(repr(storage), None, "this backend has no migrate(); nothing done")
