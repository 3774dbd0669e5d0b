"""Embedded telemetry store: SQLite in WAL mode, with erasure, anonymization and sweeping.

Used from one writer thread inside the service (see collector.service) and directly by
the CLI; a lock makes the single connection safe to share.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.decode.mqtt import QuarantineEntry
from collector.records import TelemetryRecord
from collector.retention import EndAction, RetentionClass
from collector.views.latest import ensure_latest
from provisioning.db import open_db, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS remote_erasures (
    account_id TEXT NOT NULL, status_changed_at TEXT NOT NULL,
    PRIMARY KEY (account_id, status_changed_at)
);
CREATE TABLE IF NOT EXISTS telemetry (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL, account_id TEXT NOT NULL, kind TEXT NOT NULL,
    observed_at REAL NOT NULL, received_at REAL NOT NULL, retention_class TEXT NOT NULL,
    source TEXT NOT NULL, model TEXT NOT NULL, firmware TEXT, fields TEXT NOT NULL,
    dedupe_key TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS telemetry_dedupe ON telemetry(dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS telemetry_account ON telemetry(account_id, observed_at);
CREATE INDEX IF NOT EXISTS telemetry_device ON telemetry(device_id, kind, observed_at);
CREATE INDEX IF NOT EXISTS telemetry_class ON telemetry(retention_class, observed_at);
CREATE TABLE IF NOT EXISTS aggregates (
    retention_class TEXT NOT NULL, kind TEXT NOT NULL, model TEXT NOT NULL,
    firmware TEXT NOT NULL, day TEXT NOT NULL, field TEXT NOT NULL,
    count INTEGER NOT NULL, sum REAL, min REAL, max REAL,
    PRIMARY KEY (retention_class, kind, model, firmware, day, field)
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, source TEXT NOT NULL, topic TEXT NOT NULL,
    size INTEGER NOT NULL, head TEXT NOT NULL, reason TEXT NOT NULL,
    device_id TEXT, account_id TEXT, at_ts REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS quarantine_account ON quarantine(account_id);
"""

_INSERT_BATCH = """
INSERT OR IGNORE INTO telemetry (device_id, account_id, kind, observed_at, received_at,
                                 retention_class, source, model, firmware, fields, dedupe_key)
SELECT value->>0, value->>1, value->>2, value->>3, ?, value->>4, value->>5, value->>6, value->>7,
       value->>8, value->>9
FROM json_each(?)
"""

_UPSERT_AGGREGATE = """
INSERT INTO aggregates VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)
ON CONFLICT (retention_class, kind, model, firmware, day, field) DO UPDATE SET
    count = count + 1,
    sum = CASE WHEN excluded.sum IS NULL THEN sum ELSE coalesce(sum, 0) + excluded.sum END,
    min = CASE WHEN excluded.min IS NULL THEN min ELSE min(coalesce(min, excluded.min), excluded.min) END,
    max = CASE WHEN excluded.max IS NULL THEN max ELSE max(coalesce(max, excluded.max), excluded.max) END
"""


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _row_to_record(row: sqlite3.Row) -> TelemetryRecord:
    return TelemetryRecord(
        device_id=row["device_id"],
        account_id=row["account_id"],
        kind=row["kind"],
        observed_at=datetime.fromtimestamp(row["observed_at"], UTC),
        fields=json.loads(row["fields"]),
        retention_class=row["retention_class"],
        source=row["source"],
        model=row["model"],
        firmware=row["firmware"],
    )


class SqliteStore:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        # secure_delete: erased rows are overwritten on disk, not just unlinked.
        self._db = open_db(path, _SCHEMA, "synchronous=NORMAL", "secure_delete=ON")
        ensure_latest(self._db)  # the fleet views' index, kept by triggers (collector.views)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db, self._lock)

    # -- writing ---------------------------------------------------------------------------

    def write(self, records: Sequence[TelemetryRecord]) -> int:
        # The whole batch goes in as one JSON parameter expanded by json_each: one SQLite
        # call, so the writer thread takes the GIL once per batch instead of once per row
        # (per-row re-acquisition convoys with a busy event loop and crawls).
        rows = json.dumps(
            [
                [
                    r.device_id,
                    r.account_id,
                    r.kind.value,
                    r.observed_at.timestamp(),
                    r.retention_class,
                    r.source,
                    r.model,
                    r.firmware,
                    r.fields,
                    r.dedupe_key,
                ]
                for r in records
            ],
            separators=(",", ":"),
        )
        with self._tx() as db:
            db.execute(_INSERT_BATCH, (_ts(datetime.now(UTC)), rows))
        return len(records)

    def quarantine(self, entries: Iterable[QuarantineEntry]) -> None:
        rows = [
            (
                e.at.isoformat(),
                e.source,
                e.topic,
                e.size,
                e.head,
                e.reason,
                e.device_id,
                e.account_id,
                _ts(e.at),
            )
            for e in entries
        ]
        with self._tx() as db:
            db.executemany(
                "INSERT INTO quarantine (at, source, topic, size, head, reason, device_id, account_id,"
                " at_ts) VALUES (?,?,?,?,?,?,?,?,?)",
                rows,
            )

    # -- reading ---------------------------------------------------------------------------

    def query(
        self,
        device_id: str | None = None,
        account_id: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[TelemetryRecord]:
        sql, args = "SELECT * FROM telemetry WHERE 1=1", list[str | int]()
        for column, value in (("device_id", device_id), ("account_id", account_id), ("kind", kind)):
            if value is not None:
                sql, args = f"{sql} AND {column} = ?", [*args, value]
        sql += " ORDER BY observed_at, id"
        if limit is not None:
            sql, args = sql + " LIMIT ?", [*args, limit]
        with self._lock:
            return [_row_to_record(r) for r in self._db.execute(sql, args)]

    def latest_fields(self, kind: str) -> dict[str, dict[str, Any]]:
        """Per device, the fields of its newest record of `kind` (start-up state)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT device_id, fields, max(observed_at) FROM telemetry WHERE kind = ? GROUP BY device_id",
                (kind,),
            ).fetchall()
        return {r[0]: json.loads(r[1]) for r in rows}

    def quarantined(self, limit: int = 100, account_id: str | None = None) -> list[QuarantineEntry]:
        sql, args = "SELECT * FROM quarantine", tuple[str | int, ...]()
        if account_id is not None:
            sql, args = sql + " WHERE account_id = ?", (account_id,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [
            QuarantineEntry(
                at=datetime.fromisoformat(r["at"]),
                source=r["source"],
                topic=r["topic"],
                size=r["size"],
                head=r["head"],
                reason=r["reason"],
                device_id=r["device_id"],
                account_id=r["account_id"],
            )
            for r in rows
        ]

    def aggregates(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute("SELECT * FROM aggregates ORDER BY 1,2,3,4,5,6")]

    def text_dump(self) -> str:
        """Every stored byte that could identify someone, as text (used to prove erasure)."""
        with self._lock:
            parts = [json.dumps(dict(r), default=str) for r in self._db.execute("SELECT * FROM telemetry")]
            parts += [json.dumps(dict(r)) for r in self._db.execute("SELECT * FROM aggregates")]
            parts += [json.dumps(dict(r)) for r in self._db.execute("SELECT * FROM latest")]
            parts += [json.dumps(asdict(q), default=str) for q in self.quarantined(limit=1_000_000)]
        return "\n".join(parts)

    # -- ending data -------------------------------------------------------------------------

    def purge_since(self, account_id: str, since: datetime, device_id: str | None = None) -> int:
        sql = "DELETE FROM telemetry WHERE account_id = ? AND (observed_at >= ? OR received_at >= ?)"
        args: tuple[str | float, ...] = (account_id, _ts(since), _ts(since))
        quarantine = "DELETE FROM quarantine WHERE account_id = ? AND at_ts >= ?"
        quarantine_args: tuple[str | float, ...] = (account_id, _ts(since))
        if device_id is not None:
            sql, args = sql + " AND device_id = ?", (*args, device_id)
            quarantine, quarantine_args = quarantine + " AND device_id = ?", (*quarantine_args, device_id)
        with self._tx() as db:
            db.execute(quarantine, quarantine_args)  # quarantined payloads are the account's data too
            return db.execute(sql, args).rowcount

    def last_seen(self, account_id: str) -> dict[str, datetime]:
        """When each of the account's devices last produced a stored record."""
        with self._lock:
            rows = self._db.execute(
                "SELECT device_id, max(observed_at) FROM telemetry WHERE account_id = ? GROUP BY 1",
                (account_id,),
            ).fetchall()
        return {r[0]: datetime.fromtimestamp(r[1], UTC) for r in rows}

    def erase_account(
        self, account_id: str, classes: Sequence[RetentionClass], aggregate_text: frozenset[str]
    ) -> dict[str, int]:
        counts = {
            cls.name: self._end(cls, "account_id = ?", (account_id,), aggregate_text) for cls in classes
        }
        with self._tx() as db:
            counts["quarantine"] = db.execute(
                "DELETE FROM quarantine WHERE account_id = ?", (account_id,)
            ).rowcount
        return counts

    def remote_erased(self, account_id: str, status_changed_at: datetime) -> bool:
        """Whether the remote sinks were already told to end this account's data for the
        status it took at `status_changed_at` (the sweeper asks them once per status)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM remote_erasures WHERE account_id = ? AND status_changed_at = ?",
                (account_id, status_changed_at.isoformat()),
            ).fetchone()
        return row is not None

    def mark_remote_erased(self, account_id: str, status_changed_at: datetime) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO remote_erasures VALUES (?, ?)",
                (account_id, status_changed_at.isoformat()),
            )

    def expire_quarantine(self, older_than: datetime) -> int:
        with self._tx() as db:
            return db.execute("DELETE FROM quarantine WHERE at_ts < ?", (_ts(older_than),)).rowcount

    def expire(self, cls: RetentionClass, older_than: datetime, aggregate_text: frozenset[str]) -> int:
        return self._end(cls, "observed_at < ?", (_ts(older_than),), aggregate_text)

    def _end(
        self, cls: RetentionClass, where: str, args: tuple[Any, ...], aggregate_text: frozenset[str]
    ) -> int:
        predicate = f"retention_class = ? AND {where}"
        params = (cls.name, *args)
        with self._tx() as db:
            if cls.end_action is EndAction.ANONYMIZE:
                for row in db.execute(f"SELECT * FROM telemetry WHERE {predicate}", params).fetchall():
                    self._fold(db, row, aggregate_text)
            cur = db.execute(f"DELETE FROM telemetry WHERE {predicate}", params)
        return cur.rowcount

    @staticmethod
    def _fold(db: sqlite3.Connection, row: sqlite3.Row, aggregate_text: frozenset[str]) -> None:
        """Fold one record into per-model/firmware/day aggregates; identifiers are dropped."""
        day = datetime.fromtimestamp(row["observed_at"], UTC).strftime("%Y-%m-%d")
        key = (row["retention_class"], row["kind"], row["model"], row["firmware"] or "", day)
        for name, value in json.loads(row["fields"]).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                if name in aggregate_text and isinstance(value, str | bool):
                    db.execute(_UPSERT_AGGREGATE, (*key, f"{name}={value}", None, None, None))
                continue
            db.execute(_UPSERT_AGGREGATE, (*key, name, value, value, value))
