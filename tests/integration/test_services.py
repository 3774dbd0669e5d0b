"""Prove the real-service helpers in tests/services.py work (mosquitto + net-snmp snmpd)."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    get_cmd,
)

from services import Mosquitto, Snmpd, SnmpdFactory, free_port

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
ENT_SW_REV_1 = "1.3.6.1.2.1.47.1.1.1.1.10.1"  # ENTITY-MIB, not implemented by net-snmp
ENT = "1.3.6.1.4.1.42397.1.2"  # enterprise subtree, nothing registered there by default
UTF8_DESCR = "HT801 ATA firmware \u00fc\u00df"  # non-ASCII: sent as 0x-hex in snmpd.conf

OVERRIDES: dict[str, tuple[str, str | int]] = {
    SYS_DESCR: ("octet_str", UTF8_DESCR),
    SYS_OBJECT_ID: ("object_id", ".1.3.6.1.4.1.42397.1.1"),
    ENT_SW_REV_1: ("octet_str", "1.0.53.2"),
    f"{ENT}.1.0": ("integer", -42),
    f"{ENT}.2.0": ("gauge", 4_000_000_000),
    f"{ENT}.3.0": ("counter", 12345),
    f"{ENT}.4.0": ("timeticks", 9999),
    f"{ENT}.5.0": ("octet_str", 'say "hi"'),
    f"{ENT}.6.0": ("octet_str", ""),
    f"{ENT}.7.0": ("null", ""),
}


class Client:
    """Minimal synchronous wrapper around a paho 2.x client."""

    def __init__(self, broker: Mosquitto, client_id: str, *, clean: bool = True) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.acked = threading.Event()
        self.received = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
        self.c.on_subscribe = self.c.on_unsubscribe = lambda *_a: self.acked.set()
        self.c.on_message = self._on_message
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.append((msg.topic, bytes(msg.payload)))
        self.received.set()

    def call(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.acked.clear()
        getattr(self.c, method)(*args, **kwargs)
        assert self.acked.wait(5), f"no ack for {method}{args}"

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_free_port_is_bindable_on_loopback() -> None:
    for port, sock_type in ((free_port("tcp"), socket.SOCK_STREAM), (free_port("udp"), socket.SOCK_DGRAM)):
        with socket.socket(socket.AF_INET, sock_type) as sock:
            sock.bind(("127.0.0.1", port))


def test_mosquitto_roundtrip_and_subscription_log(mosquitto: Mosquitto) -> None:
    sub = Client(mosquitto, "dev-sub")
    sub.call("subscribe", [("hookflash/+/telemetry", 1), ("hookflash/cmd", 0)])
    pub = Client(mosquitto, "dev pub")  # client ids with spaces are parsed too
    pub.call("subscribe", "other/#", qos=2)
    pub.c.publish("hookflash/ata1/telemetry", b"42", qos=1).wait_for_publish(5)
    assert sub.received.wait(5)
    assert sub.messages == [("hookflash/ata1/telemetry", b"42")]
    sub.call("unsubscribe", "hookflash/cmd")
    pub.call("unsubscribe", ["other/#"])
    sub.close()
    pub.close()

    assert mosquitto.subscribed_topics() == ["hookflash/+/telemetry", "hookflash/cmd", "other/#"]
    assert mosquitto.subscribed_topics("dev pub") == ["other/#"]
    assert mosquitto.unsubscribed_topics() == ["hookflash/cmd", "other/#"]
    assert ("subscribe", "dev-sub", "hookflash/cmd") in mosquitto.events()
    assert "New client connected from 127.0.0.1:" in mosquitto.log_text()


def test_mosquitto_restart_keeps_port_and_persistent_session(tmp_path: Path) -> None:
    with Mosquitto(tmp_path, persistence=True) as broker:
        port, pid = broker.port, broker.pid
        sub = Client(broker, "sleepy", clean=False)
        sub.call("subscribe", "queued/#", qos=1)
        sub.close()
        pub = Client(broker, "pub")
        pub.c.publish("queued/x", b"while offline", qos=1).wait_for_publish(5)
        pub.close()

        broker.restart()
        assert (broker.port, broker.running) == (port, True) and broker.pid != pid
        sub = Client(broker, "sleepy", clean=False)
        assert sub.received.wait(5), broker.log_text()
        assert sub.messages == [("queued/x", b"while offline")]
        sub.close()
    assert not broker.running
    assert (tmp_path / "mosquitto.db").exists()
    assert broker.log_text().count("mosquitto version 2") >= 4  # log appended across restarts


def test_mosquitto_start_failure_reports_log(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        broker = Mosquitto(tmp_path, port=squatter.getsockname()[1])
        with pytest.raises(RuntimeError, match=r"(?s)exited with code.*Address already in use"):
            broker.start(timeout=5)


def test_snmpd_overrides_via_snmpget(snmpd_factory: SnmpdFactory) -> None:
    agent = snmpd_factory(OVERRIDES)
    oids = [SYS_DESCR, SYS_OBJECT_ID, ENT_SW_REV_1, *(f"{ENT}.{i}.0" for i in range(1, 8))]
    assert agent.snmpget(*oids) == [
        '"' + "".join(f"{b:02X} " for b in UTF8_DESCR.encode()) + '"',  # hex
        ".1.3.6.1.4.1.42397.1.1",
        '"1.0.53.2"',
        "-42",
        "4000000000",
        "12345",
        "0:0:01:39.99",
        '"say \\"hi\\""',
        '""',
        "No Such Instance currently exists at this OID",
    ]


async def _pysnmp_get(port: int, *oids: str, community: str = "public") -> dict[str, Any]:
    target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=1, retries=0)
    err_ind, err_status, _idx, binds = await get_cmd(
        SnmpEngine(),
        CommunityData(community, mpModel=1),
        target,
        ContextData(),
        *(ObjectType(ObjectIdentity(o)) for o in oids),
        lookupMib=False,
    )
    assert err_ind is None and not err_status, (err_ind, err_status)
    return {str(name): value for name, value in binds}


def test_snmpd_overrides_via_pysnmp(snmpd_factory: SnmpdFactory) -> None:
    agent = snmpd_factory(OVERRIDES)
    got = asyncio.run(_pysnmp_get(agent.port, *OVERRIDES))
    assert bytes(got[SYS_DESCR]).decode() == UTF8_DESCR
    assert str(got[SYS_OBJECT_ID]) == "1.3.6.1.4.1.42397.1.1"
    assert bytes(got[ENT_SW_REV_1]) == b"1.0.53.2"
    expected = [("Integer", -42), ("Gauge32", 4_000_000_000), ("Counter32", 12345), ("TimeTicks", 9999)]
    for i, (type_name, value) in enumerate(expected, start=1):
        assert (type(got[f"{ENT}.{i}.0"]).__name__, int(got[f"{ENT}.{i}.0"])) == (type_name, value)
    assert bytes(got[f"{ENT}.5.0"]) == b'say "hi"'
    assert bytes(got[f"{ENT}.6.0"]) == b""
    assert type(got[f"{ENT}.7.0"]).__name__ == "NoSuchInstance"


def test_requests_since_counts_exactly_the_pysnmp_gets(snmpd_factory: SnmpdFactory) -> None:
    agent = snmpd_factory()
    baseline = agent.in_pkts()
    for _ in range(5):
        asyncio.run(_pysnmp_get(agent.port, "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0"))
    agent.snmpget("1.3.6.1.2.1.1.3.0")  # the helper's own requests are not counted
    mid = agent.in_pkts()
    assert agent.requests_since(baseline) == 5
    asyncio.run(_pysnmp_get(agent.port, "1.3.6.1.2.1.1.3.0"))
    assert agent.requests_since(mid) == 1
    assert agent.requests_since(baseline) == 6
    with pytest.raises(ValueError):
        agent.requests_since(10**9)


def test_several_snmpd_instances_with_own_overrides(snmpd_factory: SnmpdFactory) -> None:
    agents = [snmpd_factory({f"{ENT}.1.0": ("integer", n)}, community=f"c{n}") for n in range(4)]
    assert len({a.port for a in agents}) == 4
    for n, agent in enumerate(agents):
        assert agent.snmpget(f"{ENT}.1.0") == [str(n)]
        assert (agent.workdir / "snmpd.pid").read_text().strip() == str(agent.pid)  # no fork
        assert agent.running


def test_snmpd_rejects_unsupported_override(tmp_path: Path) -> None:
    bad_values: list[tuple[str, str | int]] = [
        ("counter64", 1),
        ("ipaddress", "10.0.0.1"),
        ("integer", "1 2"),
    ]
    for bad in bad_values:
        with pytest.raises(ValueError):
            Snmpd(tmp_path, overrides={f"{ENT}.1.0": bad})
    with pytest.raises(ValueError, match="numeric"):
        Snmpd(tmp_path, overrides={"sysDescr.0": ("octet_str", "x")})


def test_snmpd_start_failure_reports_log(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        agent = Snmpd(tmp_path, port=squatter.getsockname()[1])
        with pytest.raises(RuntimeError, match=r"(?s)exited with code 1.*specified endpoint"):
            agent.start(timeout=5)
    assert not agent.running
