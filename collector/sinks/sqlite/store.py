"""The embedded store's parts over one telemetry.db, opened together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collector.sinks.sqlite.db import TelemetryDb
from collector.sinks.sqlite.ledger import SweepLedger
from collector.sinks.sqlite.quarantine import QuarantineStore
from collector.sinks.sqlite.queries import TelemetryQueries
from collector.sinks.sqlite.sink import SqliteSink


@dataclass(frozen=True)
class EmbeddedStore:
    db: TelemetryDb
    sink: SqliteSink
    quarantine: QuarantineStore
    queries: TelemetryQueries
    ledger: SweepLedger

    @classmethod
    def open(cls, path: Path) -> EmbeddedStore:
        db = TelemetryDb(path)
        return cls(db, SqliteSink(db), QuarantineStore(db), TelemetryQueries(db), SweepLedger(db))

    def close(self) -> None:
        self.db.close()
