"""alerts.db: the alert engine's state and the outbox of its notices, and what the
retention sweep and a privacy export do with it (without the engine and its webhook
client, so the commands that only sweep or export stay light)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from provisioning.db import Schema, open_db, transaction
from provisioning.outbox import Outbox
from provisioning.schema import OUTBOX_TABLES

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_state (
    rule TEXT NOT NULL, device_id TEXT NOT NULL, account_id TEXT NOT NULL, model TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'firing')), since REAL NOT NULL, detail TEXT NOT NULL,
    PRIMARY KEY (rule, device_id)
);
CREATE INDEX IF NOT EXISTS alert_state_account ON alert_state(account_id);
"""
# alerts.db: the alerts' state and the outbox of their notices. Version 1 is release 0.1.0's.
ALERTS = Schema("alerts", (_SCHEMA + OUTBOX_TABLES,))


def drop_account(db: sqlite3.Connection, account_id: str) -> None:
    """An account's alerts and its notices, queued or sent, in the caller's transaction."""
    db.execute("DELETE FROM alert_state WHERE account_id = ?", (account_id,))
    db.execute("DELETE FROM outbox WHERE account_id = ?", (account_id,))


def forget_account_in(path: Path, account_id: str) -> None:
    """Drop what alerts.db holds about an account whose data has ended (the retention
    sweep, which may run where no alert engine does), its old bytes out of the file and
    its WAL too."""
    if not path.exists():
        return
    db = open_db(path, ALERTS, "secure_delete=ON")
    try:
        with transaction(db, threading.Lock()):
            drop_account(db, account_id)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def held_for_account(path: Path, account_id: str) -> dict[str, list[dict[str, Any]]]:
    """What alerts.db holds about an account, for a privacy export (P6)."""
    if not path.exists():
        return {"alerts": [], "notices": []}
    db = open_db(path, ALERTS)
    try:
        alerts = [
            dict(r) for r in db.execute("SELECT * FROM alert_state WHERE account_id = ?", (account_id,))
        ]
    finally:
        db.close()
    return {"alerts": alerts, "notices": Outbox(path, ALERTS).entries(account_id)}
