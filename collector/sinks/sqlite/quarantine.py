"""The quarantine: payloads of provisioned devices that could not become records, each
with the reason, the topic, the size and its redacted first bytes (never the payload).
They are the account's data too: erased with it, purged with its in-flight records, and
expired after the policy's quarantine TTL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from collector.core.records import Anonymization, QuarantineEntry, RetentionClass
from collector.sinks.sqlite.db import TelemetryDb


class QuarantineStore:
    name = "sqlite"  # it lives in the embedded store: its counts are reported under that name

    def __init__(self, db: TelemetryDb) -> None:
        self.db = db

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
                e.at.timestamp(),
            )
            for e in entries
        ]
        with self.db.tx() as db:
            db.executemany(
                "INSERT INTO quarantine (at, source, topic, size, head, reason, device_id, account_id,"
                " at_ts) VALUES (?,?,?,?,?,?,?,?,?)",
                rows,
            )

    def erase_account(
        self, account_id: str, classes: Sequence[RetentionClass], aggregate_text: Anonymization
    ) -> dict[str, int]:
        """Whatever the classes: a quarantined payload ends with its account."""
        with self.db.tx() as db:
            deleted = db.execute("DELETE FROM quarantine WHERE account_id = ?", (account_id,)).rowcount
        self.db.forget_erased()
        return {"quarantine": deleted}

    def purge_since(self, account_id: str, since: datetime, device_id: str | None = None) -> int:
        sql = "DELETE FROM quarantine WHERE account_id = ? AND at_ts >= ?"
        args: tuple[str | float, ...] = (account_id, since.timestamp())
        if device_id is not None:
            sql, args = sql + " AND device_id = ?", (*args, device_id)
        with self.db.tx() as db:
            return db.execute(sql, args).rowcount

    def last_seen(self, account_id: str) -> dict[str, datetime]:
        """A quarantined payload is not a record: it does not count as the device seen."""
        return {}

    def expire(self, older_than: datetime) -> int:
        with self.db.tx() as db:
            return db.execute("DELETE FROM quarantine WHERE at_ts < ?", (older_than.timestamp(),)).rowcount
