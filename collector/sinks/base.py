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
        self, account_id: str, classes: Sequence[RetentionClass], aggregate_text: frozenset[str]
    ) -> dict[str, int]:
        """Apply each class's end action to the account's records; counts per class."""

    def purge_since(self, account_id: str, since: datetime, device_id: str | None = None) -> int:
        """Delete the account's (or one device's) records observed or received at or after
        `since`: stragglers that were in flight when collection stopped."""

    def last_seen(self, account_id: str) -> dict[str, datetime]:
        """Per device of the account, the newest observation time held."""

    def close(self) -> None: ...
