"""Moving a data dir's registry (registry.db) into a PostgreSQL database.

All or nothing: the rows go in through COPY in one transaction, each table's count is
checked against the file's before the commit, and a database that already holds a
registry is refused (a copy never merges two registries). Event and audit ids are kept,
so a collector that read events up to id N goes on from N; the identity sequences then
continue after the highest id. Running collectors' heartbeats are not copied (they are
made again within a second), the pseudonym key stays in the data dir (it is never put in
a database).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from psycopg import sql

from provisioning.db import open_db
from provisioning.postgres import PostgresDatabase, lock_key
from provisioning.schema import ACCOUNT_COLUMNS, DEVICE_COLUMNS, REGISTRY, REGISTRY_PG

# In this order (devices refer to accounts); identity: tables whose ids go on counting.
TABLES: dict[str, tuple[str, ...]] = {
    "accounts": ACCOUNT_COLUMNS,
    "devices": DEVICE_COLUMNS,
    "audit": ("id", "at", "account_id", "device_id", "action", "detail"),
    "events": ("id", "at", "type", "account_id", "device_id"),
    "event_acks": ("event_id", "collector_id", "acked_at"),
    "receipts": (
        "id",
        "request_id",
        "account_id",
        "device_id",
        "action",
        "reason",
        "requested_at",
        "status",
        "completed_at",
        "result",
    ),
    "outbox": (
        "id",
        "webhook",
        "event",
        "account_id",
        "payload",
        "created_at",
        "attempts",
        "next_attempt_at",
        "claimed_until",
        "status",
        "delivered_at",
        "last_error",
    ),
    "remote_stores": ("name", "since"),
}
IDENTITY = ("audit", "events")
Progress = Callable[[str, int], None]  # (table, rows copied since the last call)
_CHUNK = 2000


class CopyRefused(ValueError):
    """Nothing copied: the target holds a registry already, or the source is in use."""


def source_counts(db: sqlite3.Connection) -> dict[str, int]:
    return {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}


def copy_registry(source: Path, target: PostgresDatabase, progress: Progress | None = None) -> dict[str, int]:
    """Copy registry.db at `source` into `target` (migrated, empty); the rows per table."""
    db = open_db(source, REGISTRY)  # brought to this release's schema first, as any open does
    try:
        cutoff = time.time() - 3  # heartbeats are every second
        running = db.execute("SELECT id FROM collectors WHERE heartbeat_at >= ?", (cutoff,)).fetchall()
        if running:
            who = running[0][0]
            raise CopyRefused(f"a collector is running on {source} ({who}): stop it; nothing copied")
        db.execute("BEGIN")  # one snapshot of the file for the counts and every table
        counts = source_counts(db)
        with target.connection() as conn, conn.transaction():
            # No writer meanwhile: a collector starting now waits for the commit.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(REGISTRY_PG.name),))
            busy = [t for t in TABLES if _count(conn, t)]
            if busy:
                raise CopyRefused(
                    f"{target.describe()} already holds a registry (rows in {', '.join(busy)}); "
                    "copy into an empty database, nothing copied"
                )
            for table, columns in TABLES.items():
                _copy_table(db, conn, table, columns, progress)
            for table in IDENTITY:
                conn.execute(
                    sql.SQL(
                        "SELECT setval(pg_get_serial_sequence({t}, 'id'), coalesce(max(id), 0) + 1, false)"
                        " FROM {i}"
                    ).format(t=sql.Literal(table), i=sql.Identifier(table))
                )
            copied = {t: _count(conn, t) for t in TABLES}
            if copied != counts:
                wrong = {t: (counts[t], copied[t]) for t in TABLES if counts[t] != copied[t]}
                raise RuntimeError(
                    f"row counts differ after the copy (file, database): {wrong}; nothing copied"
                )
        db.execute("COMMIT")
    finally:
        db.close()
    return counts


def _count(conn: Any, table: str) -> int:
    return int(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0])


def _copy_table(
    db: sqlite3.Connection, conn: Any, table: str, columns: tuple[str, ...], progress: Progress | None
) -> None:
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), names)
    rows = db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid")
    with conn.cursor() as cur, cur.copy(statement) as copy:
        while chunk := rows.fetchmany(_CHUNK):
            for row in chunk:
                copy.write_row(tuple(row))
            if progress is not None:
                progress(table, len(chunk))
