"""The embedded telemetry sink: writes in batches, and ends data by each class's action."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from collector.core.records import Anonymization, EndAction, RetentionClass, TelemetryRecord
from collector.sinks.sqlite.anonymize import fold
from collector.sinks.sqlite.db import TelemetryDb

_INSERT_BATCH = """
INSERT OR IGNORE INTO telemetry (device_id, account_id, kind, observed_at, received_at,
                                 retention_class, source, model, firmware, fields, dedupe_key)
SELECT value->>0, value->>1, value->>2, value->>3, ?, value->>4, value->>5, value->>6, value->>7,
       value->>8, value->>9
FROM json_each(?)
"""


class SqliteSink:
    name = "sqlite"

    def __init__(self, db: TelemetryDb) -> None:
        self.db = db

    def close(self) -> None:
        self.db.close()

    def write(self, records: Sequence[TelemetryRecord]) -> int:
        # The whole batch goes in as one JSON parameter expanded by json_each: one SQLite
        # call, so the writer thread takes the GIL once per batch instead of once per row
        # (per-row re-acquisition convoys with a busy event loop and crawls). A redelivered
        # copy (same dedupe key) is ignored by the unique index.
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
        with self.db.tx() as db:
            db.execute(_INSERT_BATCH, (datetime.now(UTC).timestamp(), rows))
        return len(records)

    def last_seen(self, account_id: str) -> dict[str, datetime]:
        """When each of the account's devices last produced a stored record."""
        with self.db.read() as db:
            rows = db.execute(
                "SELECT device_id, max(observed_at) FROM telemetry WHERE account_id = ? GROUP BY 1",
                (account_id,),
            ).fetchall()
        return {r[0]: datetime.fromtimestamp(r[1], UTC) for r in rows}

    # -- ending data -------------------------------------------------------------------------

    def purge_since(self, account_id: str, since: datetime, device_id: str | None = None) -> int:
        sql = "DELETE FROM telemetry WHERE account_id = ? AND (observed_at >= ? OR received_at >= ?)"
        args: tuple[str | float, ...] = (account_id, since.timestamp(), since.timestamp())
        if device_id is not None:
            sql, args = sql + " AND device_id = ?", (*args, device_id)
        with self.db.tx() as db:
            return db.execute(sql, args).rowcount

    def erase_account(
        self, account_id: str, classes: Sequence[RetentionClass], aggregate_text: Anonymization
    ) -> dict[str, int]:
        ended = {cls.name: self._end(cls, "account_id = ?", (account_id,), aggregate_text) for cls in classes}
        self.db.forget_erased()
        return ended

    def expire(self, cls: RetentionClass, older_than: datetime, aggregate_text: Anonymization) -> int:
        return self._end(cls, "observed_at < ?", (older_than.timestamp(),), aggregate_text)

    def _end(
        self, cls: RetentionClass, where: str, args: tuple[Any, ...], aggregate_text: Anonymization
    ) -> int:
        predicate = f"retention_class = ? AND {where}"
        params = (cls.name, *args)
        with self.db.tx() as db:
            if cls.end_action is EndAction.ANONYMIZE:
                fold(
                    db,
                    db.execute(f"SELECT * FROM telemetry WHERE {predicate}", params).fetchall(),
                    aggregate_text,
                )
            cur = db.execute(f"DELETE FROM telemetry WHERE {predicate}", params)
        return cur.rowcount
