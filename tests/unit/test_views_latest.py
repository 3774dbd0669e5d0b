"""The views' index (collector/views/latest.py) stays exact through writes, purges,
erasure and retention: a view never shows a record that is gone."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from collector.core.records import Kind
from collector.retention import load_policy
from collector.sinks.sqlite import EmbeddedStore
from conftest import MakeRegistry
from factories import T0, record, snmp_device

POLICY = load_policy()
A, B = snmp_device(1, "acct-a"), snmp_device(2, "acct-b")


def latest(store: EmbeddedStore) -> dict[tuple[str, str], dict[str, Any]]:
    rows = store.db.connection.execute("SELECT slot, device_id, fields FROM latest").fetchall()
    return {(r[0], r[1]): json.loads(r[2]) for r in rows}


def state(store: EmbeddedStore, device_id: str, account_id: str | None = None) -> tuple[Any, ...] | None:
    row = store.db.connection.execute(
        "SELECT last_seen, reg_state, mos, version FROM device_state"
        " WHERE device_id = ? AND account_id = coalesce(?, account_id)",
        (device_id, account_id),
    ).fetchone()
    return None if row is None else tuple(row)


def test_latest_follows_writes_purges_and_erasure(tmp_path: Path) -> None:
    store = EmbeddedStore.open(tmp_path / "telemetry.db")
    store.sink.write(
        [
            record(POLICY, A, Kind.CALL_QUALITY, {"mos": 4.1}, minutes=0),
            record(POLICY, A, Kind.CALL_QUALITY, {"mos": 3.0}, minutes=10),
            record(POLICY, A, Kind.CALL_QUALITY, {"mos": 4.4}, minutes=5),  # late, older: not the newest
            record(
                POLICY,
                A,
                Kind.REGISTRATION,
                {"line1_state": "failed", "line2_state": "unregistered"},
                minutes=1,
            ),
            record(POLICY, A, Kind.FIRMWARE, {"version": "1.0.47.4"}, minutes=2),
            record(POLICY, A, Kind.REACHABILITY, {"state": "down"}, minutes=30),  # not "seen"
            record(POLICY, A, Kind.CHANGE, {"event": "firmware_changed", "version": "1.0.47.4"}, minutes=2),
            record(POLICY, A, Kind.CHANGE, {"event": "reboot", "uptime_s": 5}, minutes=3),
            record(POLICY, B, Kind.REGISTRATION, {"line1_state": "registered"}, minutes=20),
        ]
    )
    assert latest(store)[("call_quality", A.id)] == {"mos": 3.0}
    assert latest(store)[("change.firmware_changed", A.id)]["version"] == "1.0.47.4"
    assert latest(store)[("change.reboot", A.id)]["uptime_s"] == 5
    ts = (T0 + timedelta(minutes=10)).timestamp()
    assert state(store, A.id) == (ts, "unregistered", 3.0, "1.0.47.4")
    assert state(store, B.id) == ((T0 + timedelta(minutes=20)).timestamp(), "registered", None, None)

    # The newest call-quality record goes (any delete): the index steps back to the next newest.
    store.db.connection.execute("DELETE FROM telemetry WHERE kind = 'call_quality' AND fields->>'mos' = 3.0")
    assert latest(store)[("call_quality", A.id)] == {"mos": 4.4}
    assert state(store, A.id) == ((T0 + timedelta(minutes=5)).timestamp(), "unregistered", 4.4, "1.0.47.4")

    # Retention ends the older operational records: nothing of them is left in the index.
    store.sink.expire(POLICY.classes["operational"], T0 + timedelta(minutes=6), POLICY.anonymization)
    assert ("call_quality", A.id) not in latest(store) and ("registration", A.id) not in latest(store)
    assert ("reachability", A.id) in latest(store)  # at +30 min: still within
    assert state(store, A.id) == ((T0 + timedelta(minutes=3)).timestamp(), None, None, "1.0.47.4")

    store.sink.erase_account("acct-a", list(POLICY.classes.values()), POLICY.anonymization)
    assert {d for _, d in latest(store)} == {B.id}
    assert state(store, A.id) is None and A.id not in store.queries.text_dump()


def test_an_older_store_gets_its_index_filled_once(tmp_path: Path) -> None:
    store = EmbeddedStore.open(tmp_path / "telemetry.db")
    store.sink.write(
        [
            record(POLICY, A, Kind.CALL_QUALITY, {"mos": 4.1}, minutes=0),
            record(POLICY, A, Kind.CALL_QUALITY, {"mos": 3.9}, minutes=1),
            record(POLICY, B, Kind.FIRMWARE, {"version": "1.0.43.11"}, minutes=0),
        ]
    )
    before = latest(store), state(store, A.id), state(store, B.id)
    # A store from before the index (and before schema versions): upgraded when opened.
    store.db.connection.executescript(
        "DROP TRIGGER latest_on_insert; DROP TRIGGER latest_on_delete;"
        " DROP TABLE device_state; DROP TABLE latest; PRAGMA user_version = 0;"
    )
    store.close()
    store = EmbeddedStore.open(tmp_path / "telemetry.db")
    assert (latest(store), state(store, A.id), state(store, B.id)) == before


def owned_rows(store: EmbeddedStore) -> dict[str, set[tuple[str, ...]]]:
    """The index's keys: (slot, device, account) in latest, (device, account) in device_state."""
    db = store.db.connection
    return {
        "latest": {tuple(r) for r in db.execute("SELECT slot, device_id, account_id FROM latest")},
        "device_state": {tuple(r) for r in db.execute("SELECT device_id, account_id FROM device_state")},
    }


def test_a_moved_device_counts_as_never_seen_under_its_new_owner(
    tmp_path: Path, make_registry: MakeRegistry
) -> None:
    """On both backends: with the registry in PostgreSQL the views read a copy of its
    accounts and devices, taken again after every lifecycle event (the move is one)."""
    from collector.alerts import rules
    from collector.config.alerts import (
        FirmwareRegressedRule,
        MosBelowRule,
        OfflineRule,
        RegistrationLostRule,
    )
    from collector.config.views import ViewsConfig
    from collector.views.db import ViewsDb
    from collector.views.fleet import FleetViews

    registry = make_registry()
    registry.import_devices([A], source="t")
    store = EmbeddedStore.open(tmp_path / "telemetry.db")
    store.sink.write(
        [
            record(POLICY, A, Kind.CALL_QUALITY, {"mos": 1.5}, minutes=0),
            record(POLICY, A, Kind.REGISTRATION, {"line1_state": "unregistered"}, minutes=1),
            record(POLICY, A, Kind.FIRMWARE, {"version": "1.0"}, minutes=2, firmware="1.0"),
            record(POLICY, A, Kind.REACHABILITY, {"state": "down"}, minutes=3),
            record(
                POLICY,
                A,
                Kind.CHANGE,
                {"event": "firmware_changed", "version": "1.0", "direction": "downgrade"},
                minutes=2,
                firmware="1.0",
            ),
        ]
    )
    views = FleetViews(ViewsDb(tmp_path / "telemetry.db", registry.db), ViewsConfig())
    before = views.summary()
    assert (before.poor_quality, before.unregistered, before.never_seen) == (1, 1, 0)  # A's period
    mos = rules.MosTracker(MosBelowRule(name="m", type="mos_below", threshold=3.0, calls=1))
    assert set(mos.evaluate(views.db)) == {A.id}  # poor under its first owner

    moved = A.model_copy(update={"account_id": "acct-b"})
    registry.import_devices([moved], source="t")  # the ATA was handed to another customer
    summary = views.summary()
    assert (summary.devices, summary.never_seen, summary.offline, summary.online) == (1, 1, 0, 0)
    assert (summary.registered, summary.unregistered, summary.poor_quality) == (0, 0, 0)
    assert views.poor_quality(below=5).total == 0 and views.unregistered().total == 0
    [firmware] = views.firmware()
    assert [(v.version, v.devices) for v in firmware.versions] == [("unknown", 1)]
    [offline] = views.offline().items
    assert (offline.account_id, offline.reason, offline.last_seen) == ("acct-b", "never seen", None)
    detail, history = views.device(A.id), views.history(A.id)
    assert detail is not None and history is not None
    assert (detail.account_id, detail.latest, detail.last_seen, history.items) == ("acct-b", [], None, [])
    now = (T0 + timedelta(minutes=5)).timestamp()
    assert rules.offline(views.db, OfflineRule(name="o", type="offline", minutes=1), now) == {}
    assert rules.registration_lost(views.db, RegistrationLostRule(name="r", type="registration_lost")) == {}
    regressed = FirmwareRegressedRule(name="f", type="firmware_regressed")
    assert rules.firmware_regressed(views.db, regressed) == {}
    assert mos.evaluate(views.db) == {}  # what was judged of acct-a's calls is not acct-b's

    # The new owner's first record: only it shows.
    store.sink.write([record(POLICY, moved, Kind.CALL_QUALITY, {"mos": 4.4}, minutes=10)])
    summary = views.summary()
    assert (summary.never_seen, summary.poor_quality, summary.unregistered) == (0, 0, 0)
    assert [q.mos for q in views.poor_quality(below=5).items] == [4.4]
    [firmware] = views.firmware()
    assert [(v.version, v.devices) for v in firmware.versions] == [("unknown", 1)]
    detail = views.device(A.id)
    assert detail is not None and [(r.kind, r.fields) for r in detail.latest] == [
        ("call_quality", {"mos": 4.4})
    ]
    assert detail.last_seen == T0 + timedelta(minutes=10)

    # The MOS rule averages the new owner's calls only (one, fewer than it needs).
    tracker = rules.MosTracker(MosBelowRule(name="m", type="mos_below", threshold=3.5, calls=2))
    assert tracker.evaluate(views.db) == {}

    # Erasing the previous owner's data leaves the new owner's index rows as they were.
    slots = ("call_quality", "registration", "firmware", "reachability", "change.firmware_changed")
    assert owned_rows(store) == {
        "latest": {(s, A.id, "acct-a") for s in slots} | {("call_quality", A.id, "acct-b")},
        "device_state": {(A.id, "acct-a"), (A.id, "acct-b")},
    }
    state_b = state(store, A.id, "acct-b")
    store.sink.erase_account("acct-a", list(POLICY.classes.values()), POLICY.anonymization)
    assert owned_rows(store) == {
        "latest": {("call_quality", A.id, "acct-b")},
        "device_state": {(A.id, "acct-b")},
    }
    assert (
        state(store, A.id, "acct-b") == state_b == ((T0 + timedelta(minutes=10)).timestamp(), None, 4.4, None)
    )
    assert [q.mos for q in views.poor_quality(below=5).items] == [4.4]
    views.db.close()
    store.close()
    registry.close()


def test_a_moved_device_shows_only_its_current_owner_s_records(tmp_path: Path) -> None:
    from collector.config.views import ViewsConfig
    from collector.views.db import ViewsDb
    from collector.views.fleet import FleetViews
    from provisioning.registry import Registry

    registry = Registry(tmp_path / "registry.db")
    registry.import_devices([A], source="t")
    store = EmbeddedStore.open(tmp_path / "telemetry.db")
    store.sink.write([record(POLICY, A, Kind.CALL_QUALITY, {"mos": 2.2}, minutes=m) for m in range(3)])
    moved = A.model_copy(update={"account_id": "acct-new"})
    registry.import_devices([moved], source="t")  # the ATA was handed to another customer
    store.sink.write([record(POLICY, moved, Kind.CALL_QUALITY, {"mos": 4.4}, minutes=10)])
    views = FleetViews(ViewsDb(tmp_path / "telemetry.db", tmp_path / "registry.db"), ViewsConfig())
    detail, history = views.device(A.id), views.history(A.id)
    assert detail is not None and history is not None and detail.account_id == "acct-new"
    assert [r.fields["mos"] for r in history.items] == [4.4]  # nothing of the previous owner's
    assert all(r.fields.get("mos") != 2.2 for r in detail.latest)
    store.close()
    registry.close()
