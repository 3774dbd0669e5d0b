"""MQTT delivery that loses nothing: QoS 1 acknowledged only after store, a persistent
session across a kill -9 of hookflash and across a broker restart, shared subscriptions
splitting one stream between two instances, and TLS + password listeners. The broker is
a real mosquitto with persistence on and a plain, a password and a TLS listener."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from certs import TlsFiles, make_tls_files
from collector.config import MqttConfig, ServiceConfig, SnmpConfig
from factories import mqtt_device
from provisioning.registry import Registry
from runner import RunningService, eventually
from services import Mosquitto

PHONES = 20
SECRET = "mqtt-password-that-must-not-leak"


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "tls")


@pytest.fixture
def broker(tmp_path: Path, tls: TlsFiles) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "mosquitto", persistence=True, users={"hookflash": SECRET}, tls=tls) as b:
        yield b


def provision(data: Path) -> list[str]:
    phones = [mqtt_device(n, f"acct-{n % 4}") for n in range(PHONES)]
    Registry(data / "registry.db").import_devices(phones, source="test")
    return [p.address for p in phones]


def stored_channels(data: Path) -> list[int]:
    if not (data / "telemetry.db").exists():
        return []
    db = sqlite3.connect(data / "telemetry.db")
    rows = db.execute("SELECT json_extract(fields, '$.uptime_s') FROM telemetry WHERE kind = 'performance'")
    channels = [int(r[0]) for r in rows]
    db.close()
    return channels


def message(i: int) -> bytes:
    # `uptime_s` numbers the messages (unbounded above, unlike a Wi-Fi channel), so the
    # test can tell which ones arrived.
    return json.dumps({"ts": time.time(), "uptime_s": i}).encode()


class Publisher(threading.Thread):
    """Publishes `count` QoS 1 messages round-robin over the phones' topics."""

    def __init__(
        self,
        broker: Mosquitto,
        topics: list[str],
        count: int,
        pause_every: int = 50,
        login: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.topics, self.count, self.pause_every = topics, count, pause_every
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"phones-{time.monotonic_ns()}")
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)  # keep everything while the broker is away
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def run(self) -> None:
        for i in range(self.count):
            body = message(i)  # the same bytes on every retry: a copy is then a duplicate hookflash drops
            while True:
                info = self.client.publish(f"{self.topics[i % len(self.topics)]}/performance", body, qos=1)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    self.infos.append(info)
                    break
                time.sleep(0.1)  # the broker is away; paho reconnects
            if i % self.pause_every == 0:
                time.sleep(0.01)

    def finish(self, timeout: float = 30) -> None:
        self.join(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(info.is_published() for info in self.infos):
            time.sleep(0.05)
        assert all(info.is_published() for info in self.infos), "broker never acknowledged some publishes"
        self.client.disconnect()
        self.client.loop_stop()


def write_config(tmp_path: Path, broker: Mosquitto, tls: TlsFiles, client_id: str) -> Path:
    config = tmp_path / "hookflash.toml"
    config.write_text(
        f'data_dir = "data"\n[snmp]\nenabled = false\n'
        f'[mqtt]\nenabled = true\nport = {broker.tls_port}\nclient_id = "{client_id}"\n'
        f'username = "hookflash"\npassword_env = "HF_MQTT_PASSWORD"\ntls = true\nca_file = "{tls.ca_cert}"\n'
        f"receive_maximum = 200\n"
    )
    return config


def start_hookflash(config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_MQTT_PASSWORD": SECRET}
    return subprocess.Popen(
        [sys.executable, "-m", "collector.cli.main", "run", "-c", str(config), "--log-level", "debug"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def test_kill_9_mid_stream_loses_no_qos1_message(tmp_path: Path, broker: Mosquitto, tls: TlsFiles) -> None:
    data = tmp_path / "data"
    topics = provision(data)
    config = write_config(tmp_path, broker, tls, "hf-durable")
    first = start_hookflash(config)
    eventually(lambda: len(broker.subscribed_topics("hf-durable")) == PHONES, what="subscribed over TLS")
    publisher = Publisher(broker, topics, 3000)
    publisher.start()
    eventually(lambda: len(stored_channels(data)) >= 500, timeout=30, what="some messages stored")
    first.send_signal(signal.SIGKILL)  # no flush, no goodbye: unacknowledged messages stay at the broker
    first.wait(10)
    publisher.finish()
    second = start_hookflash(config)  # same client id: the persistent session is resumed
    try:
        eventually(lambda: len(set(stored_channels(data))) == 3000, timeout=60, what="every message stored")
        time.sleep(0.5)
    finally:
        second.send_signal(signal.SIGTERM)
        output = (first.stdout.read() if first.stdout else "") + second.communicate(timeout=20)[0]
    channels = stored_channels(data)
    assert sorted(channels) == list(range(3000)), "each message exactly once: duplicates removed"
    assert SECRET not in output


def test_a_redelivered_copy_is_stored_once(tmp_path: Path, broker: Mosquitto) -> None:
    data = tmp_path / "data"
    topics = provision(data)
    cfg = ServiceConfig(
        data_dir=data,
        snmp=SnmpConfig(enabled=False),
        mqtt=MqttConfig(enabled=True, port=broker.port, client_id="hf-dup"),
    )
    with RunningService(cfg):
        eventually(lambda: len(broker.subscribed_topics("hf-dup")) == PHONES, what="subscribed")
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dup-publisher")
        client.connect(broker.host, broker.port)
        client.loop_start()
        body = message(7)
        for _ in range(3):  # what a redelivery after a crash between store and PUBACK looks like
            client.publish(f"{topics[0]}/performance", body, qos=1).wait_for_publish(5)
        client.publish(f"{topics[0]}/performance", message(8), qos=1).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
        eventually(lambda: 8 in stored_channels(data), what="last message stored")
    assert sorted(stored_channels(data)) == [7, 8]


def test_broker_restart_mid_stream_loses_nothing(tmp_path: Path, broker: Mosquitto) -> None:
    data = tmp_path / "data"
    topics = provision(data)
    cfg = ServiceConfig(
        data_dir=data,
        snmp=SnmpConfig(enabled=False),
        mqtt=MqttConfig(
            enabled=True,
            port=broker.password_port or 0,
            client_id="hf-restart",
            username="hookflash",
            password=SECRET,
        ),
    )  # type: ignore[arg-type]
    with RunningService(cfg):
        eventually(lambda: len(broker.subscribed_topics("hf-restart")) == PHONES, what="subscribed")
        publisher = Publisher(broker, topics, 2000, pause_every=20)
        publisher.start()
        eventually(lambda: len(stored_channels(data)) >= 300, what="stream flowing")
        broker.restart()
        publisher.finish(timeout=60)
        eventually(lambda: len(set(stored_channels(data))) == 2000, timeout=60, what="every message stored")
    assert sorted(stored_channels(data)) == list(range(2000))


def test_shared_subscription_splits_one_stream_between_two_instances(
    tmp_path: Path, broker: Mosquitto
) -> None:
    data = tmp_path / "data"
    topics = provision(data)

    def cfg(name: str) -> ServiceConfig:
        return ServiceConfig(
            data_dir=data,
            snmp=SnmpConfig(enabled=False),
            mqtt=MqttConfig(
                enabled=True, port=broker.port, client_id=name, subscribe="wildcard", shared_group="hookflash"
            ),
        )

    with RunningService(cfg("hf-a")) as a, RunningService(cfg("hf-b")) as b:
        eventually(
            lambda: (
                broker.subscribed_topics("hf-a")
                == broker.subscribed_topics("hf-b")
                == ["$share/hookflash/hookflash/+/+"]
            ),
            what="both in the share group",
        )
        publisher = Publisher(broker, topics, 2000)
        publisher.start()
        publisher.finish()
        eventually(lambda: len(stored_channels(data)) == 2000, timeout=30, what="every message stored")
        received = (a.stats.messages_received, b.stats.messages_received)
    assert sorted(stored_channels(data)) == list(range(2000))  # once in total
    assert sum(received) == 2000 and min(received) > 0, received


def test_wrong_ca_or_password_is_refused_and_nothing_secret_is_logged(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    other_ca = make_tls_files(tmp_path / "other", ca_name="somebody else")
    data = tmp_path / "data"
    provision(data)
    caplog.set_level(logging.DEBUG)
    for name, mqtt_cfg in (
        (
            "hf-bad-ca",
            MqttConfig(
                enabled=True,
                port=broker.tls_port or 0,
                client_id="hf-bad-ca",
                username="hookflash",
                password=SECRET,
                tls=True,  # type: ignore[arg-type]
                ca_file=other_ca.ca_cert,
            ),
        ),
        (
            "hf-bad-pw",
            MqttConfig(
                enabled=True,
                port=broker.password_port or 0,
                client_id="hf-bad-pw",
                username="hookflash",
                password="not-" + SECRET,
            ),
        ),  # type: ignore[arg-type]
    ):
        with RunningService(
            ServiceConfig(data_dir=data, snmp=SnmpConfig(enabled=False), mqtt=mqtt_cfg)
        ) as run:
            time.sleep(1.5)
            assert run.service is not None and not run.service.sources["mqtt"].connected.is_set()  # type: ignore[union-attr]
        assert broker.subscribed_topics(name) == []
    assert SECRET not in caplog.text and SECRET not in broker.log_text()


SHIPPED = Path(__file__).parents[2] / "docker" / "mosquitto.conf"


LOGINS = {"hookflash": SECRET, "publisher": "pub-broker-pass-0123"}  # start_hookflash sets HF_MQTT_PASSWORD


def test_the_shipped_broker_config_keeps_a_long_backlog_across_a_kill_9(tmp_path: Path) -> None:
    """docker/mosquitto.conf as shipped (its ports, data folder, log, TLS files, password
    file and ACL rewritten to this run's; the test's publisher may write every phone's
    topic): hookflash is killed, 6,000 QoS 1 messages arrive while it is down (mosquitto's
    default of 1,000 queued messages would drop 5,000 of them), and after the restart every
    one is stored exactly once."""
    tls = make_tls_files(tmp_path / "tls")
    with Mosquitto(
        tmp_path / "mosquitto",
        config_file=SHIPPED,
        tls=tls,
        users=LOGINS,
        acl_extra=["user publisher", "topic write hookflash/#"],
    ) as shipped:
        data = tmp_path / "data"
        topics = provision(data)
        config = tmp_path / "hookflash.toml"
        config.write_text(
            f'data_dir = "data"\n[snmp]\nenabled = false\n'
            f"[mqtt]\nenabled = true\nport = {shipped.port}\n"
            'client_id = "hf-shipped"\nreceive_maximum = 200\n'
            'username = "hookflash"\npassword_env = "HF_MQTT_PASSWORD"\n'
        )
        first = start_hookflash(config)
        eventually(lambda: len(shipped.subscribed_topics("hf-shipped")) == PHONES, what="subscribed")
        early = Publisher(shipped, topics, 300, login=("publisher", LOGINS["publisher"]))
        early.start()
        eventually(lambda: len(stored_channels(data)) >= 100, timeout=30, what="some messages stored")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        early.finish()
        late = Publisher(shipped, topics, 6000, login=("publisher", LOGINS["publisher"]))
        late.start()
        late.finish(60)
        second = start_hookflash(config)
        try:
            eventually(lambda: len(stored_channels(data)) >= 6300, timeout=90, what="every message stored")
            time.sleep(0.5)
        finally:
            second.send_signal(signal.SIGTERM)
            second.communicate(timeout=20)
        log = shipped.log_path.read_text(errors="replace")
    channels = stored_channels(data)
    assert sorted(channels) == sorted([*range(300), *range(6000)]), "each message exactly once"
    assert "dropped" not in log
