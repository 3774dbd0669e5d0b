"""v2c and v3 traps and informs from net-snmp's `snmptrap` and `snmpinform` into a running
service: the varbinds read with the device's profile like a poll's; an inform acknowledged
only once its records are stored; a trap with another community or a wrong v3 key, from an
unprovisioned host, of a revoked account, or replayed from an engine's past not stored
(P1, P4)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.config import ServiceConfig, SnmpConfig, SnmpCredential
from collector.config.snmp import TrapConfig
from factories import GS, HT812_AGENT, HT812_FIELDS, snmp_device
from provisioning.models import AccountStatus
from provisioning.registry import Registry
from runner import RunningService, eventually

COMMUNITY = "trap-secret"
FIRMWARE = "1.3.6.1.4.1.42397.1.2.3.2.0"  # GS-HT8XX-MIB::versionCore: firmware.version
UPTIME = "1.3.6.1.2.1.1.3.0"
TRAP_OID = "1.3.6.1.4.1.42397.1.2.5.1"  # GS-HT8XX-MIB::TimedTrap


V3_USERS = {
    # name: (snmptrap/snmpinform security options, the credential set)
    "ops256": (
        [
            "-u",
            "ops256",
            "-l",
            "authPriv",
            "-a",
            "SHA-256",
            "-A",
            "auth-secret-256",
            "-x",
            "AES",
            "-X",
            "priv-secret-128",
        ],
        {
            "version": "v3",
            "user": "ops256",
            "auth_protocol": "SHA-256",
            "auth_key_env": "TRAP_AUTH_256",
            "priv_protocol": "AES-128",
            "priv_key_env": "TRAP_PRIV_128",
        },
    ),
    "ops512": (
        ["-u", "ops512", "-l", "authNoPriv", "-a", "SHA-512", "-A", "auth-secret-512"],
        {"version": "v3", "user": "ops512", "auth_protocol": "SHA-512", "auth_key_env": "TRAP_AUTH_512"},
    ),
    "opsdes": (
        [
            "-u",
            "opsdes",
            "-l",
            "authPriv",
            "-a",
            "MD5",
            "-A",
            "auth-secret-md5",
            "-x",
            "DES",
            "-X",
            "priv-secret-des",
        ],
        {
            "version": "v3",
            "user": "opsdes",
            "auth_protocol": "MD5",
            "auth_key_env": "TRAP_AUTH_MD5",
            "priv_protocol": "DES",
            "priv_key_env": "TRAP_PRIV_DES",
        },
    ),
}
V3_SECRETS = {
    "TRAP_AUTH_256": "auth-secret-256",
    "TRAP_PRIV_128": "priv-secret-128",
    "TRAP_AUTH_512": "auth-secret-512",
    "TRAP_AUTH_MD5": "auth-secret-md5",
    "TRAP_PRIV_DES": "priv-secret-des",
}


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunningService, Path]]:
    for name, value in V3_SECRETS.items():
        monkeypatch.setenv(name, value)
    data = tmp_path / "data"
    registry = Registry(data / "registry.db")
    registry.import_devices([snmp_device(1, "acct-1", port=16161)], source="test")
    registry.close()
    cfg = ServiceConfig(
        data_dir=data,
        snmp=SnmpConfig(enabled=False),
        snmp_traps=TrapConfig(enabled=True, listen="127.0.0.1:0"),
        credentials={
            "default": SnmpCredential.model_validate({"community": COMMUNITY}),
            **{name: SnmpCredential.model_validate(c) for name, (_, c) in V3_USERS.items()},
        },
    )
    with RunningService(cfg) as service:
        yield service, data


def port(running: tuple[RunningService, Path]) -> int:
    assert running[0].service is not None
    return int(running[0].service.sources["snmp_trap"].port)  # type: ignore[attr-defined]


def send(
    command: str, target: int, version: str, community: str = COMMUNITY, v3: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`snmptrap`/`snmpinform` of the firmware version (an OCTET STRING) with the uptime
    as the notification's sysUpTime (centiseconds); v2c, or v3 with the options `v3`."""
    security = ["-v3", *v3] if v3 is not None else ["-v2c", "-c", community]
    args = [command, *security, "-r", "0", "-t", "3", f"127.0.0.1:{target}", "360000", TRAP_OID]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "SNMPCONFPATH": "/nonexistent"}
    return subprocess.run(
        [*args, FIRMWARE, "s", version], capture_output=True, text=True, timeout=15, env=env
    )


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


@pytest.mark.parametrize("user", sorted(V3_USERS))
def test_v3_traps_and_informs(running: tuple[RunningService, Path], user: str) -> None:
    """A v3 trap (keys localized to the engine ID it names) and a v3 inform (snmpinform first
    discovers the listener's engine ID and clock), each user at its own security level."""
    options = V3_USERS[user][0]
    engine = ["-e", "0x80001f88804a1b2c3d"]
    assert (
        done := send("snmptrap", port(running), f"3.{len(user)}.1", v3=[*options, *engine])
    ).returncode == 0
    eventually(lambda: ("firmware", f"3.{len(user)}.1", None) in versions(running[1]), what="the v3 trap")
    done = send("snmpinform", port(running), f"3.{len(user)}.2", v3=options)
    assert done.returncode == 0, done.stderr
    assert ("firmware", f"3.{len(user)}.2", None) in versions(running[1])  # stored when acknowledged
    text = "".join(p.read_bytes().decode("latin-1") for p in running[1].rglob("*") if p.is_file())
    assert not any(secret in text for secret in V3_SECRETS.values())


def test_v3_refusals(running: tuple[RunningService, Path]) -> None:
    """A wrong key, an unknown user, and a trap from an engine's earlier boot (a replay) are
    refused and counted; an inform with a wrong key is never acknowledged."""
    service, data = running
    assert service.service is not None
    usm = service.service.sources["snmp_trap"].usm  # type: ignore[attr-defined]
    good = V3_USERS["ops256"][0]
    wrong = [("auth-secret-wrong" if v == "auth-secret-256" else v) for v in good]
    assert send("snmpinform", port(running), "8.8.8.1", v3=wrong).returncode != 0  # no Response
    unknown = [("nobody" if v == "ops256" else v) for v in good]
    send("snmptrap", port(running), "8.8.8.2", v3=[*unknown, "-e", "0x80001f8880aa"])
    engine = ["-e", "0x80001f8880bb"]
    assert send("snmptrap", port(running), "8.8.8.3", v3=[*good, *engine, "-Z", "7,500"]).returncode == 0
    eventually(lambda: ("firmware", "8.8.8.3", None) in versions(data), what="the trap of boot 7")
    send("snmptrap", port(running), "8.8.8.4", v3=[*good, *engine, "-Z", "6,900"])  # boot 6: past
    send("snmptrap", port(running), "8.8.8.5", v3=[*good, *engine, "-Z", "7,100"])  # 400 s back
    eventually(lambda: usm.counters["not_in_time_windows"] == 2, what="both replays refused")
    assert usm.counters["wrong_digests"] >= 1 and usm.counters["unknown_user_names"] >= 1
    assert not [v for v in versions(data) if v[1] in ("8.8.8.1", "8.8.8.2", "8.8.8.4", "8.8.8.5")]


def test_the_ht8xx_timed_trap_yields_the_records_of_a_poll(running: tuple[RunningService, Path]) -> None:
    """TimedTrap carries the whole GS-HT8XX-MIB: read with the profile, it gives the fields a
    poll of the same objects gives (test_snmp_collection polls HT812_AGENT for HT812_FIELDS);
    the objects the profile leaves out (call-forward numbers, do-not-disturb, hook state) are
    not kept (P2)."""
    ours = {oid: v for oid, v in HT812_AGENT.items() if oid.startswith(GS + ".")}
    letters = {"octet_str": "s", "integer": "i", "gauge": "u"}
    varbinds = [x for oid, (kind, value) in ours.items() for x in (oid, letters[kind], str(value))]
    left_out = [
        f"{GS}.2.4.1.0",
        "s",
        "+15551234567",
        f"{GS}.2.3.1.0",
        "i",
        "1",
        f"{GS}.2.1.1.0",
        "s",
        "off-hook",
    ]
    args = ["snmptrap", "-v2c", "-c", COMMUNITY, f"127.0.0.1:{port(running)}", "360000", TRAP_OID]
    done = subprocess.run([*args, *varbinds, *left_out], capture_output=True, text=True, timeout=15)
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(running[1] / "telemetry.db")

    def stored() -> dict[str, dict[str, object]]:
        rows = db.execute(
            "SELECT kind, fields FROM telemetry WHERE kind IN ('firmware', 'registration', 'config')"
        )
        return {str(k): json.loads(f) for k, f in rows}

    eventually(lambda: len(stored()) == 3, what="the trap's records")
    assert stored() == {k: HT812_FIELDS[k] for k in ("firmware", "registration", "config")}
    db.close()
    text = "".join(p.read_bytes().decode("latin-1") for p in running[1].rglob("*") if p.is_file())
    assert "+15551234567" not in text and "off-hook" not in text


NAT_PROFILE = """extends = ["grandstream-ht8xx"]
vendor = "Grandstream"
trap_identity = { oid = "1.3.6.1.2.1.2.2.1.6.2", mib = "IF-MIB::ifPhysAddress", syntax = "PhysAddress" }
"""


def test_a_profile_s_identity_varbind_names_the_device_behind_a_shared_address(tmp_path: Path) -> None:
    """Two ATAs behind one address: the host alone names neither (dropped, P1); the
    profile's `trap_identity` varbind (the WAN MAC) names the one that sent it."""
    data = tmp_path / "data"
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "nat-ata.toml").write_text(NAT_PROFILE)
    devices = [
        snmp_device(n, "acct-1", port=16160 + n).model_copy(update={"profile": "nat-ata"}) for n in (1, 2)
    ]
    registry = Registry(data / "registry.db")
    registry.import_devices(devices, source="test")
    registry.close()
    cfg = ServiceConfig(
        data_dir=data,
        profile_dirs=[tmp_path / "profiles"],
        snmp=SnmpConfig(enabled=False),
        snmp_traps=TrapConfig(enabled=True, listen="127.0.0.1:0"),
        credentials={"default": SnmpCredential.model_validate({"community": COMMUNITY})},
    )
    mac = "1.3.6.1.2.1.2.2.1.6.2"
    with RunningService(cfg) as service:
        target = (service, data)
        base = ["snmptrap", "-v2c", "-c", COMMUNITY, f"127.0.0.1:{port(target)}", "360000", TRAP_OID]

        def trap(*varbinds: str) -> None:
            done = subprocess.run([*base, *varbinds], capture_output=True, text=True, timeout=15)
            assert done.returncode == 0, done.stderr

        before = service.stats.dropped_not_provisioned
        trap(FIRMWARE, "s", "5.0.0.1")  # no identity: the host has two devices
        trap(mac, "x", "00 0b 82 99 99 99", FIRMWARE, "s", "5.0.0.2")  # a MAC nobody provisioned
        trap(mac, "x", "00 0b 82 00 00 02", FIRMWARE, "s", "5.0.0.3")
        eventually(lambda: ("firmware", "5.0.0.3", None) in versions(data), what="device 2's trap")
        eventually(lambda: service.stats.dropped_not_provisioned == before + 2, what="the other two dropped")
    db = sqlite3.connect(data / "telemetry.db")
    rows = db.execute(
        "SELECT device_id, fields->>'version' FROM telemetry WHERE kind = 'firmware'"
    ).fetchall()
    db.close()
    assert rows == [("000b82000002", "5.0.0.3")]
