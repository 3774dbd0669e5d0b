"""A read-only connection to telemetry.db with registry.db attached, for the views.

Separate from the store's connection, so a long read never holds up the writer thread
(WAL: readers and the writer do not block each other). Views join only devices whose
account is active (`ACTIVE_DEVICES`): a stopped account's devices are not shown.

With the registry in PostgreSQL, `reg` is an in-memory copy of its accounts and devices,
read again whenever the registry has emitted a lifecycle event since the last copy (one
indexed query per view call finds out), so a view never shows a stopped account.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from provisioning.database import Database, SqliteDatabase
from provisioning.schema import DEVICE_COLUMNS

ACTIVE_DEVICES = """active AS (
    SELECT d.id, d.account_id, d.vendor, d.model FROM reg.devices d
    JOIN reg.accounts a ON a.id = d.account_id WHERE a.status = 'active'
)"""


def _uri(path: Path) -> str:
    return f"file:{quote(str(path.resolve()))}?mode=ro"


def iso(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def at(ts: float) -> str:
    """A stored timestamp as ISO 8601 text (UTC)."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


_COPIED = {  # what the views join on; a device's credential set name is never copied
    "accounts": ("id", "status"),
    "devices": tuple(c for c in DEVICE_COLUMNS if c != "credentials"),
}


class ViewsDb:
    def __init__(self, telemetry: Path, registry: Path | Database) -> None:
        if isinstance(registry, SqliteDatabase):
            registry = registry.path
        for path in (telemetry, registry):
            if isinstance(path, Path) and not path.is_file():
                raise ValueError(f"{path} not found: no hookflash data there")
        self._lock = threading.Lock()
        db = sqlite3.connect(_uri(telemetry), uri=True, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=5000")
        self._remote: Database | None = None
        self._copied_at_event = -1
        if isinstance(registry, Path):
            db.execute("ATTACH DATABASE ? AS reg", (_uri(registry),))
        else:
            self._remote = registry
            db.execute("ATTACH DATABASE ':memory:' AS reg")
            for table, columns in _COPIED.items():
                db.execute(f"CREATE TABLE reg.{table} ({', '.join(columns)}, PRIMARY KEY (id))")
            db.execute("CREATE INDEX reg.devices_account ON devices(account_id)")
        self._db = db

    def _refresh(self) -> None:
        """With the lock held: copy the remote registry's tables again if it changed."""
        assert self._remote is not None
        last = self._remote.one("SELECT coalesce(max(id), 0) FROM events")
        if last is None or last[0] == self._copied_at_event:
            return
        # Read after the event id: the copy holds at least what that event changed.
        copies = {t: self._remote.query(f"SELECT {', '.join(c)} FROM {t}") for t, c in _COPIED.items()}
        self._db.execute("BEGIN")
        try:
            for table, rows in copies.items():
                self._db.execute(f"DELETE FROM reg.{table}")
                marks = ", ".join("?" * len(_COPIED[table]))
                self._db.executemany(f"INSERT INTO reg.{table} VALUES ({marks})", [tuple(r) for r in rows])
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._copied_at_event = last[0]

    def rows(self, sql: str, args: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            if self._remote is not None:
                self._refresh()
            return self._db.execute(sql, args).fetchall()

    def one(self, sql: str, args: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row:
        rows = self.rows(sql, args)
        assert rows, "aggregate query returned no row"
        return rows[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
