"""SQLite store: erasure and anonymization by class, and the retention sweeper on a moved clock."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.core.records import Kind, QuarantineEntry
from collector.retention import RetentionClass, load_policy
from collector.runtime.lifecycle import end_account
from collector.runtime.sweeper import RetentionSweeper
from collector.sinks.sqlite import EmbeddedStore
from factories import T0, record, snmp_device
from provisioning.models import AccountStatus
from provisioning.registry import Registry

POLICY = load_policy()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def fill(store: EmbeddedStore, account: str, n: int) -> None:
    dev = snmp_device(n, account)
    store.sink.write(
        [
            record(POLICY, dev, Kind.FIRMWARE, {"version": "1.0.47.4", "boot_version": "1.0.3.5"}),
            record(POLICY, dev, Kind.INVENTORY, {"serial": f"GS{n:06X}", "model_name": "HT812"}),
            record(POLICY, dev, Kind.NETWORK, {"wan_mac": f"00:0b:82:00:00:{n:02x}"}),
            record(POLICY, dev, Kind.CALL_QUALITY, {"mos": 4.0, "jitter_ms": 10, "codec": "G722"}),
            record(POLICY, dev, Kind.CALL_QUALITY, {"mos": 3.0, "jitter_ms": 30, "codec": "G722"}, minutes=1),
            record(POLICY, dev, Kind.REGISTRATION, {"line1_state": "registered"}),
            record(POLICY, dev, Kind.DIAGNOSTIC, {"log_excerpt": f"REGISTER sip:{n}@example"}),
        ]
    )


def test_revocation_erases_and_anonymizes_leaving_nothing_identifying(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r.db", clock=lambda: T0)
    registry.import_devices([snmp_device(1, "gone"), snmp_device(2, "stays")], source="t")
    store = EmbeddedStore.open(tmp_path / "t.db")
    fill(store, "gone", 1)
    fill(store, "stays", 2)
    store.quarantine.quarantine(
        [QuarantineEntry.of("mqtt", "site1/kitchen/signal", b"x", "bad", T0, "000b82000001", "gone")]
    )
    registry.set_status("gone", AccountStatus.REVOKED)
    lenient = POLICY.model_copy(update={"anonymization": replace(POLICY.anonymization, min_group_size=1)})
    counts = end_account(registry, [store.sink, store.quarantine], lenient, "gone", "revoked")["sqlite"]
    assert counts == {
        "account_lifetime": 2,
        "identifying": 1,
        "operational": 3,
        "troubleshooting": 1,
        "quarantine": 1,
    }
    assert store.queries.query(account_id="gone") == []
    dump = store.queries.text_dump()
    for identifier in ("gone", "000b82000001", "GS000001", "00:0b:82:00:00:01", "REGISTER sip:1@"):
        assert identifier not in dump
    assert len(store.queries.query(account_id="stays")) == 7  # other accounts lose nothing
    # Anonymized data survives as aggregates keyed by model and firmware only.
    aggs = {(a["kind"], a["field"]): a for a in store.queries.aggregates()}
    mos = aggs[("call_quality", "mos")]
    assert (mos["count"], mos["sum"], mos["min"], mos["max"]) == (2, 7.0, 3.0, 4.0)
    assert (mos["model"], mos["firmware"]) == ("HT812", "1.0.47.4")
    assert aggs[("registration", "line1_state=registered")]["count"] == 1
    assert ("inventory", "serial") not in aggs  # text outside the allow-list is dropped
    assert any(e["action"] == "account.data_ended" for e in registry.audit_entries("gone"))


def test_sweeper_applies_ttls_and_while_active_rules(tmp_path: Path) -> None:
    clock = Clock(T0)
    registry = Registry(tmp_path / "r.db", clock=clock)
    registry.import_devices([snmp_device(1, "active"), snmp_device(2, "suspended")], source="t")
    store = EmbeddedStore.open(tmp_path / "t.db")
    fill(store, "active", 1)
    fill(store, "suspended", 2)
    sweeper = RetentionSweeper(POLICY, store, registry, clock=clock)

    clock.now = T0 + timedelta(hours=71)
    assert sum(sweeper.sweep().values()) == 0
    clock.now = T0 + timedelta(hours=73)  # diagnostic (72h) is over for both
    assert sweeper.sweep() == {
        "account_lifetime": 0,
        "identifying": 0,
        "operational": 0,
        "troubleshooting": 2,
    }

    registry.set_status("suspended", AccountStatus.INACTIVE)  # at T0+73h
    clock.now = T0 + timedelta(days=20)
    assert sum(sweeper.sweep().values()) == 0  # inside the 30-day grace: data stays
    clock.now = T0 + timedelta(days=31)  # operational (30d) ends for both accounts
    assert sweeper.sweep()["operational"] == 6
    clock.now = T0 + timedelta(hours=73) + timedelta(days=30)  # grace over for the suspended account
    ended = sweeper.sweep()
    assert (ended["account_lifetime"], ended["identifying"]) == (2, 1)
    assert store.queries.query(account_id="suspended") == []
    assert {r.kind for r in store.queries.query(account_id="active")} == {
        Kind.FIRMWARE,
        Kind.INVENTORY,
        Kind.NETWORK,
    }


def test_purge_since_removes_records_observed_or_received_after_the_stop(tmp_path: Path) -> None:
    store = EmbeddedStore.open(tmp_path / "t.db")
    fill(store, "a", 1)  # observed at T0, received now
    stop = datetime.now(UTC)
    time.sleep(0.01)
    dev = snmp_device(1, "a")
    late = record(POLICY, dev, Kind.SIGNAL, {"wifi_rssi_dbm": -50})  # observed long ago, received late
    store.sink.write([late, record(POLICY, snmp_device(2, "b"), Kind.SIGNAL, {"wifi_rssi_dbm": -60})])
    assert store.sink.purge_since("a", stop) == 1
    assert len(store.queries.query(account_id="a")) == 7 and len(store.queries.query(account_id="b")) == 1
    assert store.sink.purge_since("a", T0 - timedelta(days=1), device_id="000b82ffffff") == 0


def test_revoked_account_loses_every_class_even_with_a_long_ttl(tmp_path: Path) -> None:
    from collector.retention.policy import policy_from_dict

    policy = policy_from_dict(
        {
            "classes": {"keep": {"ttl": "90d", "end_action": "delete"}},
            "kinds": dict.fromkeys([k.value for k in Kind], "keep"),
        },
        "custom",
    )
    clock = Clock(T0)
    registry = Registry(tmp_path / "r.db", clock=clock)
    registry.import_devices([snmp_device(1, "a")], source="t")
    store = EmbeddedStore.open(tmp_path / "t.db")
    store.sink.write([record(policy, snmp_device(1, "a"), Kind.SIGNAL, {"wifi_rssi_dbm": -50})])
    registry.set_status("a", AccountStatus.REVOKED)
    assert RetentionSweeper(policy, store, registry, clock=clock).sweep() == {"keep": 1}
    assert store.queries.query(account_id="a") == []


def test_quarantine_expires_and_masks_secrets(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r.db")
    store = EmbeddedStore.open(tmp_path / "t.db")
    payload = b'{"sip":{"password":"hunter2","user":"1001"},"wifi":{"rssi":NaN}}'
    entry = QuarantineEntry.of("mqtt", "t/x/signal", payload, "NaN", T0, "000b82000001", "a")
    assert "hunter2" not in entry.head and '"password":"***"' in entry.head
    store.quarantine.quarantine(
        [entry, QuarantineEntry.of("mqtt", "t/x/signal", b"{}", "x", datetime.now(UTC))]
    )
    clock = Clock(T0 + timedelta(days=8))
    RetentionSweeper(POLICY, store, registry, clock=clock).sweep()
    kept = store.queries.quarantined()
    assert kept != [] and all(q.at > T0 for q in kept)


class RemoteSink:
    """A remote sink (InfluxDB's role) that records the erasures it is asked for."""

    name = "remote"

    def __init__(self) -> None:
        self.erased: list[tuple[str, list[str]]] = []
        self.failing = False

    def erase_account(
        self, account_id: str, classes: Sequence[RetentionClass], aggregate_text: frozenset[str]
    ) -> dict[str, int]:
        if self.failing:
            raise ConnectionError("server down")
        self.erased.append((account_id, sorted(c.name for c in classes)))
        return {}


def test_sweeper_ends_an_inactive_accounts_data_in_remote_sinks_once(tmp_path: Path) -> None:
    clock = Clock(T0)
    registry = Registry(tmp_path / "r.db", clock=clock)
    registry.import_devices([snmp_device(1, "active"), snmp_device(2, "suspended")], source="t")
    store = EmbeddedStore.open(tmp_path / "t.db")
    remote = RemoteSink()
    sweeper = RetentionSweeper(POLICY, store, registry, clock=clock, remote=[remote])  # type: ignore[list-item]
    registry.set_status("suspended", AccountStatus.INACTIVE)
    clock.now = T0 + timedelta(days=20)
    sweeper.sweep()
    assert remote.erased == []  # inside the grace period
    clock.now = T0 + timedelta(days=31)
    remote.failing = True
    sweeper.sweep()  # fails: tried again next time
    assert registry.account("suspended").status is AccountStatus.INACTIVE  # not forgotten yet
    registry.set_status("active", AccountStatus.REVOKED)
    remote.failing = False
    sweeper.sweep()
    sweeper.sweep()
    lifetime = sorted(c.name for c in POLICY.classes.values() if c.while_active)
    # Once each, after the failure; a revocation (a new status) ends every class.
    assert sorted(remote.erased) == [("active", sorted(POLICY.classes)), ("suspended", lifetime)]
    assert registry.accounts() == []  # both ended everywhere: the registry forgot them


def test_erased_identifiers_leave_the_files_wal_included(tmp_path: Path) -> None:
    """secure_delete zeroes the erased rows' pages and a checkpoint truncates the WAL: the
    raw bytes of telemetry.db and its -wal/-shm hold no identifier of the erased account."""
    store = EmbeddedStore.open(tmp_path / "telemetry.db")
    victim, other = snmp_device(7, "acct-gone"), snmp_device(8, "acct-kept")
    for dev, ip in ((victim, "198.51.100.77"), (other, "198.51.100.88")):
        store.sink.write(
            [
                record(POLICY, dev, Kind.NETWORK, {"wan_ip": ip, "wan_mac": dev.id}, minutes=m)
                for m in range(50)
            ]
        )
    head = b'{"ip": "198.51.100.77"}'
    store.quarantine.quarantine(
        [QuarantineEntry.of("mqtt", "t", head, "bad", T0, victim.id, victim.account_id)]
    )
    policy_classes = list(POLICY.classes.values())
    store.sink.erase_account(victim.account_id, policy_classes, POLICY.anonymization)
    store.quarantine.erase_account(victim.account_id, policy_classes, POLICY.anonymization)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("telemetry.db*"))
    for identifier in (victim.id, "198.51.100.77", victim.account_id):
        assert identifier.encode() not in raw, identifier
    assert other.id.encode() in raw and b"198.51.100.88" in raw  # the other account is still there
    store.close()


def test_aggregates_single_out_no_device(tmp_path: Path) -> None:
    """k = 10 devices of 10 accounts per kept bucket: a firmware with 9 devices and one with
    3 are kept only merged into their model's bucket (firmware "*"); a model with one
    device only in every model's; one revoked account alone leaves no aggregate at all;
    free text outside a field's vocabulary is "other"."""
    store = EmbeddedStore.open(tmp_path / "t.db")
    fleet = [snmp_device(n, f"acct-{n}") for n in range(1, 13)]
    lone = snmp_device(99, "acct-lone", model="HT999")
    records = []
    for n, dev in enumerate([*fleet, lone]):
        firmware = "1.0.47.4" if n < 9 else "1.0.45.1"
        mos = 1.234 if dev is lone else 4.0 + n / 100
        records += [
            record(POLICY, dev, Kind.CALL_QUALITY, {"mos": mos, "codec": "G722"}, firmware=firmware),
            record(
                POLICY, dev, Kind.REGISTRATION, {"line1_state": f"Registered to {dev.id}"}, firmware=firmware
            ),
        ]
    store.sink.write(records)
    alone = end_account(
        Registry(tmp_path / "r.db"), [store.sink], POLICY, "acct-lone", "revoked"
    )  # the lone device's account is revoked: its data alone
    assert alone["sqlite"]["operational"] == 2 and store.queries.aggregates() == []
    store.sink.expire(POLICY.classes["operational"], T0 + timedelta(days=1), POLICY.anonymization)
    aggs = store.queries.aggregates()
    assert {(a["model"], a["firmware"]) for a in aggs} == {("HT812", "*")}  # 9 and 3: merged upward
    mos = next(a for a in aggs if a["field"] == "mos")
    assert mos["count"] == 12 and 1.234 not in (mos["min"], mos["max"])
    assert {a["field"] for a in aggs} == {"mos", "codec=G722", "line1_state=other"}  # no device's text
    assert not any(dev.id in str(a) for a in aggs for dev in fleet)
    store.close()


def test_delivered_notices_about_a_revoked_account_are_not_kept(tmp_path: Path) -> None:
    from provisioning.outbox import Outbox

    registry = Registry(tmp_path / "r.db", clock=lambda: T0)
    registry.import_devices([snmp_device(1, "gone"), snmp_device(2, "stays")], source="t")
    outbox = Outbox(tmp_path / "r.db")
    sent = [outbox.enqueue("billing", "collection.stopped", {"account_id": a}, a) for a in ("gone", "stays")]
    for entry in sent:
        outbox.delivered(entry)
    queued = outbox.enqueue("billing", "collection.stopped", {"devices": ["000b82000001"]}, "gone")
    registry.set_status("gone", AccountStatus.REVOKED)
    RetentionSweeper(POLICY, EmbeddedStore.open(tmp_path / "t.db"), registry, clock=lambda: T0).sweep()
    left = {(e["account_id"], e["status"]) for e in outbox.entries()}
    assert left == {("stays", "delivered"), ("gone", "pending")}  # the pending one is still owed
    assert queued in {e["id"] for e in outbox.entries("gone")}
