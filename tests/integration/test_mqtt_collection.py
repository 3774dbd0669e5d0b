"""MQTT collection through a real mosquitto: P1, quarantine, and revocation seen at the broker."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import MqttConfig, ServiceConfig, SnmpConfig
from collector.sinks.sqlite import TelemetryQueries
from factories import mqtt_device
from provisioning.registry import Registry
from runner import RunningService, eventually, hookflash
from services import Mosquitto

CLIENT_ID = "hookflash-under-test"


@pytest.fixture
def publisher(mosquitto: Mosquitto):  # type: ignore[no-untyped-def]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def setup(tmp_path: Path, mosquitto: Mosquitto, subscribe: str = "per-device") -> ServiceConfig:
    cfg = ServiceConfig(
        data_dir=tmp_path / "data",
        snmp=SnmpConfig(enabled=False),
        mqtt=MqttConfig(enabled=True, port=mosquitto.port, client_id=CLIENT_ID, subscribe=subscribe),  # type: ignore[arg-type]
    )
    Registry(cfg.data_dir / "registry.db").import_devices(
        [mqtt_device(1, "acct-a"), mqtt_device(2, "acct-b")], source="test"
    )
    return cfg


def publish(client: mqtt.Client, device: int, kind: str, payload: bytes | dict[str, object]) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    client.publish(f"hookflash/805ec0{device:06x}/{kind}", body, qos=1).wait_for_publish(5)


def signal(rssi: int) -> dict[str, object]:
    return {"ts": time.time(), "wifi": {"rssi": rssi, "channel": 36}}


def test_valid_stored_malformed_quarantined_unknown_never_stored(
    tmp_path: Path, mosquitto: Mosquitto, publisher: mqtt.Client
) -> None:
    cfg = setup(tmp_path, mosquitto)
    with RunningService(cfg) as running:
        eventually(lambda: len(mosquitto.subscribed_topics(CLIENT_ID)) == 2, what="subscriptions")
        assert sorted(mosquitto.subscribed_topics(CLIENT_ID)) == [
            "hookflash/805ec0000001/+",
            "hookflash/805ec0000002/+",
        ]
        bad = [
            b"\xff\xfe\xfd",
            b'{"wifi": {"rssi": NaN}}',
            b'{"wifi": {"rssi": "-50"x',
            b"[]",
            b'{"wifi": {"rssi": {"deep": 1}}}',
            b'{"ts": 99999999999, "wifi": {"rssi": -50}}',
        ]
        for i in range(60):
            publish(publisher, 1 + i % 2, "signal", signal(-40 - i))
            if i % 10 == 0:
                publish(publisher, 1, "signal", bad[i // 10])
        publish(publisher, 99, "signal", signal(-1))  # not provisioned (P1)
        store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
        eventually(
            lambda: len(store.query(kind="signal")) == 60 and running.stats.quarantined == 6,
            what="60 records and 6 quarantined",
        )
        rssi = sorted(int(r.fields["wifi_rssi_dbm"]) for r in store.query(kind="signal"))
        assert rssi == sorted(-40 - i for i in range(60))  # every valid message, exact values
        reasons = [q.reason for q in store.quarantined()]
        assert any("invalid UTF-8" in r for r in reasons) and any("NaN" in r for r in reasons)
        assert all(q.topic == "hookflash/805ec0000001/signal" for q in store.quarantined())
        assert "805ec0000063" not in store.text_dump()
        listed = hookflash("quarantine", "--format", "json", "--data-dir", cfg.data_dir)
        assert len(listed.stdout.splitlines()) == 6


def test_wildcard_mode_drops_unprovisioned_devices(
    tmp_path: Path, mosquitto: Mosquitto, publisher: mqtt.Client
) -> None:
    cfg = setup(tmp_path, mosquitto, subscribe="wildcard")
    with RunningService(cfg) as running:
        eventually(lambda: mosquitto.subscribed_topics(CLIENT_ID) == ["hookflash/+/+"], what="subscription")
        publish(publisher, 99, "signal", signal(-1))
        publish(publisher, 2, "signal", signal(-2))
        store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
        eventually(lambda: len(store.query()) == 1, what="one record")
        eventually(lambda: running.stats.dropped_not_provisioned == 1, what="unknown device dropped")
        assert store.query()[0].device_id == "805ec0000002"
        assert store.quarantined() == []  # data of unknown devices is not even quarantined


def test_revocation_unsubscribes_at_the_broker_and_stores_nothing_more(
    tmp_path: Path, mosquitto: Mosquitto, publisher: mqtt.Client
) -> None:
    cfg = setup(tmp_path, mosquitto)
    with RunningService(cfg):
        eventually(lambda: len(mosquitto.subscribed_topics(CLIENT_ID)) == 2, what="subscriptions")
        store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
        for i in range(5):
            publish(publisher, 1, "signal", signal(-50 - i))
            publish(publisher, 2, "signal", signal(-60 - i))
        eventually(lambda: len(store.query()) == 10, what="10 records")

        for status in ("inactive", "revoked"):
            result = hookflash("accounts", "set-status", "acct-a", status, "--data-dir", cfg.data_dir)
            assert result.returncode == 0, result.stderr
        eventually(
            lambda: mosquitto.unsubscribed_topics(CLIENT_ID) == ["hookflash/805ec0000001/+"],
            timeout=1.0,
            what="unsubscribe seen by the broker within a second",
        )
        for i in range(5):
            publish(publisher, 1, "signal", signal(-70 - i))
            publish(publisher, 2, "signal", signal(-80 - i))
        eventually(lambda: len(store.query(account_id="acct-b")) == 10, what="acct-b keeps flowing")
        time.sleep(0.5)
        assert store.query(account_id="acct-a") == []
    dump = TelemetryQueries.open(cfg.data_dir / "telemetry.db").text_dump()
    assert "805ec0000001" not in dump and "acct-a" not in dump


def test_device_id_from_a_topic_level(tmp_path: Path, mosquitto: Mosquitto, publisher: mqtt.Client) -> None:
    cfg = setup(tmp_path, mosquitto, subscribe="wildcard")
    cfg = cfg.model_copy(
        update={
            "mqtt": cfg.mqtt.model_copy(
                update={
                    "wildcard_filter": "sites/+/phones/+/+",
                    "device_id_from": "topic-level",
                    "device_id_level": 3,
                }
            )
        }
    )
    with RunningService(cfg) as running:
        eventually(
            lambda: mosquitto.subscribed_topics(CLIENT_ID) == ["sites/+/phones/+/+"], what="subscription"
        )
        for topic in (
            "sites/paris/phones/80:5E:C0:00:00:01/signal",  # MAC in any notation
            "sites/oslo/phones/805ec0000002/signal",
            "sites/oslo/phones/805ec00000ff/signal",  # not provisioned (P1)
            "sites/oslo/phones/not-a-mac/signal",
        ):
            publisher.publish(topic, json.dumps(signal(-50)), qos=1).wait_for_publish(5)
        store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
        eventually(lambda: len(store.query()) == 2, what="two records")
        eventually(lambda: running.stats.dropped_not_provisioned == 2, what="two dropped")
    assert sorted(r.device_id for r in store.query()) == ["805ec0000001", "805ec0000002"]


ACL = """user hookflash
topic read fleet/#
pattern write fleet/%u/telemetry
"""


def test_device_id_and_kind_from_the_payload_only_as_the_broker_bound_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Payload mode: devices share one topic scheme, the broker's ACL lets each write only
    under its own login (its MAC), and hookflash refuses a payload that names another
    device than the one the topic level (bound by the ACL) says: no device writes as another."""
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    passwords = broker_dir / "passwd"
    logins = {
        "hookflash": "hf-broker-pass-0123",
        "805ec0000001": "dev1-pass-0123",
        "805ec0000002": "dev2-pass-0123",
    }
    passwords.write_text("")
    for user, password in logins.items():
        subprocess.run(
            ["mosquitto_passwd", "-b", str(passwords), user, password], check=True, capture_output=True
        )
    (broker_dir / "acl").write_text(ACL)
    extra = ["allow_anonymous false", f"password_file {passwords}", f"acl_file {broker_dir / 'acl'}"]
    with Mosquitto(broker_dir / "run", extra=extra) as broker:
        cfg = setup(tmp_path, broker, subscribe="wildcard")
        monkeypatch.setenv("TEST_HF_BROKER_PASS", logins["hookflash"])
        mqtt_cfg = cfg.mqtt.model_copy(
            update={
                "wildcard_filter": "fleet/+/telemetry",
                "device_id_from": "payload",
                "payload_identity_level": 1,
                "username": "hookflash",
                "password_env": "TEST_HF_BROKER_PASS",
            }
        )
        cfg = cfg.model_copy(update={"mqtt": mqtt_cfg})

        def device(mac: str) -> mqtt.Client:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{mac}")
            client.username_pw_set(mac, logins[mac])
            client.connect(broker.host, broker.port)
            client.loop_start()
            return client

        with RunningService(cfg) as running:
            eventually(
                lambda: broker.subscribed_topics(CLIENT_ID) == ["fleet/+/telemetry"], what="subscribed"
            )
            one, two = device("805ec0000001"), device("805ec0000002")
            sends = [
                (one, "805ec0000001", {"device_id": "805ec0000001", "kind": "signal", **signal(-51)}),
                (
                    two,
                    "805ec0000002",
                    {"device_id": "805ec0000002", "kind": "call_quality", "call": {"mos": 4.2}},
                ),
                (
                    two,
                    "805ec0000002",
                    {"device_id": "805ec0000002", "kind": "signal", "wifi": {"rssi": "loud"}},
                ),
                (
                    one,
                    "805ec0000002",
                    {"device_id": "805ec0000002", "kind": "signal", **signal(-2)},
                ),  # ACL: dropped
                (
                    one,
                    "805ec0000001",
                    {"device_id": "805ec0000002", "kind": "signal", **signal(-3)},
                ),  # as another
            ]
            for client, level, body in sends:
                client.publish(f"fleet/{level}/telemetry", json.dumps(body), qos=1).wait_for_publish(5)
            store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
            eventually(lambda: len(store.query()) == 2 and running.stats.quarantined == 1, what="settled")
            eventually(lambda: running.stats.dropped_not_provisioned == 1, what="the impersonation refused")
            for client in (one, two):
                client.disconnect()
                client.loop_stop()
            anonymous = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="nobody")
            with pytest.raises(Exception):  # noqa: B017 - paho raises per reason code
                anonymous.connect(broker.host, broker.port)
                anonymous.loop_start()
                eventually(anonymous.is_connected, timeout=2, what="an anonymous connection")
            anonymous.loop_stop()
    assert {(r.device_id, r.kind.value, r.fields.get("wifi_rssi_dbm")) for r in store.query()} == {
        ("805ec0000001", "signal", -51),
        ("805ec0000002", "call_quality", None),
    }


def test_payload_mode_without_a_broker_bound_identity_is_refused() -> None:
    with pytest.raises(ValueError, match="lets any device write records as any other"):
        MqttConfig(subscribe="wildcard", device_id_from="payload")


def test_topic_mapping_other_than_root_needs_a_wildcard_subscription() -> None:
    with pytest.raises(ValueError, match="needs subscribe"):
        MqttConfig(device_id_from="payload")
