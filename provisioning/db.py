"""The one way hookflash opens its SQLite files: WAL (readers never block the writer),
a busy timeout (several processes share a data dir), rows addressable by column name."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def open_db(path: Path, schema: str, *pragmas: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Shared between the event loop and one writer thread; callers serialize with a lock.
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.row_factory = sqlite3.Row
    for pragma in ("journal_mode=WAL", "busy_timeout=5000", *pragmas):
        db.execute(f"PRAGMA {pragma}")
    db.executescript(schema)
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
