"""P5 in the registry: once an account's data has ended everywhere, its device rows are
deleted and its events, audit entries and receipts are kept only under keyed pseudonyms;
the raw bytes of registry.db and its WAL hold none of its identifiers."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from collector.alerts.state import ALERTS
from collector.retention import load_policy
from collector.runtime.sweeper import RetentionSweeper
from collector.sinks.sqlite import EmbeddedStore
from factories import T0, snmp_device
from postgres import Postgres
from provisioning.db import open_db
from provisioning.models import AccountStatus
from provisioning.outbox import Outbox
from provisioning.receipts import Action, ReceiptBook, ReceiptStatus
from provisioning.registry import Registry, UnknownAccount, open_registry_db

POLICY = load_policy()
GONE, KEPT = "acct-gone-7", "acct-kept-8"
REASON = "customer Jane Q. Public closed the contract"


def _setup(
    tmp_path: Path, registry: Registry | None = None
) -> tuple[Registry, ReceiptBook, Outbox, RetentionSweeper, list[str]]:
    registry = registry or Registry(tmp_path / "registry.db", clock=lambda: T0)
    victim = snmp_device(7, GONE).model_copy(
        update={"address": "198.51.100.77:161", "sip_aor": "sip:4417@pbx.example"}
    )
    removed = snmp_device(9, GONE).model_copy(update={"address": "198.51.100.79"})
    registry.import_devices([victim, removed, snmp_device(8, KEPT)], source="import.csv")
    registry.remove_device(removed.id)
    registry.set_debug_window(victim.id, None)
    receipts = ReceiptBook.of(registry)
    receipt, _ = receipts.open(Action.REVOKE, GONE, REASON, request_id=f"billing-{GONE}-2026")
    registry.set_status(GONE, AccountStatus.REVOKED, REASON)
    receipts.finish(
        receipt.id, ReceiptStatus.DONE, {"devices": [{"device_id": victim.id}], "note": f"{GONE} done"}
    )
    outbox = Outbox(registry.db)
    outbox.delivered(outbox.enqueue("billing", "collection.stopped", {"account_id": GONE}, GONE))
    store = EmbeddedStore.open(tmp_path / "telemetry.db")
    sweeper = RetentionSweeper(POLICY, store, registry, clock=lambda: T0)
    identifiers = [GONE, victim.id, removed.id, "198.51.100.77", "198.51.100.79", "4417@pbx", "Jane Q."]
    return registry, receipts, outbox, sweeper, [*identifiers, "billing-"]


def _raw(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("registry.db*"))


def _alert_about(tmp_path: Path, device_id: str, account_id: str) -> None:
    """What a running alert engine keeps of a device: its alert and a delivered notice."""
    db = open_db(tmp_path / "alerts.db", ALERTS)
    row = ("offline", device_id, account_id, "HT812", "firing", 0, "{}")
    db.execute("INSERT INTO alert_state VALUES (?, ?, ?, ?, ?, ?, ?)", row)
    db.close()
    notices = Outbox(tmp_path / "alerts.db", ALERTS)
    notices.delivered(notices.enqueue("noc", "alert.firing", {"device_id": device_id}, account_id))


def test_an_ended_account_leaves_only_pseudonyms_in_the_registry_files(tmp_path: Path) -> None:
    registry, receipts, _, sweeper, identifiers = _setup(tmp_path)
    _alert_about(tmp_path, "000b82000007", GONE)
    _alert_about(tmp_path, "000b82000008", KEPT)
    assert all(i.encode() in _raw(tmp_path) for i in identifiers)  # the test can see them
    sweeper.sweep()
    raw = _raw(tmp_path)
    for identifier in identifiers:
        assert identifier.encode() not in raw, identifier
    alerts = b"".join(p.read_bytes() for p in tmp_path.glob("alerts.db*"))
    assert GONE.encode() not in alerts and b"000b82000007" not in alerts  # no engine ran: still gone
    assert KEPT.encode() in alerts and b"000b82000008" in alerts
    assert KEPT.encode() in raw and b"000b82000008" in raw  # the other account is untouched
    assert [d.account_id for d in registry.devices()] == [KEPT]
    assert [a.id for a in registry.accounts()] == [KEPT]
    with pytest.raises(UnknownAccount, match="forgot it on"):
        registry.account(GONE)
    # Counts stay possible, and the caller can still look up its own request.
    pseudonym = registry.pseudonym(GONE)
    db = sqlite3.connect(tmp_path / "registry.db")
    statuses = dict(db.execute("SELECT status, count(*) FROM accounts GROUP BY 1").fetchall())
    assert statuses == {"active": 1, "revoked": 1}
    assert db.execute("SELECT count(*) FROM events WHERE account_id = ?", (pseudonym,)).fetchone()[0] >= 4
    found = receipts.find(f"billing-{GONE}-2026")
    assert found is not None and found.account_id == pseudonym and found.reason == ""
    assert found.result["devices"] == [{"device_id": registry.pseudonym("000b82000007")}]
    assert [r.id for r in receipts.for_account(GONE)] == [found.id]
    again, created = receipts.open(Action.REVOKE, GONE, request_id=f"billing-{GONE}-2026")
    assert (again.id, created) == (found.id, False)  # a retry is answered, not refused
    entries = [e for e in registry.audit_entries(pseudonym)]
    assert entries and all(e["detail"].get("reason", "") == "" for e in entries)
    # The audit log stays append-only: a de-identified row cannot be changed again, nor any
    # row in another way, nor deleted.
    for sql in (
        "UPDATE audit SET detail = '{\"deidentified\": true}' WHERE account_id = ?",
        "UPDATE audit SET action = 'x' WHERE account_id IS NULL OR account_id != ?",
        "DELETE FROM audit WHERE account_id = ?",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(sql, (pseudonym,))
    db.close()
    # The same id imported again is a new account.
    registry.import_devices([snmp_device(7, GONE)], source="t")
    assert registry.account(GONE).status is AccountStatus.ACTIVE


def test_an_account_is_forgotten_only_once_nothing_is_owed_or_held(tmp_path: Path) -> None:
    registry, _, outbox, sweeper, _ = _setup(tmp_path)
    notice = outbox.enqueue("billing", "collection.stopped", {"account_id": GONE}, GONE)
    sweeper.sweep()
    assert registry.account(GONE).status is AccountStatus.REVOKED  # a notice still to deliver
    outbox.delivered(notice)
    suspended = "acct-paused-3"
    registry.import_devices([snmp_device(3, suspended)], source="t")
    registry.set_status(suspended, AccountStatus.INACTIVE)
    sweeper.sweep()
    with pytest.raises(UnknownAccount):
        registry.account(GONE)
    assert registry.account(suspended).status is AccountStatus.INACTIVE  # within its grace period
    later = RetentionSweeper(
        POLICY,
        EmbeddedStore.open(tmp_path / "telemetry.db"),
        registry,
        clock=lambda: T0 + POLICY.inactive_grace + timedelta(hours=1),
    )
    later.sweep()
    with pytest.raises(UnknownAccount):
        registry.account(suspended)
    assert outbox.entries(GONE) == []


def test_a_notice_for_all_webhooks_waits_only_where_there_are_webhooks(tmp_path: Path) -> None:
    """The CLI queues its notices for all webhooks; a service with none configured (or
    `hookflash sweep -c` with such a config) delivers them to nobody; the CLI's own sweep,
    which does not know the service's webhooks, leaves them to it."""
    registry, _, outbox, sweeper, _ = _setup(tmp_path)
    outbox.enqueue("*", "collection.stopped", {"account_id": GONE}, GONE)
    sweeper.sweep()  # webhooks unknown: the notice is owed
    assert registry.account(GONE).status is AccountStatus.REVOKED
    store = EmbeddedStore.open(tmp_path / "telemetry.db")
    RetentionSweeper(POLICY, store, registry, clock=lambda: T0, webhooks=[]).sweep()
    with pytest.raises(UnknownAccount):
        registry.account(GONE)
    assert outbox.entries(GONE) == []


def test_on_postgresql_no_table_holds_an_ended_accounts_identifiers(
    tmp_path: Path, postgres_url: str, postgres_server: Postgres
) -> None:
    registry = Registry(open_registry_db(postgres_url), clock=lambda: T0, key_path=tmp_path / "registry.key")
    _, receipts, _, sweeper, identifiers = _setup(tmp_path, registry)
    with postgres_server.connect(postgres_url.rsplit("/", 1)[1]) as conn:
        before = "\n".join(postgres_server.every_row_as_text(postgres_url).values())
        # The test can see them all, but the address of the device removed earlier: its row
        # is gone (SQLite's file still held its bytes until the sweep).
        assert [i for i in identifiers if i not in before] == ["198.51.100.79"]
        sweeper.sweep()
        tables = postgres_server.every_row_as_text(postgres_url)
        assert {"public.accounts", "public.devices", "public.audit", "public.outbox"} <= set(tables)
        for table, text in tables.items():
            for identifier in identifiers:
                assert identifier not in text, f"{identifier!r} is still in {table}"
        assert KEPT in tables["public.accounts"] and "000b82000008" in tables["public.devices"]
        pseudonym = registry.pseudonym(GONE)
        statuses = dict(conn.execute("SELECT status, count(*) FROM accounts GROUP BY 1").fetchall())
        assert statuses == {"active": 1, "revoked": 1}
        for statement in (
            "UPDATE audit SET detail = '{\"deidentified\": true}' WHERE account_id = %s",
            "DELETE FROM audit WHERE account_id = %s",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement, (pseudonym,))
    found = receipts.find(f"billing-{GONE}-2026")
    assert found is not None and found.account_id == pseudonym and found.reason == ""
    assert not (tmp_path / "registry.db").exists()  # nothing of the registry went to the data dir
    registry.close()
