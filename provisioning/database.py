"""The seam between hookflash's tables and the engine that holds them.

Two engines: the embedded SQLite files of a data dir (`SqliteDatabase`, the default) and a
shared PostgreSQL database (`provisioning.postgres.PostgresDatabase`, when the config sets
`database_url`). Code above this module writes one SQL text for both: `?` placeholders,
`INSERT … ON CONFLICT`, `insert_id`; where the engines differ (JSON functions, freeing
the bytes of what was deleted) it asks the database (`dialect`, `compact`).

Reads run on their own; writes run in `transaction()`, one at a time per database:
SQLite's BEGIN IMMEDIATE, and on PostgreSQL an advisory lock held to the commit. That
serial order is what lets a collector read lifecycle events by id (`id > last seen`)
without ever skipping one that committed late.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

from provisioning.db import Schema, open_db, transaction

Row = Any  # sqlite3.Row or provisioning.postgres.Row: by index, by column name, dict(row)
Args = Sequence[Any]
Dialect = Literal["sqlite", "postgres"]
EVENTS_CHANNEL = "hookflash_events"  # what a status change NOTIFYs on PostgreSQL


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached or refused hookflash (named without a password)."""


class Retry(Protocol):
    """The waits of a retry loop (collector.core.backoff.Backoff is one)."""

    def next(self) -> float: ...

    def reset(self) -> None: ...


class Tx(Protocol):
    """The statements of one transaction."""

    dialect: Dialect

    def query(self, sql: str, args: Args = ()) -> list[Row]: ...

    def one(self, sql: str, args: Args = ()) -> Row | None: ...

    def run(self, sql: str, args: Args = ()) -> int:
        """Execute one statement; the number of rows it changed."""
        ...

    def runmany(self, sql: str, rows: Iterable[Args]) -> None: ...

    def notify(self, channel: str, payload: str) -> None:
        """Tell listeners on other connections, at commit (nothing on SQLite)."""
        ...

    def insert_id(self, sql: str, args: Args = ()) -> int:
        """Execute one INSERT; the `id` it gave the new row (lastrowid on SQLite, which
        has RETURNING only from 3.35 on; RETURNING on PostgreSQL)."""
        ...


class Database(Tx, Protocol):
    errors: tuple[type[Exception], ...]  # what the engine raises (its errors' bases)
    # What a database that cannot be used now raises (locked, unreachable, restarting):
    # worth a retry, a 503 for an API caller.
    unavailable: tuple[type[Exception], ...]

    def transaction(self) -> AbstractContextManager[Tx]: ...

    def compact(self) -> None:
        """Make what was deleted leave the engine's files where it can (SQLite's WAL)."""
        ...

    def listen(self, channel: str, wake: Callable[[], None], retry: Retry) -> Callable[[], None] | None:
        """Call `wake` on each notification on `channel` and after each reconnection (a
        notice may have been missed meanwhile; `retry` spaces the attempts); returns how to
        stop. None: this engine has no notifications, its readers poll."""
        ...

    def describe(self) -> str:
        """Where the data is, for messages: a path, or a URL without its password."""
        ...

    def close(self) -> None: ...


class _SqliteTx:
    dialect: Dialect = "sqlite"

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def query(self, sql: str, args: Args = ()) -> list[Row]:
        return self._db.execute(sql, args).fetchall()

    def one(self, sql: str, args: Args = ()) -> Row | None:
        return self._db.execute(sql, args).fetchone()

    def run(self, sql: str, args: Args = ()) -> int:
        return self._db.execute(sql, args).rowcount

    def runmany(self, sql: str, rows: Iterable[Args]) -> None:
        self._db.executemany(sql, rows)

    def notify(self, channel: str, payload: str) -> None:
        return None

    def insert_id(self, sql: str, args: Args = ()) -> int:
        row_id = self._db.execute(sql, args).lastrowid
        assert row_id is not None
        return row_id


class SqliteDatabase:
    """One SQLite file of the data dir, shared by the threads of this process (one lock)."""

    dialect: Dialect = "sqlite"
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    unavailable: tuple[type[Exception], ...] = (sqlite3.OperationalError,)

    def __init__(self, path: Path, schema: Schema, *pragmas: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = open_db(path, schema, *pragmas)
        self._tx = _SqliteTx(self._db)

    def query(self, sql: str, args: Args = ()) -> list[Row]:
        with self._lock:
            return self._tx.query(sql, args)

    def one(self, sql: str, args: Args = ()) -> Row | None:
        with self._lock:
            return self._tx.one(sql, args)

    def run(self, sql: str, args: Args = ()) -> int:
        with self._lock:
            return self._tx.run(sql, args)

    def runmany(self, sql: str, rows: Iterable[Args]) -> None:
        with self._lock:
            self._tx.runmany(sql, rows)

    def notify(self, channel: str, payload: str) -> None:
        return None

    def insert_id(self, sql: str, args: Args = ()) -> int:
        with self._lock:
            return self._tx.insert_id(sql, args)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with transaction(self._db, self._lock):
            yield self._tx

    def compact(self) -> None:
        with self._lock:  # the old bytes leave the WAL too (secure_delete zeroed them in the file)
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def listen(self, channel: str, wake: Callable[[], None], retry: Retry) -> Callable[[], None] | None:
        return None

    def describe(self) -> str:
        return str(self.path)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def json_field_is_null(tx: Tx, column: str, field: str) -> str:
    """SQL true when the JSON text in `column` has no `field` (or it is null)."""
    if tx.dialect == "postgres":
        return f"(({column})::jsonb ->> '{field}') IS NULL"  # ->>: a JSON null is SQL NULL too
    return f"json_extract({column}, '$.{field}') IS NULL"


def contains(tx: Tx, column: str) -> str:
    """SQL true when the text in `column` contains the next `?` argument."""
    if tx.dialect == "postgres":
        return f"strpos({column}, ?) > 0"
    return f"instr({column}, ?) > 0"


def in_list(count: int) -> str:
    """`(?, ?, …)` for `count` values, for `x IN …`; `(NULL)`, which matches nothing, for
    none (an empty list is not SQL everywhere). Not for `NOT IN`: that would match nothing too."""
    return "(" + (",".join("?" * count) or "NULL") + ")"


def connect(
    location: Path | str,
    sqlite_schema: Schema,
    postgres_schema: Schema,
    *pragmas: str,
    password_env: str | None = None,
) -> Database:
    """A data dir's file (a Path) or a PostgreSQL database (a postgresql:// URL), its
    schema brought to this release's version."""
    if isinstance(location, Path):
        return SqliteDatabase(location, sqlite_schema, *pragmas)
    from provisioning.database_url import DEFAULT_PASSWORD_ENV
    from provisioning.postgres import PostgresDatabase

    return PostgresDatabase(location, postgres_schema, password_env=password_env or DEFAULT_PASSWORD_ENV)
