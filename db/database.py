"""The database connection: one peewee proxy for SQLite and PostgreSQL alike.

`connect_database(url)` binds the proxy and creates or upgrades the schema, so the worker
and the CLI need no separate set-up step. Every write goes through `write_transaction`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from peewee import Database, DatabaseProxy, Model, SqliteDatabase
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


def connect_database(url: str, role: str = "") -> Database:
    """Open the database at `url`, bind the models to it and bring the schema up to date.

    On PostgreSQL the sessions are named `billing-inbox` (plus `role`, such as "sender"),
    so that an operator can tell them apart in pg_stat_activity.
    """
    from db.schema import upgrade_schema

    if not url.startswith("sqlite:"):
        _require_postgresql_driver()
    if database.obj is not None:
        database.close()
    options: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        options = {"pragmas": _SQLITE_PRAGMAS, "timeout": 30}
    elif "application_name" not in url:
        options = {"application_name": f"billing-inbox {role}".strip()}
    # playhouse only knows "postgres"/"postgresql"; both name the same driver.
    bound = db_url.connect(url, **options)
    database.initialize(bound)
    upgrade_schema()
    return bound


# Connections a forked child inherited from its parent: kept, never used, never closed.
_inherited_connections: list[Database] = []


def forget_inherited_connection() -> None:
    """In a forked child: let go of the parent's connection without closing it.

    Closing it here would end the parent's session (PostgreSQL's goodbye goes down the
    socket both processes hold) or make SQLite act on the parent's files; keeping a
    reference stops the garbage collector from closing it as well. The next
    `connect_database` opens the child's own connection.
    """
    if database.obj is not None:
        _inherited_connections.append(database.obj)
        database.initialize(None)


def missing_sqlite_file(url: str) -> Path | None:
    """The file a `sqlite:///PATH` URL names, if it does not exist yet; else None."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    if not path or path == ":memory:" or Path(path).exists():
        return None
    return Path(path)


def _require_postgresql_driver() -> None:
    # The driver is an extra: say how to install it rather than peewee's bare
    # "Postgres driver not installed".
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise RuntimeError("PostgreSQL needs its driver: pip install -e '.[postgres]' "
                           "(or psycopg2-binary)") from None


def reset_connection() -> None:
    """Drop this thread's connection after a database error; the next query reconnects.

    peewee keeps a connection it believes open even when the server has closed it (a
    restart, a failover, an idle timeout), and every later query would fail on it.
    """
    if database.obj is None or database.in_transaction():
        return
    # Closing a dead connection may fail; peewee forgets it all the same.
    with contextlib.suppress(Exception):
        database.close()


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


# Statement texts by (table, columns, dialect): built once, they are the same every time.
_STATEMENTS: dict[tuple[Any, ...], str] = {}


def insert_row(model: type[Model], **values: Any) -> int:
    """INSERT one row and return its id, with the SQL text built once per column set.

    peewee rebuilds an INSERT statement for every row, which was most of the cost of
    opening a case; the text depends only on the table and the columns, so it is cached.
    Values go through each field's `db_value` and missing fields get their defaults,
    exactly as `Model.create` would do.
    """
    meta = model._meta
    for name, field in meta.fields.items():
        if name not in values and field.default is not None and field is not meta.primary_key:
            values[name] = field.default() if callable(field.default) else field.default
    names = tuple(values)
    postgresql = is_postgresql()
    sql = _STATEMENTS.get((model, names, postgresql))
    if sql is None:
        sql = _insert_sql(model, names, postgresql)
        _STATEMENTS[(model, names, postgresql)] = sql
    params = [meta.fields[name].db_value(values[name]) for name in names]
    cursor = database.execute_sql(sql, params)
    return cursor.fetchone()[0] if postgresql else cursor.lastrowid


def update_row(model: type[Model], row_id: int, **values: Any) -> None:
    """UPDATE columns of the row with this id; the SQL text is cached as for `insert_row`."""
    meta = model._meta
    names = tuple(values)
    key = ("update", model, names, is_postgresql())
    sql = _STATEMENTS.get(key)
    if sql is None:
        quote = _quoter()
        assignments = ", ".join(f"{quote(meta.fields[name].column_name)} = {database.obj.param}"
                                for name in names)
        sql = (f"UPDATE {quote(meta.table_name)} SET {assignments} "
               f"WHERE {quote(meta.primary_key.column_name)} = {database.obj.param}")
        _STATEMENTS[key] = sql
    params = [meta.fields[name].db_value(values[name]) for name in names]
    database.execute_sql(sql, [*params, row_id])


def _quoter() -> Callable[[str], str]:
    opening, closing_quote = database.obj.quote[0], database.obj.quote[-1]
    return lambda identifier: f"{opening}{identifier}{closing_quote}"


def _insert_sql(model: type[Model], names: tuple[str, ...], postgresql: bool) -> str:
    meta = model._meta
    quoted = _quoter()
    columns = ", ".join(quoted(meta.fields[name].column_name) for name in names)
    placeholders = ", ".join([database.obj.param] * len(names))
    sql = f"INSERT INTO {quoted(meta.table_name)} ({columns}) VALUES ({placeholders})"
    if postgresql:
        sql += f" RETURNING {quoted(meta.primary_key.column_name)}"
    return sql
