"""The embedded store: one SQLite file, telemetry.db, in WAL mode.

Its parts, each over the same `TelemetryDb` (connection, lock, schema):
- `SqliteSink`: the telemetry sink (writes, erasure and anonymization, purges, expiry);
- `QuarantineStore`: payloads that could not become records, with the reason;
- `TelemetryQueries`: the reads the CLI, the privacy export and start-up use;
- `SweepLedger`: which accounts' data the remote sinks were told to end;
- `schema` / `latest`: the tables, and the views' index that the schema's own triggers
  keep exact on every insert and delete.
"""

from collector.sinks.sqlite.db import TelemetryDb
from collector.sinks.sqlite.ledger import SweepLedger
from collector.sinks.sqlite.quarantine import QuarantineStore
from collector.sinks.sqlite.queries import TelemetryQueries
from collector.sinks.sqlite.sink import SqliteSink
from collector.sinks.sqlite.store import EmbeddedStore

__all__ = [
    "EmbeddedStore",
    "QuarantineStore",
    "SqliteSink",
    "SweepLedger",
    "TelemetryDb",
    "TelemetryQueries",
]
