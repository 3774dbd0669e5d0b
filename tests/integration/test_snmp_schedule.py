"""Tiered schedules, backoff for unreachable devices, reachability and change records,
observed against real snmpd agents (their own counters say what was asked for)."""

from __future__ import annotations

import time
from pathlib import Path

from collector.config import ServiceConfig, SnmpConfig, SnmpCredential
from collector.sinks.sqlite import TelemetryQueries
from factories import HT812_AGENT, snmp_device
from provisioning.registry import Registry
from runner import RunningService, eventually
from services import SnmpdFactory

VERSION_CORE = "1.3.6.1.4.1.42397.1.2.3.2.0"  # GS-HT8XX-MIB::versionCore: firmware.version
# The HT812 of the other tests, on an older firmware.
AGENT = {**HT812_AGENT, VERSION_CORE: ("octet_str", "1.0.43.11")}


def config(tmp_path: Path, **snmp: object) -> ServiceConfig:
    return ServiceConfig(
        data_dir=tmp_path / "data",
        snmp=SnmpConfig.model_validate({"timeout_s": 0.3, "retries": 0, **snmp}),
        credentials={"default": SnmpCredential.model_validate({"community": "public"})},
    )


def provision(cfg: ServiceConfig, port: int) -> str:
    device = snmp_device(1, "acct-a", port).model_copy(update={"profile": "grandstream-ht8xx"})
    Registry(cfg.data_dir / "registry.db").import_devices([device], source="test")
    return device.id


def test_each_kind_is_polled_on_its_own_interval(tmp_path: Path, snmpd_factory: SnmpdFactory) -> None:
    agent = snmpd_factory(AGENT)
    cfg = config(
        tmp_path,
        interval_s=0.25,
        intervals={
            "inventory": 3600,
            "firmware": 3600,
            "network": 3600,
            "config": 3600,
            "performance": 0.25,
            "registration": 0.25,
            "call_quality": 0.25,
        },
    )
    device_id = provision(cfg, agent.port)
    with RunningService(cfg):
        store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
        eventually(lambda: len(store.query(kind="performance")) >= 2, what="second poll")
        # After the first poll only the fast tier is asked for: sysUpTime and the four
        # regStatusN OIDs (an HT812 answers the first two).
        assert agent.vars_per_request(1.5) == 5
        time.sleep(0.3)
    counts = {
        k: len(TelemetryQueries.open(cfg.data_dir / "telemetry.db").query(device_id=device_id, kind=k))
        for k in ("inventory", "firmware", "performance", "registration")
    }
    assert counts["inventory"] == 1 and counts["firmware"] == 1
    assert counts["performance"] >= 6 and counts["registration"] == counts["performance"]


def test_unreachable_device_backs_off_reports_down_and_up_and_changes(
    tmp_path: Path, snmpd_factory: SnmpdFactory
) -> None:
    agent = snmpd_factory(AGENT)
    cfg = config(tmp_path, interval_s=0.2, down_after=2, max_backoff_s=1.0)
    device_id = provision(cfg, agent.port)
    with RunningService(cfg) as running:
        store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
        eventually(lambda: len(store.query(kind="performance")) >= 3, what="polls while up")
        time.sleep(4.0)  # an uptime of several seconds, so the restarted agent's is lower
        agent.stop()
        eventually(
            lambda: any(r.fields["state"] == "down" for r in store.query(kind="reachability")),
            what="down record",
        )
        sent = running.stats.polls_sent
        time.sleep(3.0)  # 15 polls at 0.2 s without backoff; with backoff capped at 1 s, about 3
        assert running.stats.polls_sent - sent <= 5
        upgraded = {**AGENT, VERSION_CORE: ("octet_str", "1.0.47.4")}
        snmpd_factory(upgraded, port=agent.port)  # the device comes back with new firmware
        eventually(
            lambda: [r.fields["state"] for r in store.query(kind="reachability")] == ["up", "down", "up"],
            what="up again",
        )
        eventually(lambda: len(store.query(kind="change")) >= 1, what="change records")
    reach = [r.fields for r in store.query(device_id=device_id, kind="reachability")]
    assert reach[1]["reason"] and reach[1]["consecutive_failures"] == 2
    assert isinstance(reach[2]["down_for_s"], float) and reach[2]["down_for_s"] >= 3.0
    changes = [r.fields for r in TelemetryQueries.open(cfg.data_dir / "telemetry.db").query(kind="change")]
    assert {
        "event": "firmware_changed",
        "version": "1.0.47.4",
        "previous_version": "1.0.43.11",
        "direction": "upgrade",
    } in changes
    assert any(c["event"] == "reboot" for c in changes)  # the new agent's sysUpTime restarted


def test_a_firmware_change_across_a_restart_of_hookflash_is_noticed(
    tmp_path: Path, snmpd_factory: SnmpdFactory
) -> None:
    agent = snmpd_factory(AGENT)
    cfg = config(tmp_path, interval_s=0.2)
    provision(cfg, agent.port)
    with RunningService(cfg):
        store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
        eventually(lambda: len(store.query(kind="firmware")) >= 1, what="firmware seen")
    agent.stop()
    downgraded = {**AGENT, VERSION_CORE: ("octet_str", "1.0.41.2")}
    snmpd_factory(downgraded, port=agent.port)
    with RunningService(cfg):
        eventually(lambda: len(store.query(kind="change")) >= 1, what="change after restart")
    change = store.query(kind="change")[0]
    assert change.fields["event"] == "firmware_changed" and change.fields["direction"] == "downgrade"
    assert change.retention_class == "account_lifetime" and change.firmware == "1.0.41.2"
