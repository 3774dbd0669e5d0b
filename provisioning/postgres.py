"""hookflash's tables in a shared PostgreSQL database (psycopg 3 and its connection pool).

Selected by `database_url` in the service config (or `--database-url` / the environment
variable HOOKFLASH_DATABASE_URL for a command). The URL never carries the password: it
comes from the environment variable the config names (`database_password_env`,
HOOKFLASH_DATABASE_PASSWORD by default), so that it is in no file and no message.
Messages name the database by `describe()`: user, host, port and name only.

Statements are written once for both engines (`?` placeholders, provisioning.database);
they are turned into psycopg's `%s` here, and values are always passed as parameters,
never into the SQL text.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from provisioning.database import Args, DatabaseUnavailable, Dialect, Retry, Tx
from provisioning.database_url import DEFAULT_PASSWORD_ENV, check_database_url
from provisioning.db import Schema, SchemaTooNew

log = logging.getLogger(__name__)
_CONNECT_TIMEOUT_S = 5
_POOL_TIMEOUT_S = 10  # waiting for a connection of the pool
_SCHEMA_TABLE = """CREATE TABLE IF NOT EXISTS hookflash_schema (
    name TEXT PRIMARY KEY, version INTEGER NOT NULL, migrated_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


class Row(tuple[Any, ...]):
    """A result row read by index, by column name, or as `dict(row)` (like sqlite3.Row)."""

    _index: Mapping[str, int]

    def __new__(cls, values: Iterable[Any], index: Mapping[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Callable[[Any], Any]:
    if cursor.description is None:
        return tuple
    index = {column.name: i for i, column in enumerate(cursor.description)}
    return functools.partial(Row, index=index)


@functools.lru_cache(maxsize=512)
def pg_sql(text: str) -> str:
    """A statement written with `?` placeholders, in psycopg's `%s` style."""
    return text.replace("%", "%%").replace("?", "%s")


def lock_key(name: str) -> int:
    """A stable 64-bit advisory lock key for one schema's writers."""
    return int.from_bytes(hashlib.sha256(f"hookflash.{name}".encode()).digest()[:8], "big", signed=True)


def parse_url(url: str) -> dict[str, Any]:
    """The URL's parts; refused if it holds a password or is not a PostgreSQL URL."""
    try:
        check_database_url(url)
        return conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"database_url is not a valid PostgreSQL URL: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"database_url {exc}") from None


def describe_url(parts: Mapping[str, Any]) -> str:
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', 'localhost')}{port}/{parts.get('dbname', '')}"


class _PgTx:
    dialect: Dialect = "postgres"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def query(self, text: str, args: Args = ()) -> list[Any]:
        return self._conn.execute(pg_sql(text), args).fetchall()

    def one(self, text: str, args: Args = ()) -> Any:
        return self._conn.execute(pg_sql(text), args).fetchone()

    def run(self, text: str, args: Args = ()) -> int:
        return self._conn.execute(pg_sql(text), args).rowcount

    def runmany(self, text: str, rows: Iterable[Args]) -> None:
        batch = list(rows)
        if batch:
            with self._conn.cursor() as cur:
                cur.executemany(pg_sql(text), batch)

    def notify(self, channel: str, payload: str) -> None:
        self._conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    def insert_id(self, text: str, args: Args = ()) -> int:
        row = self._conn.execute(pg_sql(text) + " RETURNING id", args).fetchone()
        assert row is not None
        return int(row[0])


class PostgresDatabase:
    """A pool of connections to one database; `schema` is brought to this release's
    version when it opens (`migrate`)."""

    dialect: Dialect = "postgres"
    errors: tuple[type[Exception], ...] = (psycopg.Error, psycopg_pool.PoolTimeout)
    unavailable: tuple[type[Exception], ...] = (
        psycopg.OperationalError,
        psycopg_pool.PoolTimeout,
        DatabaseUnavailable,
    )

    def __init__(
        self,
        url: str,
        schema: Schema,
        *,
        password_env: str = DEFAULT_PASSWORD_ENV,
        max_size: int = 8,
        migrate: bool = True,
        check: bool = True,
    ) -> None:
        """`migrate`: bring the schema to this release's version now; else, with `check`,
        refuse a schema newer than this release (without either: only look, `version`)."""
        self._parts = parse_url(url)
        self._url = url
        self.schema = schema
        self._lock_key = lock_key(schema.name)
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": _CONNECT_TIMEOUT_S,
            "application_name": "hookflash",
        }
        password = os.environ.get(password_env)
        if password:
            self._connect_kwargs["password"] = password
        self._pool = psycopg_pool.ConnectionPool(
            url,
            kwargs={**self._connect_kwargs, "row_factory": _row_factory},
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=_POOL_TIMEOUT_S,
            # A connection the server ended (a restart, a failover) is replaced when taken,
            # not handed out to fail once.
            check=psycopg_pool.ConnectionPool.check_connection,
            name=f"hookflash-{schema.name}",
        )
        # One direct attempt first: a clear error at once (the pool would retry, warn and
        # then only time out).
        try:
            psycopg.connect(self._url, **self._connect_kwargs).close()
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"{self.describe()}: cannot connect: {str(exc).strip()}") from None
        try:
            self._pool.open(wait=True, timeout=_POOL_TIMEOUT_S)
            if migrate:
                self.migrate()
            elif check:
                self.check_version()
        except psycopg_pool.PoolTimeout:
            self._pool.close()
            raise DatabaseUnavailable(
                f"{self.describe()}: no connection within {_POOL_TIMEOUT_S} s"
            ) from None
        except BaseException:
            self._pool.close()
            raise

    # -- schema -------------------------------------------------------------------------------

    def version(self) -> int:
        """The schema version stored in the database (0: none yet)."""
        with self._pool.connection() as conn:  # only reads: a read-only role may ask too
            exists = conn.execute("SELECT to_regclass('hookflash_schema') IS NOT NULL").fetchone()
            return self._stored_version(conn) if exists is not None and exists[0] else 0

    def _stored_version(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT version FROM hookflash_schema WHERE name = %s", (self.schema.name,))
        found = row.fetchone()
        return 0 if found is None else int(found[0])

    def check_version(self) -> int:
        found = self.version()
        if found > self.schema.version:
            raise SchemaTooNew(self.describe(), found, self.schema.version)
        return found

    def migrate(self) -> tuple[int, int]:
        """Bring the schema to this release's version in one transaction, under the writers'
        lock (two processes starting together migrate once); returns (found, now)."""
        target = self.schema.version
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            conn.execute(_SCHEMA_TABLE)
            found = self._stored_version(conn)
            if found > target:
                raise SchemaTooNew(self.describe(), found, target)
            tx = _PgTx(conn)
            for version in range(found + 1, target + 1):
                step = self.schema.migrations[version - 1]
                if isinstance(step, str):
                    conn.execute(step.encode())  # a script of several statements, no parameters
                else:
                    step(tx)  # type: ignore[arg-type]
            if found < target:
                conn.execute(
                    "INSERT INTO hookflash_schema (name, version) VALUES (%s, %s) ON CONFLICT (name)"
                    " DO UPDATE SET version = excluded.version, migrated_at = now()",
                    (self.schema.name, target),
                )
        if found < target:
            log.info("%s: %s schema at version %d (was %d)", self.describe(), self.schema.name, target, found)
        return found, target

    # -- statements ---------------------------------------------------------------------------

    def query(self, text: str, args: Args = ()) -> list[Any]:
        with self._pool.connection() as conn:
            return _PgTx(conn).query(text, args)

    def one(self, text: str, args: Args = ()) -> Any:
        with self._pool.connection() as conn:
            return _PgTx(conn).one(text, args)

    def run(self, text: str, args: Args = ()) -> int:
        with self._pool.connection() as conn:
            return _PgTx(conn).run(text, args)

    def runmany(self, text: str, rows: Iterable[Args]) -> None:
        with self.transaction() as tx:
            tx.runmany(text, rows)

    def notify(self, channel: str, payload: str) -> None:
        with self._pool.connection() as conn:
            _PgTx(conn).notify(channel, payload)

    def insert_id(self, text: str, args: Args = ()) -> int:
        with self.transaction() as tx:
            return tx.insert_id(text, args)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of the pool for bulk work (COPY); autocommit unless in a transaction."""
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            yield _PgTx(conn)

    def compact(self) -> None:
        return None  # deleted rows are dead tuples until autovacuum; nothing reads them

    def listen(self, channel: str, wake: Callable[[], None], retry: Retry) -> Callable[[], None]:
        """A thread holding one connection that LISTENs; it reconnects after the waits of
        `retry` and calls `wake` after each (re)connection, so the caller's catch-up query
        runs."""
        stop = threading.Event()

        def woken() -> None:
            try:
                wake()
            except Exception:  # the listener outlives any one failing wake-up
                log.exception("%s: a wake-up for %s failed", self.describe(), channel)

        def run() -> None:
            while not stop.is_set():
                try:
                    with psycopg.connect(self._url, **self._connect_kwargs) as conn:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                        retry.reset()
                        woken()
                        while not stop.is_set():
                            for _ in conn.notifies(timeout=0.5):
                                woken()
                except psycopg.Error as exc:
                    if stop.is_set():
                        return
                    log.warning("%s: listening for %s lost, reconnecting: %s", self.describe(), channel, exc)
                    stop.wait(retry.next())

        thread = threading.Thread(target=run, name=f"hookflash-listen-{channel}", daemon=True)
        thread.start()

        def close() -> None:
            stop.set()
            thread.join(timeout=2)

        return close

    def describe(self) -> str:
        return describe_url(self._parts)

    def close(self) -> None:
        self._pool.close()
