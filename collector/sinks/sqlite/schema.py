"""The schema of telemetry.db, as ordered migrations (provisioning.db says how they run).

Version 1 is the schema of release 0.1.0, which kept no version: on a file of that release
(user_version 0) its IF NOT EXISTS statements change nothing.

The views' index (collector.sinks.sqlite.latest) is derived from the telemetry table, so a
migration that changes it drops it and builds it again from the history: only the newest
such step builds it, and the earlier ones it supersedes do nothing (all the steps a file
needs run in one transaction, so no file is ever left between them).
"""

from __future__ import annotations

import sqlite3

from collector.sinks.sqlite.latest import rebuild_latest
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
    run_script(db, _TABLES_V1)  # and the views' index: built by the newest rebuild, below


def _superseded(db: sqlite3.Connection) -> None:
    """A rebuild of the views' index that a later version's rebuild makes redundant."""


# Version 2: a SIP report's remote direction has a slot of its own in the views' index.
# Version 3: the index is keyed by owner, (slot, device, account) and (device, account),
# so a device moved to another account shows nothing of its previous owner's.
TELEMETRY = Schema("telemetry", (_v1, _superseded, rebuild_latest))
