"""A read-only connection to telemetry.db with registry.db attached, for the views.

Separate from the store's connection, so a long read never holds up the writer thread
(WAL: readers and the writer do not block each other). Views join only devices whose
account is active (`ACTIVE_DEVICES`): a stopped account's devices are not shown.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

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


class ViewsDb:
    def __init__(self, telemetry: Path, registry: Path) -> None:
        for path in (telemetry, registry):
            if not path.is_file():
                raise ValueError(f"{path} not found: no hookflash data there")
        self._lock = threading.Lock()
        db = sqlite3.connect(_uri(telemetry), uri=True, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("ATTACH DATABASE ? AS reg", (_uri(registry),))
        self._db = db

    def rows(self, sql: str, args: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def one(self, sql: str, args: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row:
        rows = self.rows(sql, args)
        assert rows, "aggregate query returned no row"
        return rows[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
