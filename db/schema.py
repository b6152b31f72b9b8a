"""Creating and upgrading the schema, so `db init`, the worker and the CLI agree on it.

Each entry of `MIGRATIONS` brings the schema from one version to the next; version 1
creates everything. A later change appends a step here instead of editing version 1.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from db.database import database, is_postgresql, write_transaction
from db.models import ALL_MODELS, SchemaVersion


def _create_tables() -> None:
    database.create_tables(ALL_MODELS, safe=True)


_SCHEMA_LOCK_KEY = 0x42494C4C  # 'BILL'

def _index_claim_tokens() -> None:
    # Without it, reading a claim back scanned every message and, on SQLite, every raw
    # email stored before the column: a sender slowed as the database grew.
    database.execute_sql(
        'CREATE INDEX IF NOT EXISTS "message_claim_token" ON "message" ("claim_token")')


MIGRATIONS: list[Callable[[], None]] = [_create_tables, _index_claim_tokens]


def schema_version() -> int:
    """The version the connected database is at (0 when empty)."""
    if not SchemaVersion.table_exists():
        return 0
    latest = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return latest.version if latest else 0


def upgrade_schema() -> int:
    """Apply every migration the database has not seen yet; returns the new version."""
    current = schema_version()
    if current >= len(MIGRATIONS):
        return current
    with write_transaction():
        if is_postgresql():
            # Workers starting together would otherwise race on CREATE TABLE.
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        # Re-read under the write lock: another worker may have just upgraded.
        current = schema_version()
        for version, migrate in enumerate(MIGRATIONS[current:], start=current + 1):
            migrate()
            SchemaVersion.create(version=version, applied_at=datetime.now(UTC))
    return len(MIGRATIONS)
