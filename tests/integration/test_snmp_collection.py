"""SNMP collection against real net-snmp agents: profile fields, P1 and the gate (P4).

Requests are counted at the agent (snmpInPkts), not inferred from the store.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from collector.config import ServiceConfig, SnmpConfig, SnmpCredential
from collector.profiles import load_profiles
from collector.sinks.sqlite import TelemetryQueries
from factories import HT812_AGENT, HT812_FIELDS, snmp_device
from provisioning.registry import Registry
from runner import RunningService, eventually, hookflash
from services import Snmpd, SnmpdFactory

EXPECTED = HT812_FIELDS


def config(tmp_path: Path, community: str = "public", interval: float = 0.3) -> ServiceConfig:
    return ServiceConfig(
        data_dir=tmp_path / "data",
        snmp=SnmpConfig(interval_s=interval, timeout_s=0.5, retries=0),
        credentials={"default": SnmpCredential.model_validate({"community": community})},
    )


def provision(cfg: ServiceConfig, *devices: object) -> Registry:
    registry = Registry(cfg.data_dir / "registry.db")
    registry.import_devices(devices, source="test")  # type: ignore[arg-type]
    return registry


def latest_by_kind(cfg: ServiceConfig, device_id: str) -> dict[str, dict[str, object]]:
    """Per kind, the newest value of each field (network has scalar and table-row records)."""
    store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
    merged: dict[str, dict[str, object]] = {}
    for record in store.query(device_id=device_id):
        merged.setdefault(record.kind.value, {}).update(record.fields)
    return merged


@pytest.mark.parametrize("engine", ["fast", "pysnmp"])
def test_every_declared_field_of_the_ht8xx_profile_is_collected(
    tmp_path: Path, snmpd_factory: SnmpdFactory, engine: str
) -> None:
    agent = snmpd_factory(HT812_AGENT, community="s3cret-community")
    cfg = config(tmp_path, community="s3cret-community")
    cfg = cfg.model_copy(update={"snmp": cfg.snmp.model_copy(update={"engine": engine})})
    # No profile in the registry row: it is chosen by vendor/model, then sysObjectID.
    device = snmp_device(1, "acct-a", agent.port).model_copy(update={"vendor": "Unknown", "model": "x"})
    provision(cfg, device)
    with RunningService(cfg):
        eventually(
            lambda: {"config", "network"} <= set(latest_by_kind(cfg, device.id)),
            what="a full poll stored",
        )
    got = latest_by_kind(cfg, device.id)
    for kind, fields in EXPECTED.items():
        assert got[kind] == fields, kind
        for name, value in fields.items():
            assert type(got[kind][name]) is type(value), (kind, name)
    uptime = got["performance"]["uptime_s"]
    assert isinstance(uptime, int) and uptime >= 0
    # IF-MIB comes from the agent host itself: cross-check with snmpget on the same agent.
    raw_status = agent.snmpget("1.3.6.1.2.1.2.2.1.8.2")[0]
    if "No Such" not in raw_status:
        assert got["network"]["wan_oper_status"] in {
            "up",
            "down",
            "testing",
            "unknown",
            "dormant",
            "notPresent",
            "lowerLayerDown",
        }
    # Diagnostic fields are only requested inside a troubleshooting window (P8; see test_debug_window).
    declared = {
        (s.kind.value, s.field)
        for s in load_profiles().get("grandstream-ht8xx").snmp
        if s.kind.value != "diagnostic"
    }
    seen = {(k, f) for k, fields in got.items() for f in fields}
    absent = {("registration", "line3_state"), ("registration", "line4_state")}  # an HT812 has 2 ports
    assert declared - seen <= {("network", "wan_mac"), ("network", "wan_oper_status"), *absent}
    store_text = TelemetryQueries.open(cfg.data_dir / "telemetry.db").text_dump()
    assert "s3cret-community" not in store_text  # P7
    assert "s3cret-community" not in (cfg.data_dir / "registry.db").read_bytes().decode("latin-1")


def test_status_change_stops_requests_at_the_agent_within_a_second(
    tmp_path: Path, snmpd_factory: SnmpdFactory
) -> None:
    agent_a, agent_b, stranger = (snmpd_factory(HT812_AGENT) for _ in range(3))
    cfg = config(tmp_path)
    dev_a, dev_b = snmp_device(1, "acct-a", agent_a.port), snmp_device(2, "acct-b", agent_b.port)
    provision(cfg, dev_a, dev_b)  # `stranger` is not provisioned (P1)
    stranger_base = stranger.in_pkts()
    with RunningService(cfg) as running:
        base_a = agent_a.in_pkts()
        eventually(lambda: agent_a.requests_since(base_a) >= 3, what="polls reaching agent A")

        result = hookflash("accounts", "set-status", "acct-a", "inactive", "--data-dir", cfg.data_dir)
        assert result.returncode == 0, result.stderr
        acknowledged = time.time()
        time.sleep(1.0)  # the promise: effective within one second, no restart
        quiet_from = agent_a.in_pkts()
        b_from = agent_b.in_pkts()
        time.sleep(2.0)  # about six poll intervals
        assert agent_a.requests_since(quiet_from) == 0
        assert agent_b.requests_since(b_from) >= 4  # the other account is unaffected
        assert running.stats.polls_skipped_inactive > 0

        store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
        after = [r for r in store.query(account_id="acct-a") if r.observed_at.timestamp() >= acknowledged]
        assert after == []
        assert store.query(account_id="acct-a"), "inactive: data already stored is kept"

        assert (
            hookflash("accounts", "set-status", "acct-a", "active", "--data-dir", cfg.data_dir).returncode
            == 0
        )
        resumed = agent_a.in_pkts()
        eventually(lambda: agent_a.requests_since(resumed) >= 2, what="polls resuming after reactivation")
    assert stranger.requests_since(stranger_base) == 0


def test_revoked_account_gets_no_requests_and_its_data_is_ended(
    tmp_path: Path, snmpd_factory: SnmpdFactory
) -> None:
    agent_a, agent_b = snmpd_factory(HT812_AGENT), snmpd_factory(HT812_AGENT)
    cfg = config(tmp_path)
    dev_a, dev_b = snmp_device(1, "acct-a", agent_a.port), snmp_device(2, "acct-b", agent_b.port)
    provision(cfg, dev_a, dev_b)
    with RunningService(cfg):
        store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
        eventually(lambda: len(store.query(account_id="acct-a")) >= 10, what="acct-a records")
        result = hookflash("accounts", "set-status", "acct-a", "revoked", "--data-dir", cfg.data_dir)
        assert result.returncode == 0, result.stderr
        time.sleep(1.0)
        quiet_from = agent_a.in_pkts()
        time.sleep(1.5)
        assert agent_a.requests_since(quiet_from) == 0
    store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
    assert store.query(account_id="acct-a") == []
    dump = store.text_dump()
    assert "acct-a" not in dump and dev_a.id not in dump and "GS2234AB" in dump  # B's serial stays
    out = hookflash("audit", "--account", "acct-a", "--format", "json", "--data-dir", cfg.data_dir).stdout
    audit = [json.loads(line) for line in out.splitlines()]
    actions = [a["action"] for a in audit]
    assert actions[-3:] == ["account.status", "account.data_ended", "receipt.completed"]
    assert all(datetime.fromisoformat(a["at"]) for a in audit)


def test_agent_that_never_answers_delays_no_other_device(tmp_path: Path, snmpd_factory: SnmpdFactory) -> None:
    live: Snmpd = snmpd_factory(HT812_AGENT)
    dead_port = 9  # discard: nothing answers SNMP there
    cfg = config(tmp_path)
    provision(cfg, snmp_device(1, "acct-a", live.port), snmp_device(2, "acct-a", dead_port))
    with RunningService(cfg) as running:
        eventually(lambda: running.stats.polls_failed >= 1, what="the dead device's poll timing out")
        base = live.in_pkts()
        failed = running.stats.polls_failed
        # While the dead device keeps timing out (0.5 s each), the live one is polled every 0.3 s.
        eventually(lambda: running.stats.polls_failed >= failed + 2, what="more timeouts")
        assert live.requests_since(base) >= 4


def test_no_retransmission_reaches_a_silent_agent_after_the_stop(
    tmp_path: Path, snmpd_factory: SnmpdFactory
) -> None:
    agent = snmpd_factory(HT812_AGENT, community="not-what-hookflash-sends")  # never answers hookflash
    cfg = config(tmp_path).model_copy(update={"snmp": SnmpConfig(interval_s=0.3, timeout_s=0.4, retries=5)})
    provision(cfg, snmp_device(1, "acct-a", agent.port))
    with RunningService(cfg):
        base = agent.in_pkts()
        eventually(lambda: agent.requests_since(base) >= 3, what="attempts reaching the agent")
        result = hookflash("accounts", "suspend", "acct-a", "--data-dir", cfg.data_dir)
        assert result.returncode == 0, result.stderr
        quiet_from = agent.in_pkts()
        time.sleep(3.0)  # longer than timeout x (retries + 1)
        assert agent.requests_since(quiet_from) == 0


def test_events_from_two_processes_are_all_applied_in_order(
    tmp_path: Path, snmpd_factory: SnmpdFactory
) -> None:
    agent = snmpd_factory(HT812_AGENT)
    cfg = config(tmp_path)
    provision(cfg, snmp_device(1, "acct-a", agent.port), snmp_device(2, "acct-b", agent.port))
    with RunningService(cfg) as running:
        service = running.service
        assert service is not None
        eventually(lambda: len(running.stats.devices_seen) == 2, what="both devices polled")
        from provisioning.models import AccountStatus

        Registry(cfg.data_dir / "registry.db").set_status(
            "acct-a", AccountStatus.INACTIVE
        )  # "another process"
        service.registry.set_status("acct-b", AccountStatus.INACTIVE)  # this process, right after
        eventually(
            lambda: not service.gate.account_active("acct-a") and not service.gate.account_active("acct-b"),
            timeout=1.5,
            what="both stops applied",
        )


@pytest.mark.parametrize("engine", ["fast", "pysnmp"])
def test_interface_table_is_walked_like_snmpwalk_sees_it(
    tmp_path: Path, snmpd_factory: SnmpdFactory, engine: str
) -> None:
    agent = snmpd_factory(HT812_AGENT)
    cfg = config(tmp_path)
    cfg = cfg.model_copy(update={"snmp": cfg.snmp.model_copy(update={"engine": engine})})
    device = snmp_device(1, "acct-a", agent.port).model_copy(update={"profile": "generic"})
    provision(cfg, device)
    store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")

    def rows() -> dict[int, dict[str, object]]:
        return {
            int(r.fields["if_index"]): r.fields for r in store.query(kind="network") if "if_index" in r.fields
        }

    walk = subprocess.run(
        ["snmpwalk", "-v2c", "-c", "public", "-On", "-Oqv", f"127.0.0.1:{agent.port}", "1.3.6.1.2.1.2.2.1.2"],
        capture_output=True,
        text=True,
        check=True,
        env=agent.env,
    ).stdout.split()
    assert walk, "the agent's own ifTable is empty"
    with RunningService(cfg):
        eventually(lambda: len(rows()) == min(len(walk), 8), what="one record per interface")
    got = rows()
    assert sorted(str(r["if_descr"]) for r in got.values()) == sorted(w.strip('"') for w in walk)[:8]
    assert all(
        r["if_oper_status"] in {"up", "down", "unknown", "dormant", "notPresent", "lowerLayerDown", "testing"}
        for r in got.values()
    )
    assert all(isinstance(r["if_type"], int) for r in got.values())
