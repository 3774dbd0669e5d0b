"""The reads of the embedded store that the CLI, the privacy export and start-up make.
The fleet views read the same file through their own read-only connection."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.core.records import QuarantineEntry, TelemetryRecord
from collector.sinks.sqlite.db import TelemetryDb


def _record(row: sqlite3.Row) -> TelemetryRecord:
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


class TelemetryQueries:
    def __init__(self, db: TelemetryDb) -> None:
        self.db = db

    @classmethod
    def open(cls, path: Path) -> TelemetryQueries:
        """Reads of telemetry.db at `path`, on a connection of their own."""
        return cls(TelemetryDb(path))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> TelemetryQueries:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

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
        with self.db.read() as db:
            return [_record(r) for r in db.execute(sql, args)]

    def latest_fields(self, kind: str) -> dict[str, dict[str, Any]]:
        """Per device, the fields of its newest record of `kind` (start-up state)."""
        with self.db.read() as db:
            rows = db.execute(
                "SELECT device_id, fields, max(observed_at) FROM telemetry WHERE kind = ? GROUP BY device_id",
                (kind,),
            ).fetchall()
        return {r[0]: json.loads(r[1]) for r in rows}

    def quarantined(self, limit: int = 100, account_id: str | None = None) -> list[QuarantineEntry]:
        sql, args = "SELECT * FROM quarantine", tuple[str | int, ...]()
        if account_id is not None:
            sql, args = sql + " WHERE account_id = ?", (account_id,)
        with self.db.read() as db:
            rows = db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
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
        with self.db.read() as db:
            return [dict(r) for r in db.execute("SELECT * FROM aggregates ORDER BY 1,2,3,4,5,6")]

    def text_dump(self) -> str:
        """Every stored byte that could identify someone, as text (used to prove erasure)."""
        with self.db.read() as db:
            parts = [json.dumps(dict(r), default=str) for r in db.execute("SELECT * FROM telemetry")]
            parts += [json.dumps(dict(r)) for r in db.execute("SELECT * FROM aggregates")]
            parts += [json.dumps(dict(r)) for r in db.execute("SELECT * FROM latest")]
        parts += [json.dumps(asdict(q), default=str) for q in self.quarantined(limit=1_000_000)]
        return "\n".join(parts)
