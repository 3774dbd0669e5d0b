"""The sweeper's ledger: which accounts the remote sinks were already told to end, per
status the account reached, so each is told once (and again only after a failure)."""

from __future__ import annotations

from datetime import datetime

from collector.sinks.sqlite.db import TelemetryDb


class SweepLedger:
    def __init__(self, db: TelemetryDb) -> None:
        self.db = db

    def remote_erased(self, account_id: str, status_changed_at: datetime) -> bool:
        with self.db.read() as db:
            row = db.execute(
                "SELECT 1 FROM remote_erasures WHERE account_id = ? AND status_changed_at = ?",
                (account_id, status_changed_at.isoformat()),
            ).fetchone()
        return row is not None

    def mark_remote_erased(self, account_id: str, status_changed_at: datetime) -> None:
        with self.db.tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO remote_erasures VALUES (?, ?)",
                (account_id, status_changed_at.isoformat()),
            )

    def forget(self, account_id: str) -> None:
        """The account was forgotten (its data ended everywhere): its entries go too."""
        with self.db.tx() as db:
            db.execute("DELETE FROM remote_erasures WHERE account_id = ?", (account_id,))
