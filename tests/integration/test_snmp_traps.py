"""v2c traps and informs from net-snmp's `snmptrap` and `snmpinform` into a running service:
the varbinds read with the device's profile like a poll's; an inform acknowledged only once
its records are stored; a trap with another community, from an unprovisioned host, or of a
revoked account not stored (P1, P4)."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.config import ServiceConfig, SnmpConfig, SnmpCredential
from collector.config.snmp import TrapConfig
from factories import snmp_device
from provisioning.models import AccountStatus
from provisioning.registry import Registry
from runner import RunningService, eventually

COMMUNITY = "trap-secret"
FIRMWARE = "1.3.6.1.2.1.47.1.1.1.1.10.1"  # ENTITY-MIB::entPhysicalSoftwareRev.1: firmware.version
UPTIME = "1.3.6.1.2.1.1.3.0"
TRAP_OID = "1.3.6.1.4.1.42397.1.2.100"


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[RunningService, Path]]:
    data = tmp_path / "data"
    registry = Registry(data / "registry.db")
    registry.import_devices([snmp_device(1, "acct-1", port=16161)], source="test")
    registry.close()
    cfg = ServiceConfig(
        data_dir=data,
        snmp=SnmpConfig(enabled=False),
        snmp_traps=TrapConfig(enabled=True, listen="127.0.0.1:0"),
        credentials={"default": SnmpCredential.model_validate({"community": COMMUNITY})},
    )
    with RunningService(cfg) as service:
        yield service, data


def port(running: tuple[RunningService, Path]) -> int:
    assert running[0].service is not None
    return int(running[0].service.sources["snmp_trap"].port)  # type: ignore[attr-defined]


def send(
    command: str, target: int, version: str, community: str = COMMUNITY
) -> subprocess.CompletedProcess[str]:
    """`snmptrap`/`snmpinform` of the firmware version (an OCTET STRING) with the uptime
    as the notification's sysUpTime (centiseconds)."""
    args = [command, "-v2c", "-c", community, "-r", "0", "-t", "3", f"127.0.0.1:{target}", "360000", TRAP_OID]
    return subprocess.run([*args, FIRMWARE, "s", version], capture_output=True, text=True, timeout=15)


def versions(data: Path) -> list[tuple[str, str | None, int | None]]:
    db = sqlite3.connect(data / "telemetry.db")
    try:
        rows = db.execute(
            "SELECT kind, fields->>'version', fields->>'uptime_s' FROM telemetry"
            " WHERE source = 'snmp' AND kind IN ('firmware', 'performance') ORDER BY id"
        ).fetchall()
    finally:
        db.close()
    return [(str(k), v, None if u is None else int(u)) for k, v, u in rows]


def test_a_trap_is_read_with_the_device_profile(running: tuple[RunningService, Path]) -> None:
    done = send("snmptrap", port(running), "1.0.47.4")
    assert done.returncode == 0, done.stderr
    eventually(lambda: ("firmware", "1.0.47.4", None) in versions(running[1]), what="the firmware record")
    assert ("performance", None, 3600) in versions(running[1])  # sysUpTime.0 = 360000 cs


def test_an_inform_is_acknowledged_once_stored(running: tuple[RunningService, Path]) -> None:
    done = send("snmpinform", port(running), "1.0.49.1")
    assert done.returncode == 0, done.stderr  # snmpinform waits for the Response PDU
    assert ("firmware", "1.0.49.1", None) in versions(running[1])  # already stored when acknowledged


def test_what_is_not_kept(running: tuple[RunningService, Path]) -> None:
    service, data = running
    assert service.service is not None
    listener = service.service.sources["snmp_trap"]
    assert send("snmptrap", port(running), "9.9.9.1", community="guess").returncode == 0
    eventually(lambda: listener.refused == 1, what="the wrong community refused")  # type: ignore[attr-defined]

    registry = Registry(data / "registry.db")
    registry.set_status("acct-1", AccountStatus.REVOKED, reason="test")
    eventually(lambda: not service.service.gate.account_active("acct-1"), what="revoked")  # type: ignore[union-attr]
    before = service.stats.dropped_inactive
    assert send("snmpinform", port(running), "9.9.9.2").returncode == 0  # acknowledged: dropped on purpose
    assert service.stats.dropped_inactive == before + 1

    registry.remove_device("000b82000001")
    registry.close()
    eventually(lambda: service.service.gate.device("000b82000001") is None, what="removed")  # type: ignore[union-attr]
    before = service.stats.dropped_not_provisioned
    assert send("snmpinform", port(running), "9.9.9.3").returncode == 0
    assert service.stats.dropped_not_provisioned == before + 1
    assert not [v for v in versions(data) if v[1] and v[1].startswith("9.9.9")]
