"""The database connection: one peewee proxy for SQLite and PostgreSQL alike.

`connect_database(url)` binds the proxy and creates or upgrades the schema, so the worker
and the CLI need no separate set-up step. Every write goes through `write_transaction`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from peewee import Database, DatabaseProxy, SqliteDatabase
from playhouse import db_url

database = DatabaseProxy()

_SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    # NORMAL is durable across application crashes in WAL mode; only an OS crash can
    # lose the last commits, and then the message is still in the inbox to re-read.
    "synchronous": "normal",
    "busy_timeout": 30_000,
}


def connect_database(url: str) -> Database:
    """Open the database at `url`, bind the models to it and bring the schema up to date."""
    from db.schema import upgrade_schema

    if database.obj is not None:
        database.close()
    options: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        options = {"pragmas": _SQLITE_PRAGMAS, "timeout": 30}
    # playhouse only knows "postgres"/"postgresql"; both name the same driver.
    bound = db_url.connect(url, **options)
    database.initialize(bound)
    upgrade_schema()
    return bound


def write_transaction() -> AbstractContextManager[Any]:
    """A transaction (or savepoint when nested) that takes the write lock up front.

    On SQLite a deferred transaction that reads and then writes can fail with
    "database is locked" when another process wrote in between; IMMEDIATE avoids that.
    """
    if isinstance(database.obj, SqliteDatabase) and not database.in_transaction():
        return database.atomic("IMMEDIATE")
    return database.atomic()


def is_postgresql() -> bool:
    """True when the bound database is PostgreSQL (used for row locks)."""
    return database.obj is not None and not isinstance(database.obj, SqliteDatabase)
