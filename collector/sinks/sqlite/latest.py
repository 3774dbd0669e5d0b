"""The views' index over the telemetry table, kept exact by the schema's own triggers.

Keyed by owner: a device moved to another customer account starts afresh under its new
owner, and the previous owner's rows stay theirs (erased with their data, never shown to
the new one: the views join on the device's current account).

- `latest`: one row per (slot, device, account) holding the newest record of that slot the
  device stored under that account. The slot is the record kind, or `change.<event>` for
  change records (so the newest firmware change is not hidden by a newer reboot), or
  `call_quality.remote` for what a phone's peer heard (a SIP report's remote direction:
  the device's MOS is its own).
- `device_state`: one row per (device, account): when anything was last stored from it
  under that account (a reachability record, written when a poll fails, does not count),
  the registration state of its newest registration record, its newest MOS and firmware
  version.

An insert into `telemetry` replaces the `latest` row when it is at least as new; a delete
(erasure, purge, retention) removes the row it pointed at and puts back the newest record
of the same slot, device and account that is left, if any, and `device_state` follows
`latest`. So a view never shows a record that is gone, and the fleet views read
O(devices) small rows, never the history.
"""

from __future__ import annotations

import sqlite3

from provisioning.db import run_script


def _slot(row: str) -> str:
    return (
        f"CASE WHEN {row}.kind = 'change' THEN 'change.' || coalesce({row}.fields->>'event', '')"
        f" WHEN {row}.kind = 'call_quality' AND {row}.fields->>'direction' = 'remote'"
        " THEN 'call_quality.remote'"
        f" ELSE {row}.kind END"
    )


def registration_state(fields: str) -> str:
    """SQL: 'registered' when any `*_state` field says so, 'unregistered' when there are
    such fields and none does, NULL when the record has none."""
    return f"""CASE
    WHEN EXISTS (SELECT 1 FROM json_each({fields}) j WHERE j.key LIKE '%state' AND j.value = 'registered')
        THEN 'registered'
    WHEN EXISTS (SELECT 1 FROM json_each({fields}) j WHERE j.key LIKE '%state') THEN 'unregistered'
END"""


_COLUMNS = "slot, device_id, row_id, observed_at, account_id, model, firmware, fields"
_KEY = "slot, device_id, account_id"
_UPDATE = (
    "row_id = excluded.row_id, observed_at = excluded.observed_at,"
    " model = excluded.model, firmware = excluded.firmware, fields = excluded.fields"
)
_OWNED = "device_id = old.device_id AND account_id = old.account_id"  # old: a `latest` row
_STATE_OF = """INSERT INTO device_state (device_id, account_id, last_seen, reg_state, mos, version)
    VALUES (new.device_id, new.account_id, CASE WHEN new.slot != 'reachability' THEN new.observed_at END,
            CASE WHEN new.slot = 'registration' THEN {reg} END,
            CASE WHEN new.slot = 'call_quality' THEN CAST(new.fields->>'mos' AS REAL) END,
            CASE WHEN new.slot = 'firmware' THEN new.fields->>'version' END)
    ON CONFLICT (device_id, account_id) DO UPDATE SET
        last_seen = CASE WHEN new.slot = 'reachability' THEN last_seen
                         ELSE max(coalesce(last_seen, 0), new.observed_at) END,
        reg_state = CASE WHEN new.slot = 'registration' THEN excluded.reg_state ELSE reg_state END,
        mos = CASE WHEN new.slot = 'call_quality' THEN excluded.mos ELSE mos END,
        version = CASE WHEN new.slot = 'firmware' THEN excluded.version ELSE version END;""".format(
    reg=registration_state("new.fields")
)

# device_state's account_id comes last: the columns of release 0.1.0 keep their places.
# `+t.account_id`: the delete trigger's put-back reaches telemetry by its device index and
# filters by account (erasing a large account must not walk its history once per row).
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS latest (
    slot TEXT NOT NULL, device_id TEXT NOT NULL, row_id INTEGER NOT NULL, observed_at REAL NOT NULL,
    account_id TEXT NOT NULL, model TEXT NOT NULL, firmware TEXT, fields TEXT NOT NULL,
    PRIMARY KEY ({_KEY})
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS latest_device ON latest(device_id, account_id);
CREATE TABLE IF NOT EXISTS device_state (
    device_id TEXT NOT NULL, last_seen REAL, reg_state TEXT, mos REAL, version TEXT,
    account_id TEXT NOT NULL,
    PRIMARY KEY (device_id, account_id)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS latest_on_insert AFTER INSERT ON telemetry BEGIN
    INSERT INTO latest ({_COLUMNS})
    VALUES ({_slot("new")}, new.device_id, new.id, new.observed_at, new.account_id, new.model,
            new.firmware, new.fields)
    ON CONFLICT ({_KEY}) DO UPDATE SET {_UPDATE}
    WHERE excluded.observed_at >= latest.observed_at;
END;
CREATE TRIGGER IF NOT EXISTS latest_on_delete AFTER DELETE ON telemetry BEGIN
    DELETE FROM latest WHERE slot = {_slot("old")} AND {_OWNED} AND row_id = old.id;
    INSERT INTO latest ({_COLUMNS})
    SELECT {_slot("t")}, t.device_id, t.id, t.observed_at, t.account_id, t.model, t.firmware, t.fields
    FROM telemetry t
    WHERE t.device_id = old.device_id AND t.kind = old.kind AND +t.account_id = old.account_id
      AND {_slot("t")} = {_slot("old")}
      AND NOT EXISTS (SELECT 1 FROM latest WHERE slot = {_slot("old")} AND {_OWNED})
    ORDER BY t.observed_at DESC, t.id DESC LIMIT 1;
END;
CREATE TRIGGER IF NOT EXISTS device_state_on_insert AFTER INSERT ON latest BEGIN {_STATE_OF} END;
CREATE TRIGGER IF NOT EXISTS device_state_on_update AFTER UPDATE ON latest BEGIN {_STATE_OF} END;
CREATE TRIGGER IF NOT EXISTS device_state_on_delete AFTER DELETE ON latest BEGIN
    DELETE FROM device_state WHERE {_OWNED};
    INSERT INTO device_state (device_id, account_id, last_seen, reg_state, mos, version)
    SELECT old.device_id, old.account_id,
        (SELECT max(observed_at) FROM latest WHERE {_OWNED} AND slot != 'reachability'),
        (SELECT {registration_state("fields")} FROM latest WHERE slot = 'registration' AND {_OWNED}),
        (SELECT CAST(fields->>'mos' AS REAL) FROM latest WHERE slot = 'call_quality' AND {_OWNED}),
        (SELECT fields->>'version' FROM latest WHERE slot = 'firmware' AND {_OWNED})
    WHERE EXISTS (SELECT 1 FROM latest WHERE {_OWNED});
END;
"""

# The newest record of each slot, device and account (the one the insert trigger would
# keep: latest observed_at, then highest id); device_state follows by its triggers.
_BACKFILL = f"""
INSERT INTO latest ({_COLUMNS})
SELECT slot, device_id, id, observed_at, account_id, model, firmware, fields FROM (
    SELECT {_slot("t")} AS slot, t.*, row_number() OVER (
        PARTITION BY {_slot("t")}, t.device_id, t.account_id ORDER BY t.observed_at DESC, t.id DESC
    ) AS n
    FROM telemetry t
) WHERE n = 1;
"""

_DROP = """
DROP TRIGGER IF EXISTS latest_on_insert;
DROP TRIGGER IF EXISTS latest_on_delete;
DROP TABLE IF EXISTS device_state;
DROP TABLE IF EXISTS latest;
"""


def rebuild_latest(db: sqlite3.Connection) -> None:
    """Drop the index and its triggers (whatever their layout), create them as this
    release has them and fill them from the history, in the caller's transaction."""
    run_script(db, _DROP)
    run_script(db, SCHEMA)
    run_script(db, _BACKFILL)
