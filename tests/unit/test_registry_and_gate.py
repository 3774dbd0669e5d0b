"""Registry lifecycle, the append-only audit log, cross-process events, and the gate:
each test on both backends (conftest `make_registry`)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from collector.core.backoff import Backoff
from collector.core.records import Kind
from collector.gate import Gate
from conftest import MakeRegistry
from factories import T0, mqtt_device, snmp_device
from postgres import Postgres
from provisioning.events import EventType
from provisioning.models import AccountStatus
from provisioning.registry import Registry, UnknownAccount


@pytest.fixture
def registry(make_registry: MakeRegistry) -> Registry:
    reg = make_registry(clock=lambda: T0)
    reg.import_devices([snmp_device(1, "a1"), mqtt_device(2, "a2")], source="test")
    return reg


def test_status_changes_are_audited_and_published(registry: Registry) -> None:
    heard = []
    registry.subscribe(heard.append)
    first = registry.set_status("a1", AccountStatus.INACTIVE, reason="non-payment")
    assert registry.set_status("a1", AccountStatus.INACTIVE) is None  # no change, no event
    registry.set_status("a1", AccountStatus.ACTIVE)
    registry.set_status("a1", AccountStatus.REVOKED)
    assert first is not None and first.type is EventType.ACCOUNT_INACTIVE
    assert [e.type for e in heard] == [
        EventType.ACCOUNT_INACTIVE,
        EventType.ACCOUNT_REACTIVATED,
        EventType.ACCOUNT_REVOKED,
    ]
    changes = [e["detail"] for e in registry.audit_entries("a1") if e["action"] == "account.status"]
    assert [(c["from"], c["to"]) for c in changes] == [
        ("active", "inactive"),
        ("inactive", "active"),
        ("active", "revoked"),
    ]
    assert changes[0]["reason"] == "non-payment"
    with pytest.raises(UnknownAccount, match="no such account: 'zz'"):
        registry.set_status("zz", AccountStatus.ACTIVE)


def test_audit_log_is_append_only(
    registry: Registry, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Refused from outside hookflash too: a plain connection to the file or the database."""
    registry.set_status("a1", AccountStatus.REVOKED)
    tampering = ("UPDATE audit SET action = 'nothing'", "DELETE FROM audit")
    if backend == "sqlite":
        db = sqlite3.connect(tmp_path / "registry.db")
        for statement in tampering:
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(statement)
        return
    server: Postgres = request.getfixturevalue("postgres_server")
    with server.connect(registry.db.describe().rsplit("/", 1)[1]) as conn:
        for statement in (*tampering, "TRUNCATE audit"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
        rows = conn.execute("SELECT count(*) FROM audit").fetchone()
    assert rows is not None and rows[0] == len(registry.audit_entries())


def test_another_process_sees_events_by_polling(registry: Registry, make_registry: MakeRegistry) -> None:
    other = make_registry()  # a second connection, as another process has
    last = other.last_event_id()
    registry.set_status("a2", AccountStatus.REVOKED)
    events = other.events_since(last)
    assert [(e.type, e.account_id) for e in events] == [(EventType.ACCOUNT_REVOKED, "a2")]


def test_gate_admits_only_provisioned_devices_of_active_accounts(registry: Registry) -> None:
    gate = Gate(registry, clock=lambda: T0)
    dev1, dev2 = snmp_device(1, "a1"), mqtt_device(2, "a2")
    assert gate.allows(dev1.id) and gate.allows(dev2.id)
    assert not gate.allows("000b82ffffff")  # P1: not in the registry
    event = registry.set_status("a1", AccountStatus.INACTIVE)
    assert event is not None
    gate.apply(event)
    assert not gate.allows(dev1.id) and gate.allows(dev2.id)
    reactivated = registry.set_status("a1", AccountStatus.ACTIVE)
    assert reactivated is not None
    gate.apply(reactivated)
    assert gate.allows(dev1.id)


def test_diagnostic_kind_only_inside_a_troubleshooting_window(make_registry: MakeRegistry) -> None:
    registry = make_registry()
    closed = snmp_device(1, "a1")
    open_ = snmp_device(2, "a1").model_copy(update={"debug_until": T0 + timedelta(hours=2)})
    registry.import_devices([closed, open_], source="test")
    gate = Gate(registry, clock=lambda: T0)
    assert Kind.DIAGNOSTIC not in gate.allowed_kinds(closed)
    assert Kind.DIAGNOSTIC in gate.allowed_kinds(open_)
    later = Gate(registry, clock=lambda: T0 + timedelta(hours=3))
    assert Kind.DIAGNOSTIC not in later.allowed_kinds(open_)


def test_reimport_that_moves_a_device_reaches_the_gate(registry: Registry) -> None:
    gate = Gate(registry, clock=lambda: T0)
    moved = snmp_device(1, "a2", port=2161)
    registry.import_devices([moved], source="again")
    registry.import_devices([moved], source="same again")  # unchanged: no event
    updates = [e for e in registry.events_since(0) if e.type is EventType.DEVICE_UPDATED]
    assert [(e.device_id, e.account_id) for e in updates] == [(moved.id, "a2")]
    gate.apply(updates[0])
    device = gate.device(moved.id)
    assert device is not None and device.account_id == "a2" and device.address == "127.0.0.1:2161"


def test_mqtt_topic_must_be_unique_across_the_registry(registry: Registry) -> None:
    from provisioning.registry import DuplicateTopic

    clash = mqtt_device(9, "a1").model_copy(update={"address": mqtt_device(2, "a2").address})
    with pytest.raises(DuplicateTopic, match="already used by device 805ec0000002"):
        registry.import_devices([snmp_device(7, "a1"), clash], source="t")
    assert registry.device(snmp_device(7, "a1").id) is None  # nothing imported


def test_data_timestamped_before_reactivation_is_not_admitted(registry: Registry) -> None:
    clock = [T0]
    registry._clock = lambda: clock[0]  # type: ignore[method-assign]
    gate = Gate(registry, clock=lambda: T0)
    for status, minutes in ((AccountStatus.INACTIVE, 10), (AccountStatus.ACTIVE, 20)):
        clock[0] = T0 + timedelta(minutes=minutes)
        event = registry.set_status("a1", status)
        assert event is not None
        gate.apply(event)
    assert not gate.observed_while_active("a1", T0 + timedelta(minutes=15))  # inside the inactive period
    assert not gate.observed_while_active("a1", T0 + timedelta(minutes=5))  # before it: ended by it
    assert gate.observed_while_active("a1", T0 + timedelta(minutes=21))


def test_a_change_wakes_listeners_on_other_connections_at_commit(
    registry: Registry, make_registry: MakeRegistry, backend: str
) -> None:
    """PostgreSQL: the status change NOTIFYs in its own transaction, so another host's
    collector wakes at once; SQLite has no notifications (its readers poll)."""
    other = make_registry()
    woken = threading.Event()
    stop = other.listen(woken.set, Backoff(0.1, 1.0))
    if backend == "sqlite":
        assert stop is None
        return
    assert stop is not None
    try:
        assert woken.wait(5), "no wake-up after connecting (the catch-up read)"
        woken.clear()
        registry.set_status("a1", AccountStatus.REVOKED)
        assert woken.wait(5), "the revocation's notification did not arrive"
        assert [e.type for e in other.events_since(0)][-1] is EventType.ACCOUNT_REVOKED
    finally:
        stop()
