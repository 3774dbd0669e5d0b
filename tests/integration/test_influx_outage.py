"""The InfluxDB sink through an outage: VictoriaMetrics (a real server speaking the InfluxDB v2
write API) is stopped mid-run while MQTT collection goes on, hookflash is restarted while the
server is still down, the server comes back: every record stored in the embedded store
arrives there too (count in = count out), and the spool ends empty."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import InfluxConfig, MqttConfig, ServiceConfig, SnmpConfig
from collector.runtime.spooled import SpooledSink
from factories import mqtt_device
from provisioning.registry import Registry
from runner import RunningService, eventually
from services import Mosquitto, VictoriaMetrics

PHONES = 10


def publish(broker: Mosquitto, topics: list[str], first: int, count: int, start: float) -> None:
    """Messages numbered by their uptime, with distinct, increasing timestamps (one
    sample each in the server) from `start`, after the accounts became active."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"phones-{first}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = []
    for i in range(first, first + count):
        body = {"ts": start + i * 0.01, "uptime_s": i}
        infos.append(client.publish(f"{topics[i % len(topics)]}/performance", json.dumps(body), qos=1))
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def stored(data: Path) -> int:
    db = sqlite3.connect(data / "telemetry.db")
    try:
        return int(db.execute("SELECT count(*) FROM telemetry WHERE kind = 'performance'").fetchone()[0])
    finally:
        db.close()


def arrived(server: VictoriaMetrics) -> list[int]:
    """The uptime of every performance sample the server holds (each message has its own)."""
    return sorted(int(v) for s in server.export('{__name__="performance_uptime_s"}') for v in s["values"])


def spooled(running: RunningService) -> int:
    assert running.service is not None
    sink = running.service.remote[0]
    assert isinstance(sink, SpooledSink)
    return sink.spool_batches


def test_outage_and_restart_lose_nothing(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_INFLUX_TOKEN", "influx-token-not-to-leak")
    server = VictoriaMetrics(tmp_path / "vm").start()
    data = tmp_path / "data"
    cfg = ServiceConfig(
        data_dir=data,
        snmp=SnmpConfig(enabled=False),
        mqtt=MqttConfig(enabled=True, port=mosquitto.port, client_id="hf-outage", qos=1),  # type: ignore[call-arg]
        influx=InfluxConfig(enabled=True, url=server.url, token_env="TEST_INFLUX_TOKEN", timeout_s=2),
    )
    cfg.spool.flush_on_stop_s = 0.5
    topics = [p.address for p in (mqtt_device(n, f"acct-{n % 3}") for n in range(PHONES))]
    Registry(data / "registry.db").import_devices(
        [mqtt_device(n, f"acct-{n % 3}") for n in range(PHONES)], source="test"
    )
    start = time.time()
    try:
        with RunningService(cfg) as running:
            eventually(lambda: running.service.sources["mqtt"].connected.is_set(), what="MQTT connected")  # type: ignore[union-attr]
            publish(mosquitto, topics, 0, 300, start)
            eventually(lambda: len(arrived(server)) == 300, timeout=20, what="first 300 in the server")

            server.stop()  # the outage: collection goes on
            publish(mosquitto, topics, 300, 400, start)
            eventually(lambda: stored(data) == 700, timeout=20, what="700 in the embedded store")
            eventually(lambda: spooled(running) > 0, what="batches waiting in the spool")
        # hookflash stopped while the server is still down: the spool stays on disk
        left = [p for p in (data / "spool" / "influx").glob("*.jsonl") if p.stat().st_size]
        assert left, "the spool should hold the batches the server never got"

        server.start()
        with RunningService(cfg) as running:
            eventually(lambda: running.service.sources["mqtt"].connected.is_set(), what="MQTT connected")  # type: ignore[union-attr]
            publish(mosquitto, topics, 700, 100, start)
            eventually(lambda: stored(data) == 800, timeout=20, what="800 in the embedded store")
            eventually(lambda: len(arrived(server)) >= 800, timeout=30, what="all 800 in the server")
            eventually(lambda: spooled(running) == 0, what="the spool drained")
        assert arrived(server) == list(range(800))  # each once: nothing lost, nothing twice
        assert stored(data) == 800
    finally:
        server.stop()
