"""The one way hookflash opens its SQLite files: WAL (readers never block the writer),
a busy timeout (several processes share a data dir), rows addressable by column name, and
the file's schema brought to this release's version by ordered migrations.

Each file records its schema version in SQLite's `user_version`. Migration n takes a file
from version n-1 to n; a new file runs them all. They run in one IMMEDIATE transaction, so
two processes opening the same old file at once migrate it once, and a failed migration
leaves the file as it was. A file written by a newer release (a higher version than this
release knows) is refused, naming the file and both versions: this release could
misread it, or write rows the newer one does not expect.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
Migration = str | Callable[[sqlite3.Connection], None]  # a SQL script, or a step in Python


class SchemaTooNew(RuntimeError):
    def __init__(self, path: Path | str, found: int, supported: int) -> None:
        super().__init__(
            f"{path}: schema version {found} was written by a newer hookflash release; this "
            f"release reads up to version {supported}. Upgrade hookflash, or use a backup made by "
            "this release"
        )
        self.path, self.found, self.supported = path, found, supported


@dataclass(frozen=True)
class Schema:
    """A SQLite file's schema as ordered migrations: `migrations[n - 1]` makes version n."""

    name: str
    migrations: tuple[Migration, ...]

    @property
    def version(self) -> int:
        return len(self.migrations)


def run_script(db: sqlite3.Connection, script: str) -> None:
    """Execute each statement of `script` in the current transaction (`executescript`
    would commit it first). Statements end at a `;` that completes one, so trigger bodies
    with `;` inside stay whole."""
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n\t;"):
                db.execute(statement)
            statement = ""
    if statement.strip(" \n\t;"):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {statement[:80]!r}")


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, path: Path, schema: Schema) -> tuple[int, int]:
    """Bring the file to `schema.version`; returns (version found, version now)."""
    found = schema_version(db)
    if found > schema.version:
        raise SchemaTooNew(path, found, schema.version)
    if found == schema.version:
        return found, found
    db.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(db)  # another process may have migrated meanwhile
        if found > schema.version:
            raise SchemaTooNew(path, found, schema.version)
        fresh = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        for version in range(found + 1, schema.version + 1):
            step = schema.migrations[version - 1]
            if isinstance(step, str):
                run_script(db, step)
            else:
                step(db)
        db.execute(f"PRAGMA user_version = {schema.version:d}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    if fresh:
        log.debug("%s: created, %s schema version %d", path, schema.name, schema.version)
    elif found < schema.version:
        log.info("%s: %s schema upgraded from version %d to %d", path, schema.name, found, schema.version)
    return found, schema.version


def open_db(path: Path, schema: Schema, *pragmas: str) -> sqlite3.Connection:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Shared between the event loop and one writer thread; callers serialize with a lock.
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=5000")
        found = schema_version(db)
        if found > schema.version:  # before anything below changes the file
            raise SchemaTooNew(path, found, schema.version)
        for pragma in ("journal_mode=WAL", *pragmas):
            db.execute(f"PRAGMA {pragma}")
        migrate(db, path, schema)
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def transaction(
    db: sqlite3.Connection, lock: threading.Lock | threading.RLock
) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
