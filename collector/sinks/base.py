"""The interface every sink implements (embedded SQLite now, InfluxDB later)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from collector.records import TelemetryRecord
from collector.retention import RetentionClass


class Sink(Protocol):
    name: str

    def write(self, records: Sequence[TelemetryRecord]) -> int:
        """Store records; return how many were stored. Raise to have the batch retried."""

    def erase_account(
        self,
        account_id: str,
        device_ids: Sequence[str],
        classes: Sequence[RetentionClass],
        aggregate_text: frozenset[str],
    ) -> dict[str, int]:
        """Apply each class's end action to the account's records; counts per class."""

    def purge_account_since(self, account_id: str, since: datetime) -> int:
        """Delete the account's records observed at or after `since` (in-flight stragglers)."""

    def close(self) -> None: ...
