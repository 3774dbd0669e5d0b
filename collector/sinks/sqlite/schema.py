"""The schema of telemetry.db, as ordered migrations (provisioning.db says how they run).

Version 1 is the schema of release 0.1.0, which kept no version: on a file of that release
(user_version 0) the IF NOT EXISTS statements change nothing and only its version is
stamped; a file older still gets the views' index built from its history.
"""

from __future__ import annotations

import sqlite3

from collector.sinks.sqlite.latest import ensure_latest, rebuild_latest
from provisioning.db import Schema, run_script

_TABLES_V1 = """
CREATE TABLE IF NOT EXISTS remote_erasures (
    account_id TEXT NOT NULL, status_changed_at TEXT NOT NULL,
    PRIMARY KEY (account_id, status_changed_at)
);
CREATE TABLE IF NOT EXISTS telemetry (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL, account_id TEXT NOT NULL, kind TEXT NOT NULL,
    observed_at REAL NOT NULL, received_at REAL NOT NULL, retention_class TEXT NOT NULL,
    source TEXT NOT NULL, model TEXT NOT NULL, firmware TEXT, fields TEXT NOT NULL,
    dedupe_key TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS telemetry_dedupe ON telemetry(dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS telemetry_account ON telemetry(account_id, observed_at);
CREATE INDEX IF NOT EXISTS telemetry_device ON telemetry(device_id, kind, observed_at);
CREATE INDEX IF NOT EXISTS telemetry_class ON telemetry(retention_class, observed_at);
CREATE TABLE IF NOT EXISTS aggregates (
    retention_class TEXT NOT NULL, kind TEXT NOT NULL, model TEXT NOT NULL,
    firmware TEXT NOT NULL, day TEXT NOT NULL, field TEXT NOT NULL,
    count INTEGER NOT NULL, sum REAL, min REAL, max REAL,
    PRIMARY KEY (retention_class, kind, model, firmware, day, field)
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, source TEXT NOT NULL, topic TEXT NOT NULL,
    size INTEGER NOT NULL, head TEXT NOT NULL, reason TEXT NOT NULL,
    device_id TEXT, account_id TEXT, at_ts REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS quarantine_account ON quarantine(account_id);
"""


def _v1(db: sqlite3.Connection) -> None:
    run_script(db, _TABLES_V1)
    ensure_latest(db)


# Version 2: a SIP report's remote direction has a slot of its own in the views' index.
TELEMETRY = Schema("telemetry", (_v1, rebuild_latest))
