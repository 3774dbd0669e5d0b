"""telemetry.db opened once and shared by the embedded store's parts."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from collector.sinks.sqlite.schema import TELEMETRY
from provisioning.db import open_db, transaction


class TelemetryDb:
    """One connection, used from the service's writer thread and by the CLI; the lock
    makes it safe to share between them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        # secure_delete: erased rows are overwritten on disk, not just unlinked.
        self.connection = open_db(path, TELEMETRY, "synchronous=NORMAL", "secure_delete=ON")

    def tx(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE … COMMIT)."""
        return transaction(self.connection, self.lock)

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            yield self.connection

    def forget_erased(self) -> None:
        """After an erasure: copy the WAL into the database (whose freed pages secure_delete
        has zeroed) and truncate it, so the erased bytes are in neither file."""
        with self.lock:
            self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self.lock:
            self.connection.close()
