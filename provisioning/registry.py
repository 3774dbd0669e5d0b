"""The provisioning registry: accounts, devices, an append-only audit log and lifecycle events.

SQLite in WAL mode so a collector process can read while the CLI writes. The audit table
is append-only: triggers refuse UPDATE and DELETE.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provisioning.db import open_db, transaction
from provisioning.events import EventType, LifecycleEvent, event_for_transition
from provisioning.forget import forget_account
from provisioning.models import Account, AccountStatus, Device, Transport, check_account_id
from provisioning.pseudonyms import Pseudonyms
from provisioning.schema import REGISTRY

Clock = Callable[[], datetime]
Listener = Callable[[LifecycleEvent], None]



class DuplicateTopic(ValueError):
    def __init__(self, device_id: str, topic: str, other: str) -> None:
        super().__init__(
            f"device {device_id}: MQTT topic {topic!r} is already used by device {other}; "
            "each device needs its own topic, nothing imported"
        )


class UnknownAccount(LookupError):
    def __init__(self, account_id: str, ended_at: datetime | None = None) -> None:
        hint = (
            ""
            if ended_at is None
            else f" (its data ended and the registry forgot it on {ended_at:%Y-%m-%d}: import its"
            " devices again to collect from it as a new account)"
        )
        super().__init__(f"no such account: {account_id!r}{hint}")
        self.account_id = account_id
        self.ended_at = ended_at


def utcnow() -> datetime:
    return datetime.now(UTC)


def _device_from_row(row: sqlite3.Row) -> Device:
    data = dict(row)
    return Device.model_validate(data)


class Registry:
    def __init__(self, path: Path, clock: Clock = utcnow) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.RLock()
        # secure_delete: what an erasure or a de-identification replaces is zeroed in the file.
        self._db = open_db(path, REGISTRY, "foreign_keys=ON", "secure_delete=ON")
        self._listeners: list[Listener] = []
        # The keyed pseudonym the registry keeps of a value once its account has ended.
        self.pseudonym = Pseudonyms(path)

    def close(self) -> None:
        self._db.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db, self._lock)

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` synchronously, in this process, for every event this registry emits."""
        self._listeners.append(listener)

    # -- queries ---------------------------------------------------------------------------

    def accounts(self) -> list[Account]:
        """The accounts the registry knows (not those it keeps only as pseudonyms)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM accounts WHERE ended_at IS NULL ORDER BY id").fetchall()
        return [Account.model_validate(dict(r)) for r in rows]

    def account(self, account_id: str) -> Account:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM accounts WHERE id = ? AND ended_at IS NULL", (account_id,)
            ).fetchone()
        if row is None:
            raise UnknownAccount(account_id, self.ended_at(account_id))
        return Account.model_validate(dict(row))

    def ended_at(self, account_id: str) -> datetime | None:
        """When the registry forgot this account (its data had ended), or None."""
        anon = self.pseudonym.known(account_id)
        if anon is None:
            return None  # nothing was ever forgotten here
        with self._lock:
            row = self._db.execute(
                "SELECT ended_at FROM accounts WHERE id = ? AND ended_at IS NOT NULL", (anon,)
            ).fetchone()
        return None if row is None else datetime.fromisoformat(row[0])

    def devices(self, account_id: str | None = None, transport: Transport | None = None) -> list[Device]:
        sql, args = "SELECT * FROM devices WHERE 1=1", list[str]()
        if account_id is not None:
            sql, args = sql + " AND account_id = ?", [*args, account_id]
        if transport is not None:
            sql, args = sql + " AND transport = ?", [*args, transport.value]
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [_device_from_row(r) for r in rows]

    def device(self, device_id: str) -> Device | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM devices WHERE id = ?", (device_id,)).fetchone()
        return None if row is None else _device_from_row(row)

    def device_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM devices").fetchone()[0])

    def events_since(self, last_id: int) -> list[LifecycleEvent]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM events WHERE id > ? ORDER BY id", (last_id,)).fetchall()
        return [LifecycleEvent.model_validate(dict(r)) for r in rows]

    def last_event_id(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
        return int(row[0])

    def audit_entries(self, account_id: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM audit", []
        if account_id is not None:
            sql, args = sql + " WHERE account_id = ?", [account_id]
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    # -- changes ---------------------------------------------------------------------------

    def import_devices(self, devices: Iterable[Device], source: str) -> int:
        """Insert or update devices in one transaction; unknown accounts are created active."""
        now = self._clock()
        emitted: list[LifecycleEvent] = []
        count = 0
        with self._tx() as db:
            for dev in devices:
                count += 1
                if db.execute("SELECT 1 FROM accounts WHERE id = ?", (dev.account_id,)).fetchone() is None:
                    db.execute(
                        "INSERT INTO accounts (id, status, status_changed_at) VALUES (?, 'active', ?)",
                        (dev.account_id, now.isoformat()),
                    )
                    emitted.append(self._emit(db, now, EventType.ACCOUNT_ACTIVATED, dev.account_id))
                existed = db.execute("SELECT * FROM devices WHERE id = ?", (dev.id,)).fetchone()
                if dev.transport is Transport.MQTT:
                    clash = db.execute(
                        "SELECT id FROM devices WHERE transport = 'mqtt' AND address = ? AND id != ?",
                        (dev.address, dev.id),
                    ).fetchone()
                    if clash is not None:
                        raise DuplicateTopic(dev.id, dev.address, clash[0])
                db.execute(
                    "INSERT OR REPLACE INTO devices (id, account_id, vendor, model, profile, transport, "
                    "address, credentials, debug_until, sip_aor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        dev.id,
                        dev.account_id,
                        dev.vendor,
                        dev.model,
                        dev.profile,
                        dev.transport.value,
                        dev.address,
                        dev.credentials,
                        dev.debug_until.isoformat() if dev.debug_until else None,
                        dev.sip_aor,
                    ),
                )
                if existed is None:
                    emitted.append(self._emit(db, now, EventType.DEVICE_ADDED, dev.account_id, dev.id))
                elif _device_from_row(existed) != dev:
                    # A re-import that moves a device to another account or address must
                    # reach running collectors just like a new device.
                    emitted.append(self._emit(db, now, EventType.DEVICE_UPDATED, dev.account_id, dev.id))
            self._audit(db, now, None, None, "devices.imported", {"source": source, "count": count})
        self._notify(emitted)
        return count

    def remove_device(self, device_id: str) -> LifecycleEvent:
        now = self._clock()
        with self._tx() as db:
            row = db.execute("SELECT account_id FROM devices WHERE id = ?", (device_id,)).fetchone()
            if row is None:
                raise LookupError(f"no such device: {device_id!r}")
            db.execute("DELETE FROM devices WHERE id = ?", (device_id,))
            event = self._emit(db, now, EventType.DEVICE_REMOVED, row[0], device_id)
            self._audit(db, now, row[0], device_id, "device.removed", {})
        self._notify([event])
        return event

    def set_status(self, account_id: str, status: AccountStatus, reason: str = "") -> LifecycleEvent | None:
        """Change an account's status. Returns the emitted event, None if it was already so."""
        check_account_id(account_id)
        now = self._clock()
        with self._tx() as db:
            row = db.execute("SELECT status FROM accounts WHERE id = ?", (account_id,)).fetchone()
            if row is None:
                raise UnknownAccount(account_id)
            old = AccountStatus(row[0])
            event_type = event_for_transition(old, status)
            if event_type is None:
                return None
            db.execute(
                "UPDATE accounts SET status = ?, status_changed_at = ? WHERE id = ?",
                (status.value, now.isoformat(), account_id),
            )
            event = self._emit(db, now, event_type, account_id)
            self._audit(
                db,
                now,
                account_id,
                None,
                "account.status",
                {
                    "from": old.value,
                    "to": status.value,
                    "reason": reason,
                    "event": event_type.value,
                },
            )
        self._notify([event])
        return event

    def set_debug_window(self, device_id: str, until: datetime | None) -> LifecycleEvent:
        """Open (or, with None, close) a troubleshooting window for one device (P8)."""
        now = self._clock()
        with self._tx() as db:
            row = db.execute("SELECT account_id FROM devices WHERE id = ?", (device_id,)).fetchone()
            if row is None:
                raise LookupError(f"no such device: {device_id!r}")
            db.execute(
                "UPDATE devices SET debug_until = ? WHERE id = ?",
                (until.isoformat() if until else None, device_id),
            )
            event = self._emit(db, now, EventType.DEVICE_DEBUG_WINDOW, row[0], device_id)
            self._audit(
                db,
                now,
                row[0],
                device_id,
                "device.debug_window",
                {"until": until.isoformat() if until else None},
            )
        self._notify([event])
        return event

    def forget_account(self, account_id: str) -> dict[str, int]:
        """Delete the account's devices and keep the rest of its registry rows only under
        pseudonyms (provisioning.forget): for an account whose data has ended everywhere."""
        now = self._clock()
        self.pseudonym(account_id)  # the key exists before anything is rewritten with it
        with self._tx() as db:
            if db.execute(
                "SELECT 1 FROM accounts WHERE id = ? AND ended_at IS NULL", (account_id,)
            ).fetchone() is None:
                raise UnknownAccount(account_id, self.ended_at(account_id))
            counts = forget_account(db, self.pseudonym, account_id, now)
            detail = {**counts, "deidentified": True}  # nothing in it to de-identify later
            self._audit(db, now, self.pseudonym(account_id), None, "account.forgotten", detail)
        with self._lock:  # the old bytes leave the WAL too
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return counts

    # -- running collectors: heartbeats and acknowledgements of stop events ------------------

    def set_remote_stores(self, names: Iterable[str]) -> None:
        """The remote stores (sink names) the service of this data dir writes to now."""
        wanted = sorted(set(names))
        with self._tx() as db:
            db.execute(
                f"DELETE FROM remote_stores WHERE name NOT IN ({','.join('?' * len(wanted))})", wanted
            )
            now = self._clock().isoformat()
            db.executemany(
                "INSERT OR IGNORE INTO remote_stores (name, since) VALUES (?, ?)", [(n, now) for n in wanted]
            )

    def remote_stores(self) -> list[str]:
        with self._lock:
            return [str(r[0]) for r in self._db.execute("SELECT name FROM remote_stores ORDER BY name")]

    def collector_heartbeat(self, collector_id: str, pid: int) -> None:
        now = self._clock()
        with self._tx() as db:
            db.execute(
                "INSERT INTO collectors VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
                " heartbeat_at = excluded.heartbeat_at",
                (collector_id, pid, now.isoformat(), now.timestamp()),
            )

    def collector_gone(self, collector_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM collectors WHERE id = ?", (collector_id,))

    def live_collectors(self, within_s: float = 3.0) -> list[str]:
        cutoff = self._clock().timestamp() - within_s
        with self._lock:
            rows = self._db.execute("SELECT id FROM collectors WHERE heartbeat_at >= ?", (cutoff,))
            return [r[0] for r in rows.fetchall()]

    def ack_event(self, event_id: int, collector_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO event_acks VALUES (?, ?, ?)",
                (event_id, collector_id, self._clock().isoformat()),
            )

    def event_acks(self, event_id: int) -> dict[str, datetime]:
        with self._lock:
            rows = self._db.execute(
                "SELECT collector_id, acked_at FROM event_acks WHERE event_id = ?", (event_id,)
            ).fetchall()
        return {r[0]: datetime.fromisoformat(r[1]) for r in rows}

    def record_audit(
        self,
        action: str,
        detail: dict[str, Any],
        account_id: str | None = None,
        device_id: str | None = None,
    ) -> None:
        with self._tx() as db:
            self._audit(db, self._clock(), account_id, device_id, action, detail)

    def _emit(
        self,
        db: sqlite3.Connection,
        at: datetime,
        kind: EventType,
        account_id: str,
        device_id: str | None = None,
    ) -> LifecycleEvent:
        cur = db.execute(
            "INSERT INTO events (at, type, account_id, device_id) VALUES (?, ?, ?, ?)",
            (at.isoformat(), kind.value, account_id, device_id),
        )
        assert cur.lastrowid is not None
        return LifecycleEvent(id=cur.lastrowid, at=at, type=kind, account_id=account_id, device_id=device_id)

    @staticmethod
    def _audit(
        db: sqlite3.Connection,
        at: datetime,
        account_id: str | None,
        device_id: str | None,
        action: str,
        detail: dict[str, Any],
    ) -> None:
        db.execute(
            "INSERT INTO audit (at, account_id, device_id, action, detail) VALUES (?, ?, ?, ?, ?)",
            (at.isoformat(), account_id, device_id, action, json.dumps(detail, sort_keys=True)),
        )

    def _notify(self, events: list[LifecycleEvent]) -> None:
        for event in events:
            for listener in self._listeners:
                listener(event)
