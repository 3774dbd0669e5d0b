"""The provisioning registry: accounts, devices, an append-only audit log and lifecycle events.

In registry.db of the data dir (SQLite in WAL mode, so a collector process can read while
the CLI writes), or in a shared PostgreSQL database (provisioning.postgres), where a
status change also NOTIFYs collectors on other hosts in the transaction that commits it.
The audit table is append-only: triggers refuse UPDATE and DELETE.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provisioning.database import EVENTS_CHANNEL, Database, Retry, Row, Tx, connect, in_list
from provisioning.events import EventType, LifecycleEvent, event_for_transition
from provisioning.forget import forget_account
from provisioning.models import Account, AccountStatus, Device, Transport, check_account_id
from provisioning.pseudonyms import KEY_FILE, Pseudonyms
from provisioning.schema import DEVICE_COLUMNS, REGISTRY, REGISTRY_PG

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


def _device_from_row(row: Row) -> Device:
    data = dict(row)
    return Device.model_validate(data)


def open_registry_db(location: Path | str, password_env: str | None = None) -> Database:
    """registry.db at a path, or the registry's tables in a PostgreSQL database (a URL)."""
    # secure_delete: what an erasure or a de-identification replaces is zeroed in the file.
    return connect(
        location, REGISTRY, REGISTRY_PG, "foreign_keys=ON", "secure_delete=ON", password_env=password_env
    )


class Registry:
    def __init__(
        self, location: Path | Database, clock: Clock = utcnow, *, key_path: Path | None = None
    ) -> None:
        """`location`: registry.db's path, or an open database. `key_path`: the pseudonym
        key (registry.key beside registry.db by default; a database needs one named)."""
        self.db = open_registry_db(location) if isinstance(location, Path) else location
        if key_path is None:
            if not isinstance(location, Path):
                raise ValueError("a registry in a database needs the path of its pseudonym key")
            key_path = location.with_name(KEY_FILE)
        self.key_path = key_path
        self.data_dir = key_path.parent  # where the data dir's own files are (the key among them)
        self._clock = clock
        self._listeners: list[Listener] = []
        # The keyed pseudonym the registry keeps of a value once its account has ended.
        self.pseudonym = Pseudonyms(key_path)

    def close(self) -> None:
        self.db.close()

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` synchronously, in this process, for every event this registry emits."""
        self._listeners.append(listener)

    # -- queries ---------------------------------------------------------------------------

    def accounts(self) -> list[Account]:
        """The accounts the registry knows (not those it keeps only as pseudonyms)."""
        rows = self.db.query("SELECT * FROM accounts WHERE ended_at IS NULL ORDER BY id")
        return [Account.model_validate(dict(r)) for r in rows]

    def account(self, account_id: str) -> Account:
        row = self.db.one("SELECT * FROM accounts WHERE id = ? AND ended_at IS NULL", (account_id,))
        if row is None:
            raise UnknownAccount(account_id, self.ended_at(account_id))
        return Account.model_validate(dict(row))

    def ended_at(self, account_id: str) -> datetime | None:
        """When the registry forgot this account (its data had ended), or None."""
        anon = self.pseudonym.known(account_id)
        if anon is None:
            return None  # nothing was ever forgotten here
        row = self.db.one("SELECT ended_at FROM accounts WHERE id = ? AND ended_at IS NOT NULL", (anon,))
        return None if row is None else datetime.fromisoformat(row[0])

    def devices(self, account_id: str | None = None, transport: Transport | None = None) -> list[Device]:
        sql, args = "SELECT * FROM devices WHERE 1=1", list[str]()
        if account_id is not None:
            sql, args = sql + " AND account_id = ?", [*args, account_id]
        if transport is not None:
            sql, args = sql + " AND transport = ?", [*args, transport.value]
        return [_device_from_row(r) for r in self.db.query(sql + " ORDER BY id", args)]

    def device(self, device_id: str) -> Device | None:
        row = self.db.one("SELECT * FROM devices WHERE id = ?", (device_id,))
        return None if row is None else _device_from_row(row)

    def device_count(self) -> int:
        row = self.db.one("SELECT count(*) FROM devices")
        assert row is not None
        return int(row[0])

    def events_since(self, last_id: int) -> list[LifecycleEvent]:
        rows = self.db.query("SELECT * FROM events WHERE id > ? ORDER BY id", (last_id,))
        return [LifecycleEvent.model_validate(dict(r)) for r in rows]

    def last_event_id(self) -> int:
        row = self.db.one("SELECT coalesce(max(id), 0) FROM events")
        assert row is not None
        return int(row[0])

    def listen(self, wake: Callable[[], None], retry: Retry) -> Callable[[], None] | None:
        """Call `wake` when another process emits events (None: poll `events_since`);
        `retry` spaces the reconnections."""
        return self.db.listen(EVENTS_CHANNEL, wake, retry)

    def audit_entries(self, account_id: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM audit", []
        if account_id is not None:
            sql, args = sql + " WHERE account_id = ?", [account_id]
        rows = self.db.query(sql + " ORDER BY id", args)
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    # -- changes ---------------------------------------------------------------------------

    def import_devices(self, devices: Iterable[Device], source: str) -> int:
        """Insert or update devices in one transaction; unknown accounts are created active."""
        now = self._clock()
        emitted: list[LifecycleEvent] = []
        count = 0
        with self.db.transaction() as tx:
            for dev in devices:
                count += 1
                if tx.one("SELECT 1 FROM accounts WHERE id = ?", (dev.account_id,)) is None:
                    tx.run(
                        "INSERT INTO accounts (id, status, status_changed_at) VALUES (?, 'active', ?)",
                        (dev.account_id, now.isoformat()),
                    )
                    emitted.append(self._emit(tx, now, EventType.ACCOUNT_ACTIVATED, dev.account_id))
                existed = tx.one("SELECT * FROM devices WHERE id = ?", (dev.id,))
                if dev.transport is Transport.MQTT:
                    clash = tx.one(
                        "SELECT id FROM devices WHERE transport = 'mqtt' AND address = ? AND id != ?",
                        (dev.address, dev.id),
                    )
                    if clash is not None:
                        raise DuplicateTopic(dev.id, dev.address, clash[0])
                tx.run(_UPSERT_DEVICE, _device_values(dev))
                if existed is None:
                    emitted.append(self._emit(tx, now, EventType.DEVICE_ADDED, dev.account_id, dev.id))
                elif _device_from_row(existed) != dev:
                    # A re-import that moves a device to another account or address must
                    # reach running collectors just like a new device.
                    emitted.append(self._emit(tx, now, EventType.DEVICE_UPDATED, dev.account_id, dev.id))
            self._audit(tx, now, None, None, "devices.imported", {"source": source, "count": count})
        self._notify(emitted)
        return count

    def remove_device(self, device_id: str) -> LifecycleEvent:
        now = self._clock()
        with self.db.transaction() as tx:
            row = tx.one("SELECT account_id FROM devices WHERE id = ?", (device_id,))
            if row is None:
                raise LookupError(f"no such device: {device_id!r}")
            tx.run("DELETE FROM devices WHERE id = ?", (device_id,))
            event = self._emit(tx, now, EventType.DEVICE_REMOVED, row[0], device_id)
            self._audit(tx, now, row[0], device_id, "device.removed", {})
        self._notify([event])
        return event

    def set_status(self, account_id: str, status: AccountStatus, reason: str = "") -> LifecycleEvent | None:
        """Change an account's status. Returns the emitted event, None if it was already so."""
        check_account_id(account_id)
        now = self._clock()
        with self.db.transaction() as tx:
            row = tx.one("SELECT status FROM accounts WHERE id = ?", (account_id,))
            if row is None:
                raise UnknownAccount(account_id)
            old = AccountStatus(row[0])
            event_type = event_for_transition(old, status)
            if event_type is None:
                return None
            tx.run(
                "UPDATE accounts SET status = ?, status_changed_at = ? WHERE id = ?",
                (status.value, now.isoformat(), account_id),
            )
            event = self._emit(tx, now, event_type, account_id)
            self._audit(
                tx,
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
        with self.db.transaction() as tx:
            row = tx.one("SELECT account_id FROM devices WHERE id = ?", (device_id,))
            if row is None:
                raise LookupError(f"no such device: {device_id!r}")
            tx.run(
                "UPDATE devices SET debug_until = ? WHERE id = ?",
                (until.isoformat() if until else None, device_id),
            )
            event = self._emit(tx, now, EventType.DEVICE_DEBUG_WINDOW, row[0], device_id)
            self._audit(
                tx,
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
        with self.db.transaction() as tx:
            if tx.one("SELECT 1 FROM accounts WHERE id = ? AND ended_at IS NULL", (account_id,)) is None:
                raise UnknownAccount(account_id, self.ended_at(account_id))
            counts = forget_account(tx, self.pseudonym, account_id, now)
            detail = {**counts, "deidentified": True}  # nothing in it to de-identify later
            self._audit(tx, now, self.pseudonym(account_id), None, "account.forgotten", detail)
        self.db.compact()
        return counts

    # -- running collectors: heartbeats and acknowledgements of stop events ------------------

    def set_remote_stores(self, names: Iterable[str]) -> None:
        """The remote stores (sink names) the service of this data dir writes to now."""
        wanted = sorted(set(names))
        with self.db.transaction() as tx:
            if wanted:
                tx.run(f"DELETE FROM remote_stores WHERE name NOT IN {in_list(len(wanted))}", wanted)
            else:
                tx.run("DELETE FROM remote_stores")
            now = self._clock().isoformat()
            tx.runmany(
                "INSERT INTO remote_stores (name, since) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(n, now) for n in wanted],
            )

    def remote_stores(self) -> list[str]:
        return [str(r[0]) for r in self.db.query("SELECT name FROM remote_stores ORDER BY name")]

    def _now(self) -> tuple[str, tuple[float, ...]]:
        """Heartbeat time, as SQL and its arguments: this process's clock for the data dir's
        file (one host), the database server's on PostgreSQL (hosts' clocks differ)."""
        if self.db.dialect == "postgres":
            return "extract(epoch FROM clock_timestamp())", ()
        return "?", (self._clock().timestamp(),)

    def collector_heartbeat(self, collector_id: str, pid: int) -> None:
        now, now_args = self._now()
        self.db.run(
            f"INSERT INTO collectors VALUES (?, ?, ?, {now}) ON CONFLICT(id) DO UPDATE SET"
            " heartbeat_at = excluded.heartbeat_at",
            (collector_id, pid, self._clock().isoformat(), *now_args),
        )

    def collector_gone(self, collector_id: str) -> None:
        self.db.run("DELETE FROM collectors WHERE id = ?", (collector_id,))

    def live_collectors(self, within_s: float = 3.0) -> list[str]:
        now, now_args = self._now()
        rows = self.db.query(
            f"SELECT id FROM collectors WHERE heartbeat_at >= {now} - ?", (*now_args, within_s)
        )
        return [r[0] for r in rows]

    def ack_event(self, event_id: int, collector_id: str) -> None:
        self.db.run(
            "INSERT INTO event_acks VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (event_id, collector_id, self._clock().isoformat()),
        )

    def event_acks(self, event_id: int) -> dict[str, datetime]:
        rows = self.db.query("SELECT collector_id, acked_at FROM event_acks WHERE event_id = ?", (event_id,))
        return {r[0]: datetime.fromisoformat(r[1]) for r in rows}

    def record_audit(
        self,
        action: str,
        detail: dict[str, Any],
        account_id: str | None = None,
        device_id: str | None = None,
    ) -> None:
        with self.db.transaction() as tx:
            self._audit(tx, self._clock(), account_id, device_id, action, detail)

    @staticmethod
    def _emit(
        tx: Tx,
        at: datetime,
        kind: EventType,
        account_id: str,
        device_id: str | None = None,
    ) -> LifecycleEvent:
        event_id = tx.insert_id(
            "INSERT INTO events (at, type, account_id, device_id) VALUES (?, ?, ?, ?)",
            (at.isoformat(), kind.value, account_id, device_id),
        )
        tx.notify(EVENTS_CHANNEL, str(event_id))  # delivered to listeners at commit
        return LifecycleEvent(id=event_id, at=at, type=kind, account_id=account_id, device_id=device_id)

    @staticmethod
    def _audit(
        tx: Tx,
        at: datetime,
        account_id: str | None,
        device_id: str | None,
        action: str,
        detail: dict[str, Any],
    ) -> None:
        tx.run(
            "INSERT INTO audit (at, account_id, device_id, action, detail) VALUES (?, ?, ?, ?, ?)",
            (at.isoformat(), account_id, device_id, action, json.dumps(detail, sort_keys=True)),
        )

    def _notify(self, events: list[LifecycleEvent]) -> None:
        for event in events:
            for listener in self._listeners:
                listener(event)


_UPSERT_DEVICE = (
    f"INSERT INTO devices ({', '.join(DEVICE_COLUMNS)}) VALUES ({', '.join('?' * len(DEVICE_COLUMNS))})"
    " ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in DEVICE_COLUMNS[1:])
)


def _device_values(dev: Device) -> tuple[Any, ...]:
    return (
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
    )
