"""The schema of registry.db, the registry's file: accounts, devices, the audit log,
lifecycle events and their acknowledgements, receipts, and the webhook outbox. One list of
migrations for the whole file (provisioning.db says how they run); the outbox's tables
are also part of alerts.db, which holds the alert notices' own outbox.

Version 1 is the schema of release 0.1.0, which kept no version: a file of that release
(user_version 0) already holds every table, so the IF NOT EXISTS statements leave it as
it is and only stamp its version.
"""

from __future__ import annotations

from provisioning.db import Schema

# The columns of the two tables every view and copy reads, as both engines have them.
ACCOUNT_COLUMNS = ("id", "status", "status_changed_at", "ended_at")
DEVICE_COLUMNS = (
    "id", "account_id", "vendor", "model", "profile", "transport", "address", "credentials",
    "debug_until", "sip_aor",
)  # fmt: skip

OUTBOX_TABLES = """
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY, webhook TEXT NOT NULL, event TEXT NOT NULL, account_id TEXT,
    payload TEXT NOT NULL, created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, claimed_until REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending', delivered_at REAL, last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(status, next_attempt_at);
"""

_REGISTRY_V1 = (
    """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'revoked')),
    status_changed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    vendor TEXT NOT NULL, model TEXT NOT NULL, profile TEXT NOT NULL,
    transport TEXT NOT NULL, address TEXT NOT NULL, credentials TEXT NOT NULL,
    debug_until TEXT
);
CREATE INDEX IF NOT EXISTS devices_account ON devices(account_id);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL, account_id TEXT, device_id TEXT, action TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL, type TEXT NOT NULL, account_id TEXT NOT NULL, device_id TEXT
);
CREATE TABLE IF NOT EXISTS collectors (
    id TEXT PRIMARY KEY, pid INTEGER NOT NULL, started_at TEXT NOT NULL, heartbeat_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS event_acks (
    event_id INTEGER NOT NULL, collector_id TEXT NOT NULL, acked_at TEXT NOT NULL,
    PRIMARY KEY (event_id, collector_id)
);

CREATE TABLE IF NOT EXISTS receipts (
    id TEXT PRIMARY KEY, request_id TEXT NOT NULL UNIQUE, account_id TEXT NOT NULL,
    device_id TEXT, action TEXT NOT NULL, reason TEXT NOT NULL, requested_at TEXT NOT NULL,
    status TEXT NOT NULL, completed_at TEXT, result TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS receipts_account ON receipts(account_id);
"""
    + OUTBOX_TABLES
)

# Version 2: the SIP addresses of record a phone sends its call-quality reports from.
_REGISTRY_V2 = "ALTER TABLE devices ADD COLUMN sip_aor TEXT NOT NULL DEFAULT '';"

# Version 3: the remote stores the service of this data dir writes to, so that an erasure
# made without them (the CLI, the service stopped) stays outstanding until they confirm.
_REGISTRY_V3 = "CREATE TABLE IF NOT EXISTS remote_stores (name TEXT PRIMARY KEY, since TEXT NOT NULL);"

# Version 4: an account whose data has ended is kept only as a pseudonym (provisioning.forget):
# `ended_at` marks it, and the audit log lets a row be de-identified, once, and nothing else.
_REGISTRY_V4 = r"""
ALTER TABLE accounts ADD COLUMN ended_at TEXT;
DROP TRIGGER IF EXISTS audit_no_update;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    WHEN NOT (
        NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.action = OLD.action
        AND json_extract(OLD.detail, '$.deidentified') IS NULL
        AND json_extract(NEW.detail, '$.deidentified') = 1
        AND (NEW.account_id IS OLD.account_id OR NEW.account_id GLOB 'anon_*')
        AND (NEW.device_id IS OLD.device_id OR NEW.device_id GLOB 'anon_*')
    )
    BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
"""

REGISTRY = Schema("registry", (_REGISTRY_V1, _REGISTRY_V2, _REGISTRY_V3, _REGISTRY_V4))


# The same tables in a PostgreSQL database (provisioning.postgres), from this release on:
# its version 1 holds what the SQLite file's versions 1 to 4 made. Times stay ISO 8601 text
# and JSON stays text, as in the file, so both engines hand the code the same values.
_REGISTRY_PG_V1 = r"""
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'revoked')),
    status_changed_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    vendor TEXT NOT NULL, model TEXT NOT NULL, profile TEXT NOT NULL,
    transport TEXT NOT NULL, address TEXT NOT NULL, credentials TEXT NOT NULL,
    debug_until TEXT, sip_aor TEXT NOT NULL DEFAULT ''
);
CREATE INDEX devices_account ON devices(account_id);
CREATE TABLE audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TEXT NOT NULL, account_id TEXT, device_id TEXT, action TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX audit_account ON audit(account_id);
-- Append-only, but for the one change forgetting an account makes, once (see _REGISTRY_V4).
CREATE FUNCTION hookflash_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.action = OLD.action
        AND (OLD.detail::jsonb -> 'deidentified') IS NULL
        AND (NEW.detail::jsonb -> 'deidentified') = 'true'::jsonb
        AND (NEW.account_id IS NOT DISTINCT FROM OLD.account_id OR NEW.account_id LIKE 'anon\_%')
        AND (NEW.device_id IS NOT DISTINCT FROM OLD.device_id OR NEW.device_id LIKE 'anon\_%')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit log is append-only';
END $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION hookflash_audit_guard();
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TEXT NOT NULL, type TEXT NOT NULL, account_id TEXT NOT NULL, device_id TEXT
);
CREATE TABLE collectors (
    id TEXT PRIMARY KEY, pid INTEGER NOT NULL, started_at TEXT NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE event_acks (
    event_id BIGINT NOT NULL, collector_id TEXT NOT NULL, acked_at TEXT NOT NULL,
    PRIMARY KEY (event_id, collector_id)
);
CREATE TABLE receipts (
    id TEXT PRIMARY KEY, request_id TEXT NOT NULL UNIQUE, account_id TEXT NOT NULL,
    device_id TEXT, action TEXT NOT NULL, reason TEXT NOT NULL, requested_at TEXT NOT NULL,
    status TEXT NOT NULL, completed_at TEXT, result TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX receipts_account ON receipts(account_id);
CREATE TABLE outbox (
    id TEXT PRIMARY KEY, webhook TEXT NOT NULL, event TEXT NOT NULL, account_id TEXT,
    payload TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at DOUBLE PRECISION NOT NULL,
    claimed_until DOUBLE PRECISION NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'pending',
    delivered_at DOUBLE PRECISION, last_error TEXT
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE TABLE remote_stores (name TEXT PRIMARY KEY, since TEXT NOT NULL);
"""

# Version 2: TRUNCATE, which row triggers do not see, is refused on the audit log too.
_REGISTRY_PG_V2 = r"""
CREATE FUNCTION hookflash_audit_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only';
END $$;
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION hookflash_audit_no_truncate();
"""

REGISTRY_PG = Schema("registry", (_REGISTRY_PG_V1, _REGISTRY_PG_V2))
