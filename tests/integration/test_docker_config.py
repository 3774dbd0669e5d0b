"""docker/ as a secure starting point, checked as far as this machine allows: the compose
file publishes nothing but the broker's TLS port and hookflash's API on 127.0.0.1, hands
hookflash no InfluxDB admin token; the shipped mosquitto.conf and mosquitto.acl, run by a
real mosquitto with test certificates and logins, refuse anonymous clients, keep each
device to its own topic root, and speak TLS on the device port."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from certs import make_tls_files
from runner import eventually
from services import Mosquitto

DOCKER = Path(__file__).parents[2] / "docker"
LOGINS = {
    "hookflash": "hf-pass-0123456789",
    "805ec0000001": "dev1-pass-0123",
    "805ec0000002": "dev2-pass-0123",
}


def test_compose_publishes_only_what_must_be_and_no_admin_token_reaches_hookflash() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    published = {name: [str(p) for p in s.get("ports", [])] for name, s in services.items()}
    assert published["mosquitto"] == ["8883:8883"]  # TLS, logins; the plain port stays inside
    assert published["postgres"] == []  # the registry's database: the compose network only
    assert "HOOKFLASH_DATABASE_PASSWORD" in services["hookflash"]["environment"]
    assert all(p.startswith("127.0.0.1:") for name in ("influxdb", "hookflash") for p in published[name])
    mounts = " ".join(services["mosquitto"]["volumes"])
    assert all(f in mounts for f in ("mosquitto.acl:/mosquitto/config/acl", "passwd", "certs"))
    env = services["hookflash"]["environment"]
    assert not any("ADMIN" in value for key, value in env.items() if "INFLUX" in key)
    assert "INFLUXDB_ADMIN_TOKEN" in services["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]


def connected(client: mqtt.Client, host: str, port: int) -> bool:
    try:
        client.connect(host, port)
    except (OSError, ssl.SSLError):
        return False
    client.loop_start()
    try:
        eventually(client.is_connected, timeout=3, what="connected")
    except AssertionError:
        return False
    return True


def login(name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"c-{name}-{time.monotonic_ns()}")
    client.username_pw_set(name, LOGINS[name])
    return client


def test_the_shipped_broker_keeps_each_device_to_its_own_topics(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    with Mosquitto(
        tmp_path / "broker", config_file=DOCKER / "mosquitto.conf", tls=tls, users=LOGINS
    ) as broker:
        anonymous = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="anonymous")
        assert not connected(anonymous, broker.host, broker.port)
        anonymous.loop_stop()
        got: dict[str, list[str]] = {"hookflash": [], "805ec0000001": [], "805ec0000002": []}
        clients = {}
        for name in got:
            client = login(name)
            client.on_message = lambda _c, _u, m, name=name: got[name].append(m.topic)  # type: ignore[misc]
            assert connected(client, broker.host, broker.port), name
            clients[name] = client
        clients["hookflash"].subscribe("hookflash/#", qos=1)
        for name in ("805ec0000001", "805ec0000002"):
            clients[name].subscribe("hookflash/#", qos=1)  # asks for everything; the ACL says no
        time.sleep(0.3)
        one, hf = clients["805ec0000001"], clients["hookflash"]
        one.publish("hookflash/805ec0000001/signal", b"{}", qos=1).wait_for_publish(5)
        one.publish("hookflash/805ec0000002/signal", b"{}", qos=1).wait_for_publish(5)  # as another
        hf.publish("hookflash/805ec0000002/cmd/diagnostic", b"{}", qos=1).wait_for_publish(5)
        eventually(lambda: "hookflash/805ec0000002/cmd/diagnostic" in got["805ec0000002"], what="the command")
        time.sleep(0.5)
        assert "hookflash/805ec0000001/signal" in got["hookflash"]
        assert "hookflash/805ec0000002/signal" not in got["hookflash"]  # the impersonation never arrived
        assert got["805ec0000001"] == []  # reads only its own commands: not the other's, no telemetry
        assert got["805ec0000002"] == ["hookflash/805ec0000002/cmd/diagnostic"]
        for client in clients.values():
            client.disconnect()
            client.loop_stop()
        assert broker.tls_port is not None
        plain = login("805ec0000002")
        assert not connected(plain, broker.host, broker.tls_port)  # the device port needs TLS
        plain.loop_stop()
        secure = login("805ec0000002")
        secure.tls_set(ca_certs=str(tls.ca_cert))
        assert connected(secure, broker.host, broker.tls_port)
        secure.disconnect()
        secure.loop_stop()


def test_the_shipped_files_hold_no_credentials() -> None:
    assert "allow_anonymous true" not in (DOCKER / "mosquitto.conf").read_text()
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    for service in compose["services"].values():
        for key, value in service.get("environment", {}).items():
            secretish = any(w in key for w in ("TOKEN", "PASSWORD", "COMMUNITY"))
            assert not secretish or str(value).startswith("${"), key  # from the operator's environment
