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
    return _insert(model, values)


def insert_numbered_row(model: type[Model], number_field: str, prefix: str,
                        **values: Any) -> int:
    """`insert_row`, with `number_field` set to `PREFIX-000123` where 123 is the new row's
    id, in the same statement; returns the id.

    The id is the one the database would give: the next of its sequence (PostgreSQL),
    or one more than the largest (SQLite, where the caller's transaction holds the write
    lock). A second statement to write the number cost as much as a tenth of recording
    an email.
    """
    return _insert(model, values, (number_field, prefix))


def _insert(model: type[Model], values: dict[str, Any],
            numbered: tuple[str, str] | None = None) -> int:
    meta = model._meta
    for name, field in meta.fields.items():
        if name not in values and field.default is not None and field is not meta.primary_key:
            values[name] = field.default() if callable(field.default) else field.default
    names = tuple(values)
    postgresql = is_postgresql()
    number_field = numbered[0] if numbered else None
    key = (model, names, postgresql, number_field)
    sql = _STATEMENTS.get(key)
    if sql is None:
        sql = _STATEMENTS[key] = _insert_sql(model, names, postgresql, number_field)
    params = [meta.fields[name].db_value(values[name]) for name in names]
    if numbered:
        params.insert(0, numbered[1])
    cursor = database.execute_sql(sql, params)
    return cursor.fetchone()[0] if postgresql else cursor.lastrowid


def _quoter() -> Callable[[str], str]:
    opening, closing_quote = database.obj.quote[0], database.obj.quote[-1]
    return lambda identifier: f"{opening}{identifier}{closing_quote}"


def _insert_sql(
    model: type[Model], names: tuple[str, ...], postgresql: bool, number_field: str | None
) -> str:
    meta = model._meta
    quoted = _quoter()
    table, key = quoted(meta.table_name), quoted(meta.primary_key.column_name)
    columns = ", ".join(quoted(meta.fields[name].column_name) for name in names)
    placeholders = ", ".join([database.obj.param] * len(names))
    if number_field is None:
        sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"
    else:
        # At least six digits, as f"{id:06d}" writes them.
        if postgresql:
            sequence = f"pg_get_serial_sequence('{table}', '{meta.primary_key.column_name}')"
            source = f"(SELECT nextval({sequence}) AS next_id) AS next"
            digits = "lpad(next_id::text, greatest(6, length(next_id::text)), '0')"
        else:
            source = f"(SELECT coalesce(max({key}), 0) + 1 AS next_id FROM {table}) AS next"
            digits = "printf('%06d', next_id)"
        number_column = quoted(meta.fields[number_field].column_name)
        sql = (f"INSERT INTO {table} ({key}, {number_column}, {columns}) "
               f"SELECT next_id, {database.obj.param} || '-' || {digits}, {placeholders} "
               f"FROM {source}")
    if postgresql:
        sql += f" RETURNING {key}"
    return sql
